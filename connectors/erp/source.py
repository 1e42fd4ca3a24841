"""The ERP port and its SQL adapter: change-log reads by keyset, the stock snapshot, the capture state.

Every query here is shared by Oracle, PostgreSQL and MariaDB (written with `:name` binds, see `dialects.py`).
The adapter is synchronous DB-API; the connector calls it from a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

import orjson

from connectors.erp.dialects import Connection, ErpDsn, ErpUnavailable, connect

log = logging.getLogger(__name__)

# The ERP's stock record, as Debezium's Oracle connector names its columns (upper case).
STOCK_COLUMNS = (
    "STOCK_NO", "VIN", "YARD", "LOCATION", "STATUS", "TITLE_STATUS", "KEYS_COUNT", "ARRIVAL_DATE", "COST",
)  # fmt: skip
KEY_COLUMN = "STOCK_NO"
_LOWER = [column.lower() for column in STOCK_COLUMNS]

_CHANGE_SELECT = (
    "SELECT change_id, txn_id, op, changed_at, "
    + ", ".join(f"old_{c}" for c in _LOWER)
    + ", "
    + ", ".join(f"new_{c}" for c in _LOWER)
    + " FROM stock_changes "
)
CHANGES_AFTER = (
    _CHANGE_SELECT + "WHERE change_id > :after ORDER BY change_id OFFSET 0 ROWS FETCH FIRST :limit ROWS ONLY"
)
CHANGES_BETWEEN = _CHANGE_SELECT + "WHERE change_id BETWEEN :lo AND :hi ORDER BY change_id"
MAX_CHANGE_ID = "SELECT MAX(change_id) FROM stock_changes"
STOCK_SNAPSHOT = "SELECT " + ", ".join(_LOWER) + " FROM stock_items ORDER BY stock_no"
LOAD_STATE = "SELECT high_water, gaps FROM hub_capture_state WHERE name = :name"
UPDATE_STATE = (
    "UPDATE hub_capture_state SET high_water = :high_water, gaps = :gaps, updated_at = :now WHERE name = :name"
)
INSERT_STATE = (
    "INSERT INTO hub_capture_state (name, high_water, gaps, updated_at) VALUES (:name, :high_water, :gaps, :now)"
)
PURGE = "DELETE FROM stock_changes WHERE change_id <= :up_to"
FORGET_STATE = "DELETE FROM hub_capture_state WHERE name = :name"


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One row of the change log: the operation and the row's images before and after it."""

    change_id: int
    txn_id: str | None
    op: str  # c, u, d
    changed_at: datetime | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class StoredState:
    high_water: int
    gaps: list[list[float]]


