"""Debezium change-event envelope: the contract between sources and stream processors.

Accepts what Debezium emits through the JSON converter with `schemas.enable` on (`{"schema", "payload"}`)
or off (the payload alone), from any connector (PostgreSQL, Oracle, ...). The hub's own connectors emit
the same shape (see `connectors/postgres/envelope.py`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

# Debezium's placeholder for an unchanged TOASTed column value that the WAL record does not carry.
UNAVAILABLE_VALUE = "__debezium_unavailable_value"

# Kafka record headers Debezium sets when a primary-key change is emitted as delete + create.
NEW_KEY_HEADER = "__debezium.newkey"
OLD_KEY_HEADER = "__debezium.oldkey"


class Op(StrEnum):
    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    READ = "r"  # snapshot row
    TRUNCATE = "t"
    MESSAGE = "m"


class InvalidChangeEvent(ValueError):
    """The bytes are not a Debezium change event this hub can apply."""


class Source(BaseModel):
    """The `source` block. Connector-specific fields (lsn, scn, txId, ...) are kept as extras."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    version: str | None = None
    connector: str | None = None
    name: str | None = None
    ts_ms: int | None = None
    snapshot: bool | str | None = None
    db: str | None = None
    schema_name: str | None = Field(default=None, alias="schema")
    table: str | None = None
    txId: int | str | None = None  # noqa: N815 - Debezium's field name
    lsn: int | None = None
    scn: str | int | None = None
    commit_scn: str | int | None = None

    @field_validator("snapshot", mode="before")
    @classmethod
    def _snapshot_flag(cls, value: Any) -> bool | str | None:
        # Debezium uses true/false, "true"/"false" (Oracle docs), "first"/"last"/"incremental".
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        return value

    @property
    def is_snapshot(self) -> bool:
        return self.snapshot not in (None, False, "false")

    @property
    def position(self) -> int:
        """A number that orders this source's changes to one row: PostgreSQL LSN, Oracle SCN, else time."""
        if self.lsn is not None:
            return int(self.lsn)
        for scn in (self.commit_scn, self.scn):
            if scn not in (None, ""):
                return int(scn)
        return int(self.ts_ms or 0) * 1000


class ChangeEvent(BaseModel):
    """The envelope payload: `before`, `after`, `source`, `op`, `ts_ms`."""

    model_config = ConfigDict(extra="allow")

    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    source: Source
    op: Op
    ts_ms: int | None = None

    @property
    def row(self) -> dict[str, Any] | None:
        """The row as it is after the change (before, for a delete)."""
        return self.after if self.after is not None else self.before


def unwrap_schema(document: Any) -> Any:
    """Strip the JSON converter's `{"schema": ..., "payload": ...}` wrapper when present."""
    if isinstance(document, dict) and "payload" in document and set(document) <= {"schema", "payload"}:
        return document["payload"]
    return document


def _load(raw: bytes, what: str) -> Any:
    try:
        return unwrap_schema(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise InvalidChangeEvent(f"{what} is not JSON: {exc}") from exc


def parse_change_value(raw: bytes | None) -> ChangeEvent | None:
    """Parse a change topic's record value; `None` for a tombstone (the record after a delete)."""
    if raw is None or raw == b"":
        return None
    document = _load(raw, "value")
    if document is None:
        return None
    if not isinstance(document, dict) or "op" not in document:
        raise InvalidChangeEvent("value is not a Debezium envelope: no 'op' field")
    try:
        return ChangeEvent.model_validate(document)
    except ValueError as exc:
        raise InvalidChangeEvent(f"invalid Debezium envelope: {exc}") from exc


def parse_key(raw: bytes | None) -> dict[str, Any] | None:
    """Parse a change topic's record key (the primary key columns), with or without schema."""
    if raw is None or raw == b"":
        return None
    document = _load(raw, "key")
    if not isinstance(document, dict):
        raise InvalidChangeEvent("key is not a JSON object of primary-key columns")
    return document


def is_transaction_boundary(document: Any) -> bool:
    """True for the BEGIN/END records of Debezium's transaction-metadata topic."""
    return isinstance(document, dict) and document.get("status") in {"BEGIN", "END"} and "id" in document


def topic_name(prefix: str, schema: str, table: str) -> str:
    """Debezium's change topic naming: `<topic.prefix>.<schema>.<table>`."""
    return f"{prefix}.{schema}.{table}"


def key_schema(topic: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON converter's schema of a change topic's key: the primary-key fields, named `<topic>.Key`."""
    return {"type": "struct", "fields": fields, "optional": False, "name": f"{topic}.Key"}


def envelope_schema(topic: str, row_fields: list[dict[str, Any]], *blocks: dict[str, Any]) -> dict[str, Any]:
    """The JSON converter's schema of a change event: `before`/`after` rows named `<topic>.Value`, the connector's
    own blocks (`source`, and `transaction` where it has one), then `op` and the timestamps; `<topic>.Envelope`."""
    row = {"type": "struct", "fields": row_fields, "optional": True, "name": f"{topic}.Value"}
    return {
        "type": "struct",
        "fields": [
            {**row, "field": "before"},
            {**row, "field": "after"},
            *blocks,
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
            {"type": "int64", "optional": True, "field": "ts_us"},
            {"type": "int64", "optional": True, "field": "ts_ns"},
        ],
        "optional": False,
        "name": f"{topic}.Envelope",
        "version": 2,
    }


def encode_value(payload: dict[str, Any], schema_json: bytes | None = None) -> bytes:
    """A change event as the JSON converter writes it; `schema_json` (pre-encoded) when schemas are enabled."""
    if schema_json is None:
        return orjson.dumps(payload)
    return b'{"schema":' + schema_json + b',"payload":' + orjson.dumps(payload) + b"}"


def encode_key(columns: dict[str, Any], key_schema: dict[str, Any] | None = None) -> bytes:
    """A record key as the JSON converter writes it; with `key_schema` when schemas are enabled.

    Producers of records that must land in the same partition as a change topic's records for the same
    row (e.g. the indexer's own fan-out topics) must use this encoding: Kafka partitions by key bytes.
    """
    if key_schema is None:
        return orjson.dumps(columns)
    return orjson.dumps({"schema": key_schema, "payload": columns})
