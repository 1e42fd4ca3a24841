"""The ERP's database drivers: one DB-API connection per dialect, the same SQL text for all of them.

Queries are written once with Oracle's named binds (`:name`); for the drivers whose paramstyle is `pyformat`
(psycopg, PyMySQL) the binds are rewritten, never the queries. Oracle is reached with python-oracledb in thin
mode (no Oracle client libraries); PostgreSQL and MariaDB serve as stand-ins on machines without Oracle.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

SQL_DIR = Path(__file__).with_name("sql")
_BIND = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class ErpUnavailable(ConnectionError):
    """The ERP database cannot be reached or refused a query; the message says why."""


@dataclass(frozen=True)
class ErpDsn:
    """Where the ERP is: `oracle://`, `postgresql://` or `mysql://`/`mariadb://` URL, parsed."""

    dialect: str
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def parse(cls, url: str) -> ErpDsn:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        dialect = {"oracle": "oracle", "postgresql": "postgresql", "postgres": "postgresql", "mysql": "mariadb",
                   "mariadb": "mariadb"}.get(scheme)  # fmt: skip
        if dialect is None:
            raise ValueError(f"unknown ERP database scheme {scheme!r}: use oracle://, postgresql:// or mariadb://")
        default_port = {"oracle": 1521, "postgresql": 5432, "mariadb": 3306}[dialect]
        return cls(
            dialect=dialect,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or default_port,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/"),
        )

    def with_endpoint(self, host: str, port: int) -> ErpDsn:
        return ErpDsn(self.dialect, host, port, self.user, self.password, self.database)

    def url(self) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        scheme = {"oracle": "oracle", "postgresql": "postgresql", "mariadb": "mariadb"}[self.dialect]
        return f"{scheme}://{auth}@{self.host}:{self.port}/{self.database}"


def standin_beside(database_url: str) -> ErpDsn:
    """The demo's ERP stand-in: database `<name>_erp` on the marketplace's PostgreSQL server."""
    marketplace = ErpDsn.parse(database_url)
    return replace(marketplace, database=f"{marketplace.database}_erp")


def to_pyformat(sql: str) -> str:
    """`:name` binds as `%(name)s` (psycopg, PyMySQL); a literal `%` is doubled."""
    return _BIND.sub(r"%(\1)s", sql.replace("%", "%%"))


@dataclass(frozen=True)
class Connection:
    """A DB-API connection in autocommit mode and the driver's view of the shared SQL."""

    raw: Any
    dialect: str
    errors: tuple[type[BaseException], ...]
    adapt: Callable[[str], str]

    def execute(self, sql: str, binds: dict[str, Any] | None = None) -> Any:
        cursor = self.raw.cursor()
        cursor.execute(self.adapt(sql), binds or {})
        return cursor

    def set_autocommit(self, enabled: bool) -> None:
        """Off: the next statements form one transaction until `raw.commit()` (PyMySQL's is a method)."""
        if self.dialect == "mariadb":
            self.raw.autocommit(enabled)
        else:
            self.raw.autocommit = enabled

    def close(self) -> None:
        try:
            self.raw.close()
        except self.errors:
            pass


def connect(dsn: ErpDsn, *, timeout_s: float = 5.0) -> Connection:
    """Open a connection; every driver error becomes `ErpUnavailable` naming the ERP and the cause."""
    try:
        return _CONNECTORS[dsn.dialect](dsn, timeout_s)
    except ErpUnavailable:
        raise
    except Exception as exc:
        if _is_driver_error(dsn.dialect, exc):
            raise ErpUnavailable(f"cannot connect to the ERP ({dsn.dialect} at {dsn.host}:{dsn.port}): {exc}") from exc
        raise


def _is_driver_error(dialect: str, exc: BaseException) -> bool:
    return isinstance(exc, driver_errors(dialect) + (OSError,))


@cache
def driver_errors(dialect: str) -> tuple[type[BaseException], ...]:
    if dialect == "postgresql":
        import psycopg

        return (psycopg.Error,)
    if dialect == "mariadb":
        import pymysql

        return (pymysql.err.Error,)
    import oracledb

    return (oracledb.Error,)


def _postgresql(dsn: ErpDsn, timeout_s: float) -> Connection:
    import psycopg

    raw = psycopg.connect(
        host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password or None, dbname=dsn.database,
        autocommit=True, connect_timeout=max(1, round(timeout_s)),
        options=f"-c statement_timeout={int(timeout_s * 1000) * 6}",
    )  # fmt: skip
    return Connection(raw, "postgresql", driver_errors("postgresql"), to_pyformat)


def _mariadb(dsn: ErpDsn, timeout_s: float) -> Connection:
    import pymysql

    raw = pymysql.connect(
        host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password, database=dsn.database,
        autocommit=True, connect_timeout=timeout_s, read_timeout=timeout_s * 6, write_timeout=timeout_s * 6,
        init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    )  # fmt: skip
    return Connection(raw, "mariadb", driver_errors("mariadb"), to_pyformat)


def _oracle(dsn: ErpDsn, timeout_s: float) -> Connection:
    import oracledb  # thin mode: pure Python, no Oracle client libraries

    raw = oracledb.connect(
        user=dsn.user, password=dsn.password, host=dsn.host, port=dsn.port, service_name=dsn.database,
        tcp_connect_timeout=timeout_s,
    )  # fmt: skip
    raw.autocommit = True
    raw.call_timeout = int(timeout_s * 6000)
    return Connection(raw, "oracle", driver_errors("oracle"), lambda sql: sql)


_CONNECTORS: dict[str, Callable[[ErpDsn, float], Connection]] = {
    "postgresql": _postgresql,
    "mariadb": _mariadb,
    "oracle": _oracle,
}


def ddl_statements(dialect: str) -> list[str]:
    """The statements of `sql/<dialect>.sql` (each ends with a line holding only `/`)."""
    text = (SQL_DIR / f"{dialect}.sql").read_text()
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip() == "/":
            statement = "\n".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
        elif not line.lstrip().startswith("--") or current:
            current.append(line)
    return statements


def install_schema(dsn: ErpDsn, *, timeout_s: float = 10.0) -> None:
    """Create the ERP tables, sequence, change log and triggers (a fresh ERP or stand-in database)."""
    connection = connect(dsn, timeout_s=timeout_s)
    try:
        for statement in ddl_statements(dsn.dialect):
            # DDL is sent as is: it has no binds, and the PL/pgSQL body's `%` must not be doubled.
            connection.raw.cursor().execute(statement)
    finally:
        connection.close()


def schema_installed(dsn: ErpDsn) -> bool:
    connection = connect(dsn)
    try:
        connection.execute("SELECT COUNT(*) FROM stock_changes WHERE 1 = 0").fetchall()
        return True
    except connection.errors:
        return False
    finally:
        connection.close()


def prepare_erp(dsn: ErpDsn) -> bool:
    """Create a stand-in database if missing (PostgreSQL, MariaDB) and the ERP schema if missing.

    Returns True when the schema was installed now. On Oracle the schema (user) must exist already."""
    if dsn.dialect == "postgresql":
        from marketplace.migrate import ensure_database

        ensure_database(dsn.url())
    elif dsn.dialect == "mariadb":
        import pymysql

        server = pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password, autocommit=True)
        try:
            server.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{dsn.database.replace('`', '')}`")
        finally:
            server.close()
    if schema_installed(dsn):
        return False
    install_schema(dsn)
    return True
