"""ERP stock changes as Debezium's Oracle connector (LogMiner) writes them: key, envelope, Oracle `source` block.

Topics are `<prefix>.<schema>.<table>` (e.g. `erp.ERP.STOCK_ITEMS`); values carry `before`/`after`, `op`
(c/u/d/r) and a `source` with `scn`, `commit_scn`, `txId`, `snapshot`, `ts_ms`, so Debezium's own Oracle connector
can replace this one on the same topics. The record key holds the message-key columns (by default the VIN, as
Debezium's `message.key.columns` can be told to), so one VIN's stock records share a partition with the worker's
VIN-keyed topics. A change of the key columns is sent as a delete of the old key, its tombstone and a create of the
new key, with Debezium's `__debezium.newkey`/`__debezium.oldkey` headers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from connectors.erp.source import STOCK_COLUMNS, ChangeRow
from connectors.postgres.envelope import Record
from schemas.debezium import (
    NEW_KEY_HEADER,
    OLD_KEY_HEADER,
    encode_key,
    encode_value,
    envelope_schema,
    key_schema,
    topic_name,
)

DEBEZIUM_FORMAT_VERSION = "3.0.0.Final"
CONNECTOR = "oracle"

_COLUMN_SCHEMAS: dict[str, dict[str, Any]] = {
    "STOCK_NO": {"type": "string", "optional": False},
    "VIN": {"type": "string", "optional": False},
    "YARD": {"type": "string", "optional": False},
    "LOCATION": {"type": "string", "optional": True},
    "STATUS": {"type": "string", "optional": False},
    "TITLE_STATUS": {"type": "string", "optional": False},
    "KEYS_COUNT": {"type": "int8", "optional": False},
    "ARRIVAL_DATE": {"type": "int64", "optional": True, "name": "io.debezium.time.Timestamp", "version": 1},
    "COST": {"type": "string", "optional": True},
}

_SOURCE_FIELDS: list[tuple[str, str, bool]] = [
    ("version", "string", False), ("connector", "string", False), ("name", "string", False),
    ("ts_ms", "int64", False), ("snapshot", "string", True), ("db", "string", False),
    ("sequence", "string", True), ("ts_us", "int64", True), ("ts_ns", "int64", True), ("schema", "string", False),
    ("table", "string", False), ("txId", "string", True), ("scn", "string", True), ("commit_scn", "string", True),
    ("lcr_position", "string", True), ("rs_id", "string", True), ("ssn", "int64", True),
    ("redo_thread", "int32", True), ("user_name", "string", True), ("row_id", "string", True),
    ("commit_ts_ms", "int64", True), ("start_scn", "string", True), ("start_ts_ms", "int64", True),
]  # fmt: skip


class StockEvents:
    """Builds the records of the ERP's stock table: snapshot reads and changes from the change log."""

    def __init__(
        self,
        *,
        prefix: str,
        database: str,
        schema: str,
        table: str,
        key_columns: Sequence[str],
        schemas_enable: bool,
    ) -> None:
        self.prefix = prefix
        self.database = database
        self.schema = schema
        self.table = table
        self.topic = topic_name(prefix, schema, table)
        self.key_columns = tuple(key_columns)
        self.key_schema: dict[str, Any] | None = None
        self._value_schema: bytes | None = None
        if schemas_enable:
            fields = [{**_COLUMN_SCHEMAS[name], "field": name} for name in STOCK_COLUMNS]
            self.key_schema = key_schema(
                self.topic, [{**f, "optional": False} for f in fields if f["field"] in self.key_columns]
            )
            self._value_schema = orjson.dumps(self._envelope_schema(fields))

    def _envelope_schema(self, fields: list[dict[str, Any]]) -> dict[str, Any]:
        source = {
            "type": "struct",
            "fields": [{"type": kind, "optional": optional, "field": name} for name, kind, optional in _SOURCE_FIELDS],
            "optional": False,
            "name": "io.debezium.connector.oracle.Source",
            "field": "source",
        }
        return envelope_schema(self.topic, fields, source)

    def key(self, row: dict[str, Any]) -> bytes:
        return encode_key({name: row.get(name) for name in self.key_columns}, self.key_schema)

    def _value(
        self,
        op: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        *,
        scn: int,
        tx_id: str | None,
        ts_ms: int,
        snapshot: str = "false",
    ) -> bytes:
        now_ns = time.time_ns()
        payload = {
            "before": before,
            "after": after,
            "source": {
                "version": DEBEZIUM_FORMAT_VERSION,
                "connector": CONNECTOR,
                "name": self.prefix,
                "ts_ms": ts_ms,
                "snapshot": snapshot,
                "db": self.database,
                "sequence": None,
                "ts_us": ts_ms * 1000,
                "ts_ns": ts_ms * 1_000_000,
                "schema": self.schema,
                "table": self.table,
                "txId": tx_id,
                # The change-log sequence orders one row's changes as their commits do (the row lock makes a
                # later writer wait, then take a higher id), so it stands in for the SCN of a LogMiner event.
                "scn": str(scn),
                "commit_scn": str(scn),
                "lcr_position": None,
                "rs_id": None,
                "ssn": 0,
                "redo_thread": 1,
                "user_name": None,
                "row_id": None,
                "commit_ts_ms": ts_ms,
                "start_scn": str(scn),
                "start_ts_ms": ts_ms,
            },
            "transaction": None,
            "op": op,
            "ts_ms": now_ns // 1_000_000,
            "ts_us": now_ns // 1000,
            "ts_ns": now_ns,
        }
        return encode_value(payload, self._value_schema)

    def read(self, row: dict[str, Any], scn: int, *, last: bool = False) -> Record:
        """A snapshot row (op `r`) at the snapshot's position."""
        value = self._value("r", None, row, scn=scn, tx_id=None, ts_ms=time.time_ns() // 1_000_000,
                            snapshot="last" if last else "true")  # fmt: skip
        return Record(self.topic, self.key(row), value)

    def change(self, change: ChangeRow) -> list[Record]:
        """The records of one change-log row (a delete is followed by its tombstone)."""
        ts_ms = int(change.changed_at.timestamp() * 1000) if change.changed_at else time.time_ns() // 1_000_000
        before, after = change.before, change.after

        def value(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> bytes:
            return self._value(op, before, after, scn=change.change_id, tx_id=change.txn_id, ts_ms=ts_ms)

        if change.op == "c" and after is not None:
            return [Record(self.topic, self.key(after), value("c", None, after))]
        if change.op == "d" and before is not None:
            key = self.key(before)
            return [Record(self.topic, key, value("d", before, None)), Record(self.topic, key, None)]
        if change.op == "u" and after is not None:
            new_key = self.key(after)
            if before is None or self.key(before) == new_key:
                return [Record(self.topic, new_key, value("u", before, after))]
            old_key = self.key(before)
            return [
                Record(self.topic, old_key, value("d", before, None), [(NEW_KEY_HEADER, new_key)]),
                Record(self.topic, old_key, None),
                Record(self.topic, new_key, value("c", None, after), [(OLD_KEY_HEADER, old_key)]),
            ]
        raise ValueError(f"change {change.change_id}: op {change.op!r} without the image it needs")
