from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from marketplace.migrate import (
    MIGRATION_LOCK_KEY,
    MigrationError,
    apply_migrations,
    discover_migrations,
    ensure_database,
)
from tests.conftest import PG_ADMIN_URL, RUN_ID

TABLES = {"users", "dealers", "vehicles", "auctions", "auction_lots", "bids", "questions", "answers"}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def ledger(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return [(row[0], row[1]) for row in conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1")]


@pytest.fixture
def missing_database_url() -> Iterator[str]:
    name = f"ah_test_{RUN_ID}_ensure"
    url = f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}"
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_ensure_database_creates_once(missing_database_url: str) -> None:
    assert ensure_database(missing_database_url) is True
    assert ensure_database(missing_database_url) is False
    with psycopg.connect(missing_database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_ensure_database_requires_a_name() -> None:
    with pytest.raises(MigrationError, match="names no database"):
        ensure_database("host=127.0.0.1 user=postgres")


def test_packaged_migrations_are_found() -> None:
    migrations = discover_migrations()
    assert [m.filename for m in migrations][0] == "001_initial.sql"
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})


def test_apply_is_idempotent(database_factory: Callable[[str], str]) -> None:
    url = database_factory("migrate")
    assert apply_migrations(url) == [m.filename for m in discover_migrations()]
    assert TABLES <= tables(url)
    assert apply_migrations(url) == []
    assert ledger(url)[0] == (1, "initial")
    assert len(ledger(url)) == len(discover_migrations())


def test_concurrent_apply_runs_each_migration_once(database_factory: Callable[[str], str]) -> None:
    url = database_factory("concurrent")
    results: list[list[str]] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        try:
            results.append(apply_migrations(url))
        except Exception as exc:  # collected, so the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(len(result) for result in results) == [0, 0, 0, len(discover_migrations())]
    assert len(ledger(url)) == len(discover_migrations())


def test_apply_waits_for_the_advisory_lock(database_factory: Callable[[str], str]) -> None:
    url = database_factory("locked")
    done = threading.Event()
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))

        def migrate() -> None:
            apply_migrations(url)
            done.set()

        worker = threading.Thread(target=migrate)
        worker.start()
        time.sleep(0.5)
        assert not done.is_set()
        assert "vehicles" not in tables(url)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    worker.join(timeout=30)
    assert done.is_set()
    assert "vehicles" in tables(url)


def copy_packaged(tmp_path: Path) -> Path:
    for migration in discover_migrations():
        (tmp_path / migration.filename).write_text(migration.source.read_text(encoding="utf-8"))
    return tmp_path


def test_failed_migration_names_the_file_and_rolls_back(database_factory: Callable[[str], str], tmp_path: Path) -> None:
    url = database_factory("broken")
    directory = copy_packaged(tmp_path)
    (directory / "900_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT 1 / 0;\n")
    with pytest.raises(MigrationError, match=r"900_broken\.sql.*division by zero"):
        apply_migrations(url, directory=directory)
    assert "half_done" not in tables(url)
    assert TABLES <= tables(url)
    assert 900 not in dict(ledger(url))
    # Fixed and re-run, it applies on its own.
    (directory / "900_broken.sql").write_text("CREATE TABLE half_done (id int);\n")
    assert apply_migrations(url, directory=directory) == ["900_broken.sql"]


def test_badly_named_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_initial.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="1_initial.sql"):
        discover_migrations(tmp_path)


def test_renamed_migration_is_refused(database_factory: Callable[[str], str], tmp_path: Path) -> None:
    url = database_factory("renamed")
    apply_migrations(url)
    directory = copy_packaged(tmp_path)
    (directory / "001_initial.sql").rename(directory / "001_renamed.sql")
    with pytest.raises(MigrationError, match="001_renamed.sql"):
        apply_migrations(url, directory=directory)
