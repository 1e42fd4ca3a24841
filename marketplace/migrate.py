"""Creates the marketplace database and applies the SQL migrations shipped in `marketplace/migrations`.

Each `NNN_name.sql` runs once, in its own transaction, and is recorded in `schema_migrations`. A
session-level advisory lock serializes concurrent runs (several services start at once), so the loser
waits, then finds the work done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

MAINTENANCE_DATABASE: Final = "postgres"
# Any constant bigint works; this one spells "ahmigr8" so it is recognizable in pg_locks.
MIGRATION_LOCK_KEY: Final = 0x61686D69677238

_MIGRATION_NAME: Final = re.compile(r"(?P<version>\d{3})_(?P<name>[A-Za-z0-9_\-]+)\.sql")

_CREATE_LEDGER: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """A migration file is malformed or failed to apply; the message names the file."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    source: Traversable

    @property
    def filename(self) -> str:
        return self.source.name


def ensure_database(database_url: str) -> bool:
    """Create the database named in `database_url` if it is missing; True if this call created it.

    Connects to the `postgres` maintenance database of the same server, with the same credentials.
    """
    dbname = _database_name(database_url)
    with psycopg.connect(maintenance_url(database_url), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            return False
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(dbname))))
        except psycopg.errors.DuplicateDatabase:
            # Another process created it between our look and our CREATE.
            return False
    return True


def drop_database(database_url: str) -> None:
    """Drop the database named in `database_url` and its unused replication slots (tests, benchmarks)."""
    dbname = _database_name(database_url)
    with psycopg.connect(maintenance_url(database_url), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = %s AND NOT active",
            (dbname,),
        )
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def maintenance_url(database_url: str) -> str:
    """The same server and credentials, on the `postgres` maintenance database."""
    return make_conninfo(database_url, dbname=MAINTENANCE_DATABASE)


def _database_name(database_url: str) -> str:
    dbname = conninfo_to_dict(database_url).get("dbname")
    if not dbname:
        raise MigrationError(f"the database URL names no database: {_redact(database_url)}")
    return str(dbname)


def discover_migrations(directory: Traversable | Path | None = None) -> list[Migration]:
    """The migration files of `directory` (default: the packaged ones), ordered by version."""
    root = directory if directory is not None else files("marketplace") / "migrations"
    migrations: list[Migration] = []
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match is None:
            raise MigrationError(f"{entry.name}: migration files are named NNN_description.sql")
        migrations.append(Migration(int(match["version"]), match["name"], entry))
    migrations.sort(key=lambda migration: migration.version)
    for previous, current in zip(migrations, migrations[1:], strict=False):
        if previous.version == current.version:
            raise MigrationError(f"{previous.filename} and {current.filename} share version {current.version}")
    return migrations


def applied_migrations(conn: psycopg.Connection) -> dict[int, str]:
    """version -> name of the migrations recorded in `schema_migrations` (empty if it doesn't exist)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    return {int(version): str(name) for version, name in rows}


def apply_migrations(database_url: str, *, directory: Traversable | Path | None = None) -> list[str]:
    """Apply the pending migrations in version order; returns the file names applied by this call.

    Idempotent: a second run applies nothing and returns []. Raises `MigrationError` naming the file
    that failed; the migrations before it stay applied, that one and those after it do not.
    """
    migrations = discover_migrations(directory)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(_CREATE_LEDGER)
            done = applied_migrations(conn)
            applied: list[str] = []
            for migration in migrations:
                if migration.version in done:
                    _check_recorded_name(migration, done[migration.version])
                    continue
                _apply_one(conn, migration)
                applied.append(migration.filename)
            return applied
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


def _apply_one(conn: psycopg.Connection, migration: Migration) -> None:
    # The files ship inside the package and are trusted DDL; without parameters psycopg sends them with
    # the simple query protocol, which accepts several statements (and plpgsql bodies) at once.
    statements = migration.source.read_text(encoding="utf-8")
    try:
        with conn.transaction():
            conn.execute(statements)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
    except psycopg.Error as exc:
        detail = exc.diag.message_primary or str(exc)
        raise MigrationError(f"migration {migration.filename} failed and was rolled back: {detail}") from exc


def _check_recorded_name(migration: Migration, recorded: str) -> None:
    if recorded != migration.name:
        raise MigrationError(
            f"{migration.filename}: version {migration.version} was applied as {recorded!r}; "
            "a released migration must not be renumbered or renamed"
        )


def _redact(database_url: str) -> str:
    params = conninfo_to_dict(database_url)
    if "password" in params:
        params["password"] = "***"  # noqa: S105 - a mask, not a secret
    return make_conninfo("", **params)
