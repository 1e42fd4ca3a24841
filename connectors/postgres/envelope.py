"""Debezium change events (JSON converter output) for one captured table, with their Connect schemas."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from connectors.postgres.pgoutput import RawTuple
from connectors.postgres.settings import DecimalHandlingMode
from connectors.postgres.values import column_type
from schemas.debezium import (
    NEW_KEY_HEADER,
    OLD_KEY_HEADER,
    encode_key,
    encode_value,
    envelope_schema,
    key_schema,
    topic_name,
)

# The Debezium release whose PostgreSQL event format (source block, schemas, headers) these events follow.
DEBEZIUM_FORMAT_VERSION = "3.0.0.Final"
CONNECTOR = "postgresql"

Headers = list[tuple[str, bytes]]


class Record(NamedTuple):
    """One Kafka record. `partition=None`: the key's partition; `ALL_PARTITIONS`: a copy in every one."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None
    partition: int | None = None


ALL_PARTITIONS = -1


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool
    optional: bool = True


@dataclass(frozen=True, slots=True)
class Position:
    """Where a change sits in the source: its transaction and WAL position, for the `source` block."""

    lsn: int
    last_commit_lsn: int | None
    commit_ts_us: int
    tx_id: int | None
    snapshot: str = "false"


SNAPSHOT_ENUM = "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"

SOURCE_SCHEMA: dict[str, Any] = {
    "type": "struct",
    "fields": [
        {"type": "string", "optional": False, "field": "version"},
        {"type": "string", "optional": False, "field": "connector"},
        {"type": "string", "optional": False, "field": "name"},
        {"type": "int64", "optional": False, "field": "ts_ms"},
        {
            "type": "string",
            "optional": True,
            "name": "io.debezium.data.Enum",
            "version": 1,
            "parameters": {"allowed": SNAPSHOT_ENUM},
            "default": "false",
            "field": "snapshot",
        },
        {"type": "string", "optional": False, "field": "db"},
        {"type": "string", "optional": True, "field": "sequence"},
        {"type": "int64", "optional": True, "field": "ts_us"},
        {"type": "int64", "optional": True, "field": "ts_ns"},
        {"type": "string", "optional": False, "field": "schema"},
        {"type": "string", "optional": False, "field": "table"},
        {"type": "int64", "optional": True, "field": "txId"},
        {"type": "int64", "optional": True, "field": "lsn"},
        {"type": "int64", "optional": True, "field": "xmin"},
    ],
    "optional": False,
    "name": "io.debezium.connector.postgresql.Source",
    "field": "source",
}

TRANSACTION_SCHEMA: dict[str, Any] = {
    "type": "struct",
    "fields": [
        {"type": "string", "optional": False, "field": "id"},
        {"type": "int64", "optional": False, "field": "total_order"},
        {"type": "int64", "optional": False, "field": "data_collection_order"},
    ],
    "optional": True,
    "name": "event.block",
    "version": 1,
    "field": "transaction",
}


