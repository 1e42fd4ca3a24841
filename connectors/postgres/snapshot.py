"""The initial snapshot: every captured table read through COPY in the slot's exported snapshot."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from connectors.postgres.envelope import TableEvents
from connectors.postgres.pgoutput import RawTuple
from connectors.postgres.replication import SESSION_OPTIONS

_ESCAPE = re.compile(rb"\\(.)")
_ESCAPED = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


def _unescape_match(match: re.Match[bytes]) -> bytes:
    char = match.group(1)
    return _ESCAPED.get(char, char)


def parse_copy_line(line: bytes) -> RawTuple:
    """One line of COPY's text format as raw values (`bytes` text forms, `None` for NULL)."""
    return [
        None if field == b"\\N" else (_ESCAPE.sub(_unescape_match, field) if b"\\" in field else field)
        for field in line.split(b"\t")
    ]


class SnapshotReader:
    """Reads tables in one REPEATABLE READ transaction that imported the slot's exported snapshot."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self._conn = connection

    @classmethod
    async def open(cls, database_url: str, snapshot_name: str) -> SnapshotReader:
        conn = await psycopg.AsyncConnection.connect(database_url, options=SESSION_OPTIONS)
        await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        await conn.set_read_only(True)
        await conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_name)))
        return cls(conn)

    async def xmin(self) -> int:
        cursor = await self._conn.execute("SELECT txid_snapshot_xmin(txid_current_snapshot())")
        row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def rows(self, table: TableEvents) -> AsyncIterator[RawTuple]:
        """The table's rows in bounded memory (COPY streams them; lines are parsed as they arrive)."""
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in table.names)
        query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(columns, sql.Identifier(table.schema, table.table))
        async with self._conn.cursor() as cursor, cursor.copy(query) as copy:
            pending = b""
            async for chunk in copy:
                data = pending + bytes(chunk) if pending else bytes(chunk)
                lines = data.split(b"\n")
                pending = lines.pop()
                for line in lines:
                    yield parse_copy_line(line)
            if pending:
                yield parse_copy_line(pending)

    async def close(self) -> None:
        if not self._conn.closed:
            await self._conn.rollback()
            await self._conn.close()


async def snapshot_tables(
    reader: SnapshotReader, tables: Sequence[TableEvents]
) -> AsyncIterator[tuple[TableEvents, RawTuple, bool]]:
    """Every row of every table, flagged `True` on the very last one (Debezium's snapshot "last")."""
    held: tuple[TableEvents, RawTuple] | None = None
    for table in tables:
        async for raw in reader.rows(table):
            if held is not None:
                yield held[0], held[1], False
            held = (table, raw)
    if held is not None:
        yield held[0], held[1], True
