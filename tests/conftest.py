"""Shared fixtures: real PostgreSQL (a database per test run), a real tansu broker, temp index dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from hub.broker import EmbeddedBroker, free_port, wait_for_port
from marketplace.migrate import drop_database

PG_ADMIN_URL = os.environ.get("AUCTION_HUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RUN_ID = uuid.uuid4().hex[:8]


def _database_url(name: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def database_factory() -> Iterator[Callable[[str], str]]:
    """Creates empty databases named for this test run; returns their URLs. Dropped at session end."""
    created: list[str] = []

    def create(label: str) -> str:
        name = f"ah_test_{RUN_ID}_{label}_{len(created)}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _database_url(name)

    yield create
    for name in created:
        drop_database(_database_url(name))


@pytest.fixture(scope="session", autouse=True)
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Every app and process of this test run uses its own redis-server (the machine's shared one on 6379 is
    never touched): AUCTION_HUB_REDIS_URL points there for the whole session."""
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    if not wait_for_port("127.0.0.1", port, 10):
        server.kill()
        raise RuntimeError("the test run's redis-server did not start")
    url = f"redis://127.0.0.1:{port}/0"
    previous = os.environ.get("AUCTION_HUB_REDIS_URL")
    os.environ["AUCTION_HUB_REDIS_URL"] = url
    yield url
    if previous is None:
        os.environ.pop("AUCTION_HUB_REDIS_URL", None)
    else:
        os.environ["AUCTION_HUB_REDIS_URL"] = previous
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A tansu broker on a free loopback port for the whole test session."""
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    broker = EmbeddedBroker(log_path=log_path).start()
    yield broker
    broker.stop()


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    path = tmp_path / "index"
    path.mkdir()
    return path