class TableEvents:
    """Builds the records of one table's changes: key, envelope value, headers and tombstones."""

    def __init__(
        self,
        *,
        prefix: str,
        database: str,
        schema: str,
        table: str,
        columns: Sequence[Column],
        schemas_enable: bool,
        decimal_mode: DecimalHandlingMode,
    ) -> None:
        self.schema = schema
        self.table = table
        self.columns = tuple(columns)
        self.topic = topic_name(prefix, schema, table)
        self.names = tuple(column.name for column in self.columns)
        types = [column_type(c.type_oid, c.type_modifier, decimal_mode) for c in self.columns]
        self.converters = tuple(t.convert for t in types)
        self.key_names = tuple(column.name for column in self.columns if column.is_key)
        self._prefix = prefix
        self._database = database
        self.key_schema: dict[str, Any] | None = None
        self._value_schema_json: bytes | None = None
        if schemas_enable:
            fields = [
                {**t.schema, "optional": c.optional, "field": c.name} for c, t in zip(self.columns, types, strict=True)
            ]
            self.key_schema = key_schema(
                self.topic, [{**f, "optional": False} for f in fields if f["field"] in self.key_names]
            )
            self._value_schema_json = orjson.dumps(self.value_schema(fields))

    def value_schema(self, fields: list[dict[str, Any]]) -> dict[str, Any]:
        return envelope_schema(self.topic, fields, SOURCE_SCHEMA, TRANSACTION_SCHEMA)

    def convert(self, raw: RawTuple) -> list[Any]:
        """Raw text values (`bytes`) to JSON values; `None` and the TOAST placeholder pass through."""
        return [convert(v) if v.__class__ is bytes else v for convert, v in zip(self.converters, raw, strict=False)]

    def row(self, values: list[Any]) -> dict[str, Any]:
        return dict(zip(self.names, values, strict=False))

    def key_columns(self, row: dict[str, Any]) -> dict[str, Any]:
        return {name: row[name] for name in self.key_names}

    def _key(self, columns: dict[str, Any]) -> bytes | None:
        if not self.key_names:
            return None
        return encode_key(columns, self.key_schema)

    def _value(self, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, at: Position) -> bytes:
        now_ns = time.time_ns()
        ts_us = at.commit_ts_us
        last = "null" if at.last_commit_lsn is None else f'"{at.last_commit_lsn}"'
        payload = {
            "before": before,
            "after": after,
            "source": {
                "version": DEBEZIUM_FORMAT_VERSION,
                "connector": CONNECTOR,
                "name": self._prefix,
                "ts_ms": ts_us // 1000,
                "snapshot": at.snapshot,
                "db": self._database,
                "sequence": f'[{last},"{at.lsn}"]',
                "ts_us": ts_us,
                "ts_ns": ts_us * 1000,
                "schema": self.schema,
                "table": self.table,
                "txId": at.tx_id,
                "lsn": at.lsn,
                "xmin": None,
            },
            "transaction": None,
            "op": op,
            "ts_ms": now_ns // 1_000_000,
            "ts_us": now_ns // 1000,
            "ts_ns": now_ns,
        }
        return encode_value(payload, self._value_schema_json)

    def read(self, values: list[Any], at: Position) -> Record:
        """A snapshot row (op `r`); these and the methods below take converted values."""
        after = self.row(values)
        return Record(self.topic, self._key(self.key_columns(after)), self._value("r", None, after, at))

    def insert(self, values: list[Any], at: Position) -> Record:
        after = self.row(values)
        return Record(self.topic, self._key(self.key_columns(after)), self._value("c", None, after, at))

    def _before(self, old: list[Any], old_is_key: bool) -> dict[str, Any]:
        before = self.row(old)
        return self.key_columns(before) if old_is_key else before

    def update(self, new: list[Any], old: list[Any] | None, old_is_key: bool, at: Position) -> list[Record]:
        after = self.row(new)
        new_key = self.key_columns(after)
        before = None if old is None else self._before(old, old_is_key)
        if before is None or self.key_columns(before) == new_key:
            return [Record(self.topic, self._key(new_key), self._value("u", before, after, at))]
        # A primary-key change: Debezium emits a delete of the old key and a create of the new one.
        old_key = self._key(self.key_columns(before))
        new_key_bytes = self._key(new_key)
        return [
            Record(
                self.topic,
                old_key,
                self._value("d", before, None, at),
                [(NEW_KEY_HEADER, new_key_bytes or b"")],
            ),
            Record(self.topic, old_key, None),
            Record(
                self.topic,
                new_key_bytes,
                self._value("c", None, after, at),
                [(OLD_KEY_HEADER, old_key or b"")],
            ),
        ]

    def delete(self, old: list[Any], old_is_key: bool, at: Position) -> list[Record]:
        before = self._before(old, old_is_key)
        key = self._key(self.key_columns(before))
        deleted = Record(self.topic, key, self._value("d", before, None, at))
        return [deleted, Record(self.topic, key, None)] if key is not None else [deleted]

    def truncate(self, at: Position) -> Record:
        """Sent to every partition: a truncate orders against the changes of all keys."""
        return Record(self.topic, None, self._value("t", None, None, at), partition=ALL_PARTITIONS)


def heartbeat(prefix: str, heartbeat_topic: str, schemas_enable: bool) -> Record:
    """Debezium's heartbeat record: key `{"serverName": prefix}`, value `{"ts_ms": now}`."""
    key: dict[str, Any] = {"serverName": prefix}
    value: dict[str, Any] = {"ts_ms": time.time_ns() // 1_000_000}
    if schemas_enable:
        key = {
            "schema": {
                "type": "struct",
                "fields": [{"type": "string", "optional": False, "field": "serverName"}],
                "optional": False,
                "name": "io.debezium.connector.common.ServerNameKey",
            },
            "payload": key,
        }
        value = {
            "schema": {
                "type": "struct",
                "fields": [{"type": "int64", "optional": False, "field": "ts_ms"}],
                "optional": False,
                "name": "io.debezium.connector.common.Heartbeat",
            },
            "payload": value,
        }
    return Record(heartbeat_topic, orjson.dumps(key), orjson.dumps(value))