def json_value(value: Any) -> Any:
    """A driver value as Debezium's Oracle connector writes it with `decimal.handling.mode=string`:
    NUMBER(p,0) -> integer, NUMBER(p,s) -> string, DATE -> epoch milliseconds (io.debezium.time.Timestamp)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent == 0 else str(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp() * 1000)
    if isinstance(value, str):
        return value.rstrip()  # CHAR columns come blank-padded from some drivers
    return value


def _image(values: Sequence[Any]) -> dict[str, Any] | None:
    if values[0] is None:  # the stock number is never NULL in a real image
        return None
    return {column: json_value(value) for column, value in zip(STOCK_COLUMNS, values, strict=True)}


def _change(row: Sequence[Any]) -> ChangeRow:
    width = len(STOCK_COLUMNS)
    return ChangeRow(
        change_id=int(row[0]),
        txn_id=None if row[1] is None else str(row[1]),
        op=str(row[2]).strip(),
        changed_at=row[3],
        before=_image(row[4 : 4 + width]),
        after=_image(row[4 + width : 4 + 2 * width]),
    )


class ErpSource(Protocol):
    """The ERP as the connector sees it. Every method raises `ErpUnavailable` when the ERP cannot answer."""

    def changes_after(self, after: int, limit: int) -> list[ChangeRow]:
        """Committed change-log rows with `change_id > after`, in id order, at most `limit`."""
        ...

    def changes_between(self, lo: int, hi: int) -> list[ChangeRow]:
        """Committed change-log rows with `lo <= change_id <= hi` (the rows of a gap that committed late)."""
        ...

    def max_change_id(self) -> int:
        """The highest change id visible now (0 for an empty log)."""
        ...

    def stock_snapshot(self, fetch_rows: int) -> Iterator[list[dict[str, Any]]]:
        """Every stock record, consistent as of one statement, in chunks."""
        ...

    def load_state(self, name: str) -> StoredState | None: ...

    def save_state(self, name: str, state: StoredState) -> None: ...

    def purge(self, up_to: int) -> int:
        """Delete captured change-log rows (`change_id <= up_to`); returns the count."""
        ...

    def close(self) -> None: ...


class SqlErpSource:
    """`ErpSource` over one DB-API connection (Oracle via python-oracledb, or a stand-in)."""

    def __init__(self, dsn: ErpDsn, *, timeout_s: float = 5.0) -> None:
        self.dsn = dsn
        self.timeout_s = timeout_s
        self._connection: Connection | None = None

    def _conn(self) -> Connection:
        if self._connection is None:
            self._connection = connect(self.dsn, timeout_s=self.timeout_s)
        return self._connection

    def _run(self, sql: str, binds: dict[str, Any] | None = None) -> Any:
        connection = self._conn()
        try:
            return connection.execute(sql, binds)
        except connection.errors as exc:
            self.close()  # a broken connection is never reused: the next call reconnects
            raise ErpUnavailable(f"ERP query failed ({type(exc).__name__}): {exc}".strip()) from exc

    def _fetchall(self, sql: str, binds: dict[str, Any] | None = None) -> list[Any]:
        connection = self._conn()
        cursor = self._run(sql, binds)
        try:
            return list(cursor.fetchall())
        except connection.errors as exc:
            self.close()
            raise ErpUnavailable(f"ERP read failed ({type(exc).__name__}): {exc}") from exc

    def changes_after(self, after: int, limit: int) -> list[ChangeRow]:
        return [_change(row) for row in self._fetchall(CHANGES_AFTER, {"after": after, "limit": limit})]

    def changes_between(self, lo: int, hi: int) -> list[ChangeRow]:
        return [_change(row) for row in self._fetchall(CHANGES_BETWEEN, {"lo": lo, "hi": hi})]

    def max_change_id(self) -> int:
        rows = self._fetchall(MAX_CHANGE_ID)
        return int(rows[0][0] or 0) if rows else 0

    def stock_snapshot(self, fetch_rows: int) -> Iterator[list[dict[str, Any]]]:
        connection = self._conn()
        cursor = self._run(STOCK_SNAPSHOT)
        while True:
            try:
                rows = cursor.fetchmany(fetch_rows)
            except connection.errors as exc:
                self.close()
                raise ErpUnavailable(f"ERP snapshot read failed: {exc}") from exc
            if not rows:
                return
            yield [_image(row) or {} for row in rows]

    def load_state(self, name: str) -> StoredState | None:
        rows = self._fetchall(LOAD_STATE, {"name": name})
        if not rows:
            return None
        return StoredState(int(rows[0][0]), orjson.loads(rows[0][1]))

    def save_state(self, name: str, state: StoredState) -> None:
        binds = {
            "name": name,
            "high_water": state.high_water,
            "gaps": orjson.dumps(state.gaps).decode(),
            "now": datetime.now(UTC).replace(tzinfo=None),
        }
        if self._run(UPDATE_STATE, binds).rowcount == 0:
            self._run(INSERT_STATE, binds)

    def purge(self, up_to: int) -> int:
        return int(self._run(PURGE, {"up_to": up_to}).rowcount or 0)

    def forget_state(self, name: str) -> bool:
        """Drop the stored high-water mark: the next start snapshots again (its Kafka topic was lost)."""
        return bool(self._run(FORGET_STATE, {"name": name}).rowcount)

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()
