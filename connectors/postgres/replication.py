"""The source database: publication, slot, connector state, catalog look-ups and the pgoutput stream.

The stream uses psycopg2's replication protocol support (psycopg 3 has none); everything else is an
ordinary psycopg 3 connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import psycopg2
import psycopg2.extensions
from psycopg import sql
from psycopg2.extras import LogicalReplicationConnection, ReplicationCursor, ReplicationMessage

from connectors.postgres.envelope import Column
from connectors.postgres.pgoutput import parse_lsn

log = logging.getLogger(__name__)

# Text forms the value converters rely on, whatever the server's or role's defaults are.
SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=1"

STATE_TABLE = "auction_hub_connector_state"


class SourceError(RuntimeError):
    """The source database is not in a state the connector can capture from; the message says why."""


@dataclass(frozen=True)
class SlotHealth:
    retained_bytes: int
    wal_status: str | None
    safe_wal_size: int | None
    active: bool


class SourceCatalog:
    """Administration and catalog queries on an ordinary (autocommit) connection."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self._conn = connection

    @classmethod
    async def connect(cls, database_url: str) -> SourceCatalog:
        conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True, options=SESSION_OPTIONS)
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    async def _rows(self, query: str | sql.Composable, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cursor = await self._conn.execute(query, params)  # type: ignore[arg-type]
        return await cursor.fetchall()

    async def database_name(self) -> str:
        return str((await self._rows("SELECT current_database()"))[0][0])

    async def execute(self, query: str) -> None:
        await self._conn.execute(query)

    async def ensure_state_table(self) -> None:
        await self._conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
                slot_name text PRIMARY KEY,
                publication_name text NOT NULL,
                snapshot_started_at timestamptz NOT NULL,
                snapshot_completed_at timestamptz,
                snapshot_lsn pg_lsn
            )"""
        )

    async def snapshot_completed_at(self, slot: str) -> datetime | None:
        rows = await self._rows(f"SELECT snapshot_completed_at FROM {STATE_TABLE} WHERE slot_name = %s", (slot,))
        return rows[0][0] if rows else None

    async def mark_snapshot_started(self, slot: str, publication: str) -> None:
        await self._conn.execute(
            f"""INSERT INTO {STATE_TABLE} (slot_name, publication_name, snapshot_started_at)
                VALUES (%s, %s, now())
                ON CONFLICT (slot_name) DO UPDATE SET publication_name = excluded.publication_name,
                    snapshot_started_at = now(), snapshot_completed_at = NULL, snapshot_lsn = NULL""",
            (slot, publication),
        )

    async def mark_snapshot_completed(self, slot: str, lsn: str) -> None:
        await self._conn.execute(
            f"UPDATE {STATE_TABLE} SET snapshot_completed_at = now(), snapshot_lsn = %s WHERE slot_name = %s",
            (lsn, slot),
        )

    async def ensure_publication(self, name: str, schema: str, tables: tuple[str, ...]) -> None:
        missing = await self._rows(
            "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(quote_ident(%s) || '.' || quote_ident(t)) IS NULL",
            (list(tables), schema),
        )
        if missing:
            names = ", ".join(f"{schema}.{row[0]}" for row in missing)
            raise SourceError(f"captured tables do not exist: {names}; apply the migrations first")
        wanted = sql.SQL(", ").join(sql.Identifier(schema, table) for table in tables)
        exists = await self._rows("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,))
        if not exists:
            await self._conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(name), wanted))
            log.info("created publication %s for %s", name, ", ".join(tables))
            return
        current = await self._rows(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (name,)
        )
        if {(row[0], row[1]) for row in current} != {(schema, table) for table in tables}:
            await self._conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(sql.Identifier(name), wanted))
            log.warning(
                "publication %s now covers %s; tables added to an existing publication are streamed but not "
                "snapshotted (run `auction-hub snapshot` to backfill them)",
                name,
                ", ".join(tables),
            )

    async def slot_exists(self, slot: str) -> bool:
        rows = await self._rows(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND database = current_database()", (slot,)
        )
        return bool(rows)

    async def confirmed_flush_lsn(self, slot: str) -> int | None:
        rows = await self._rows(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        )
        return parse_lsn(rows[0][0]) if rows and rows[0][0] else None

    async def drop_slot(self, slot: str) -> None:
        rows = await self._rows("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        if not rows:
            return
        if rows[0][0] is not None:
            raise SourceError(f"replication slot {slot} is in use by backend {rows[0][0]}; stop that connector")
        await self._conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        log.info("dropped replication slot %s", slot)

    async def table_columns(self, schema: str, table: str) -> list[Column]:
        """Columns with their nullability; `is_key` marks the primary key (Debezium's record key)."""
        return await self._columns("n.nspname = %s AND c.relname = %s", (schema, table))

    async def relation_columns(self, relation_id: int) -> list[Column]:
        return await self._columns("c.oid = %s", (relation_id,))

    async def _columns(self, where: str, params: tuple[Any, ...]) -> list[Column]:
        rows = await self._rows(
            f"""SELECT a.attname, a.atttypid::int, a.atttypmod, NOT a.attnotnull,
                       coalesce(a.attnum = ANY(i.indkey::int2[]), false)
                FROM pg_attribute a
                JOIN pg_class c ON c.oid = a.attrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
                WHERE {where} AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum""",
            params,
        )
        return [Column(name, oid, typmod, is_key, optional) for name, oid, typmod, optional, is_key in rows]

    async def slot_health(self, slot: str) -> SlotHealth | None:
        rows = await self._rows(
            """SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, wal_status,
                      safe_wal_size, active
               FROM pg_replication_slots WHERE slot_name = %s""",
            (slot,),
        )
        if not rows:
            return None
        retained, wal_status, safe_wal_size, active = rows[0]
        return SlotHealth(int(retained or 0), wal_status, safe_wal_size, bool(active))


class ReplicationStream:
    """The pgoutput stream of one slot, over psycopg2's replication protocol (non-blocking reads)."""

    def __init__(self, database_url: str) -> None:
        self._conn: psycopg2.extensions.connection = psycopg2.connect(
            database_url, connection_factory=LogicalReplicationConnection, options=SESSION_OPTIONS
        )
        self._cursor: ReplicationCursor = self._conn.cursor()

    def create_slot_with_snapshot(self, slot: str) -> tuple[int, str]:
        """Create the slot and export its snapshot: (consistent point LSN, snapshot name).

        The snapshot stays importable only while this connection runs no other command."""
        if self._conn.server_version >= 150000:
            command = f"CREATE_REPLICATION_SLOT \"{slot}\" LOGICAL pgoutput (SNAPSHOT 'export')"
        else:
            command = f'CREATE_REPLICATION_SLOT "{slot}" LOGICAL pgoutput EXPORT_SNAPSHOT'
        self._cursor.execute(command)
        _, consistent_point, snapshot_name, _ = self._cursor.fetchone()
        log.info("created replication slot %s at %s (snapshot %s)", slot, consistent_point, snapshot_name)
        return parse_lsn(consistent_point), snapshot_name

    def start(self, slot: str, publication: str, status_interval_s: float) -> None:
        self._cursor.start_replication(
            slot_name=slot,
            decode=False,
            options={"proto_version": "1", "publication_names": publication},
            status_interval=status_interval_s,
        )

    def fileno(self) -> int:
        return int(self._cursor.fileno())

    def read(self, limit: int) -> list[ReplicationMessage]:
        """The messages already received, up to `limit`; never blocks."""
        read_message = self._cursor.read_message
        messages: list[ReplicationMessage] = []
        misses = 0
        while len(messages) < limit:
            message = read_message()
            if message is None:
                # psycopg2 also answers None after handling a keepalive, with more data possibly already
                # buffered in libpq where socket readiness will never announce it: look twice more.
                misses += 1
                if misses > 2:
                    break
                continue
            misses = 0
            messages.append(message)
        return messages

    @property
    def wal_end(self) -> int:
        """The server's WAL position from the latest keepalive or message."""
        return int(self._cursor.wal_end)

    def confirm(self, flush_lsn: int, *, force: bool = False) -> None:
        """Confirm everything up to `flush_lsn`; sent at the status interval, or now with `force`."""
        self._cursor.send_feedback(write_lsn=flush_lsn, flush_lsn=flush_lsn, force=force)

    def close(self) -> None:
        if not self._conn.closed:
            self._conn.close()
