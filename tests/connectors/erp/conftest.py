"""ERP stand-ins: a fresh PostgreSQL or MariaDB database with the ERP schema (and Oracle when ORACLE_DSN is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from connectors.erp.dialects import ErpDsn, connect, install_schema

MARIADB_URL = os.environ.get("AUCTION_HUB_TEST_MARIADB_URL", "mariadb://root@127.0.0.1:3306/mysql")
DIALECTS = ["postgresql", "mariadb"] + (["oracle"] if os.environ.get("ORACLE_DSN") else [])
ORACLE_OBJECTS = ("TRIGGER stock_items_cdc", "TABLE stock_changes", "TABLE stock_items", "TABLE hub_capture_state",
                  "SEQUENCE stock_changes_seq")  # fmt: skip


def _mariadb_server(base: ErpDsn) -> Any:
    return pymysql.connect(host=base.host, port=base.port, user=base.user, password=base.password, autocommit=True)


def _drop_oracle(dsn: ErpDsn) -> None:
    connection = connect(dsn)
    try:
        for name in ORACLE_OBJECTS:
            try:
                connection.raw.cursor().execute(f"DROP {name}")
            except connection.errors:
                pass  # not there yet
    finally:
        connection.close()


@pytest.fixture(scope="session")
def erp_factory(database_factory: Callable[[str], str]) -> Iterator[Callable[[str], ErpDsn]]:
    """`create(dialect)`: an empty ERP database of that dialect with the shipped DDL installed."""
    mariadb_dbs: list[str] = []
    oracle: list[ErpDsn] = []
    base = ErpDsn.parse(MARIADB_URL)

    def create(dialect: str) -> ErpDsn:
        if dialect == "postgresql":
            dsn = ErpDsn.parse(database_factory("erp"))
        elif dialect == "mariadb":
            name = f"ah_test_erp_{uuid.uuid4().hex[:10]}"
            server = _mariadb_server(base)
            server.cursor().execute(f"CREATE DATABASE {name}")
            server.close()
            mariadb_dbs.append(name)
            dsn = ErpDsn(base.dialect, base.host, base.port, base.user, base.password, name)
        else:
            dsn = ErpDsn.parse(os.environ["ORACLE_DSN"])
            _drop_oracle(dsn)
            oracle.append(dsn)
        install_schema(dsn)
        return dsn

    yield create
    if mariadb_dbs:
        server = _mariadb_server(base)
        for name in mariadb_dbs:
            server.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
        server.close()
    for dsn in oracle:
        _drop_oracle(dsn)


@pytest.fixture(params=DIALECTS)
def erp_dsn(request: pytest.FixtureRequest, erp_factory: Callable[[str], ErpDsn]) -> ErpDsn:
    return erp_factory(request.param)
