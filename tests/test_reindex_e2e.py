"""`auction-hub reindex` end to end, and the protocol's failure paths.

The main case runs the whole pipeline as real processes (connector, worker, tansu, PostgreSQL), serves
searches from an API reader in a loop, and changes rows in PostgreSQL while the reindex builds: afterwards
the index equals the database, the active version changed, and no search request failed.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from connectors.search.tantivy_index import TantivyIndex
from connectors.search.tantivy_versions import IndexVersions, VersionedTantivyIndex
from hub.api import create_app
from hub.broker import EmbeddedBroker
from hub.reindex import Reindex, ReindexError, ReindexSettings
from marketplace.migrate import apply_migrations
from schemas.vehicle import VehicleDocument
from search_api.settings import ApiSettings
from streams.changes import VehicleUpsert
from streams.indexer import VehicleIndexer
from streams.reindex import ReindexControl, ReindexCoordinator, ReindexState
from tests.pipeline import HubProcess, pipeline_env, wait_for_worker_ready, wait_until
from tests.test_pipeline_e2e import insert_dealer, insert_vehicle

pytestmark = pytest.mark.timeout(300)

RNG = random.Random(11)  # noqa: S311
PRICES = itertools.count(30_000)


@pytest.fixture(scope="module")
def database_url(database_factory: Any) -> str:
    url: str = database_factory("reindex")
    apply_migrations(url)
    return url


@pytest.fixture(scope="module")
def seeded(database_url: str) -> dict[str, Any]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        dealers = [insert_dealer(conn, "Front Range Cars"), insert_dealer(conn, "Rocky Motors")]
        vehicles = [insert_vehicle(conn, dealers[n % 2], mileage=1000 + n) for n in range(300)]
    return {"dealers": dealers, "vehicles": vehicles}


class Pipeline:
    def __init__(self, database_url: str, env: dict[str, str], workdir: Path) -> None:
        self.database_url = database_url
        self.env = env
        self.workdir = workdir
        self.index_path = Path(env["AUCTION_HUB_INDEX_PATH"])
        self.connector = HubProcess(["connect", "postgres"], env, workdir / "connector.log")
        self.worker = HubProcess(["worker"], env, workdir / "worker.log")
        self.client = TestClient(create_app(ApiSettings(index_path=self.index_path, reader_refresh_ms=0)))
        self.versions = IndexVersions(self.index_path, "vehicles")
        self.control = ReindexControl(self.index_path, "vehicles")

    def reindex(self) -> HubProcess:
        return HubProcess(["reindex"], self.env, self.workdir / "reindex.log").start()

    def total(self) -> int:
        response = self.client.get("/api/v1/vehicles", params={"limit": 1})
        return int(response.json()["pagination"]["total"]) if response.status_code == 200 else -1


@pytest.fixture(scope="module")
def pipeline(
    database_url: str, seeded: dict[str, Any], kafka_broker: EmbeddedBroker, tmp_path_factory: Any
) -> Iterator[Pipeline]:
    workdir = tmp_path_factory.mktemp("reindex")
    env = pipeline_env(kafka_broker.bootstrap_servers, workdir, database_url)
    pipeline = Pipeline(database_url, env, workdir)
    pipeline.worker.start()
    try:
        wait_for_worker_ready(pipeline.worker)
        pipeline.connector.start()
        with pipeline.client:
            wait_until(lambda: pipeline.total() == len(seeded["vehicles"]), timeout=90, what="the snapshot indexed")
            yield pipeline
    finally:
        pipeline.connector.stop()
        pipeline.worker.stop()


class Searches(threading.Thread):
    """An API client in a loop: searches and vehicle details; anything but 200 (404 for details) fails."""

    def __init__(self, client: TestClient, ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.ids = ids
        self.stop = threading.Event()
        self.requests = 0
        self.failures: list[str] = []

    def run(self) -> None:
        queries = [{"q": "camry"}, {"make": "Toyota"}, {"price_min": "1000", "sort": "price", "facets": "false"}, {}]
        while not self.stop.is_set():
            for params in queries:
                try:
                    response = self.client.get("/api/v1/vehicles", params=params)
                    if response.status_code != 200:
                        self.failures.append(f"search {params}: {response.status_code} {response.text[:200]}")
                    detail = self.client.get(f"/api/v1/vehicles/{RNG.choice(self.ids)}")
                    if detail.status_code not in (200, 404):
                        self.failures.append(f"detail: {detail.status_code} {detail.text[:200]}")
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                self.requests += 2


class Writes(threading.Thread):
    """Inserts, updates, deletes and a dealer rename in PostgreSQL, noting the reindex state of each."""

    def __init__(self, pipeline: Pipeline, seeded: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.pipeline = pipeline
        self.dealers: list[int] = seeded["dealers"]
        self.live: list[int] = list(seeded["vehicles"])
        self.deleted: list[int] = []
        self.stop = threading.Event()
        self.states: list[str] = []
        self.renamed = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.pipeline.database_url, autocommit=True) as conn:
                while not self.stop.is_set():
                    self._one(conn)
                    time.sleep(0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def _one(self, conn: psycopg.Connection) -> None:
        state = self.pipeline.control.read()
        label = state.state if state else "none"
        choice = RNG.random()
        if label in ("journaling", "built") and not self.renamed:
            conn.execute("UPDATE dealers SET name = 'Front Range Auto Group' WHERE id = %s", (self.dealers[0],))
            self.renamed = True
        elif choice < 0.5:
            vehicle = RNG.choice(self.live)
            conn.execute(
                "UPDATE vehicles SET asking_price = %s, mileage = mileage + 1 WHERE id = %s", (next(PRICES), vehicle)
            )
        elif choice < 0.8:
            self.live.append(insert_vehicle(conn, RNG.choice(self.dealers), model="Corolla"))
        elif len(self.live) > 50:
            vehicle = self.live.pop(RNG.randrange(len(self.live)))
            conn.execute("DELETE FROM vehicles WHERE id = %s", (vehicle,))
            self.deleted.append(vehicle)
        self.states.append(label)


def database_vehicles(database_url: str) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT v.id, v.asking_price::float, v.mileage, v.model, d.name FROM vehicles v "
            "JOIN dealers d ON d.id = v.dealer_id"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def index_mismatches(pipeline: Pipeline, expected: dict[int, tuple[Any, ...]], deleted: list[int]) -> list[str]:
    problems = []
    for vehicle_id, (price, mileage, model, dealer) in expected.items():
        response = pipeline.client.get(f"/api/v1/vehicles/{vehicle_id}")
        if response.status_code != 200:
            problems.append(f"{vehicle_id}: {response.status_code}")
            continue
        body = response.json()
        found = (body["asking_price"], body["mileage"], body["model"], (body.get("dealer") or {}).get("name"))
        if found != (price, mileage, model, dealer):
            problems.append(f"{vehicle_id}: index {found} != database {(price, mileage, model, dealer)}")
    for vehicle_id in deleted:
        status = pipeline.client.get(f"/api/v1/vehicles/{vehicle_id}").status_code
        if status != 404:
            problems.append(f"deleted {vehicle_id}: {status}")
    if pipeline.total() != len(expected):
        problems.append(f"search total {pipeline.total()} != {len(expected)} vehicles")
    return problems


def test_reindex_under_concurrent_queries_and_writes_has_zero_failed_requests(
    pipeline: Pipeline, seeded: dict[str, Any]
) -> None:
    old_version = pipeline.versions.current()
    searches = Searches(pipeline.client, seeded["vehicles"])
    writes = Writes(pipeline, seeded)
    searches.start()
    writes.start()
    try:
        wait_until(lambda: len(writes.states) > 20, timeout=30, what="writes in flight")
        command = pipeline.reindex()
        assert command.process is not None
        command.process.wait(timeout=90)
        time.sleep(1.0)  # keep writing onto the swapped-in version for a moment
    finally:
        writes.stop.set()
        writes.join(timeout=30)
    assert writes.error is None, writes.error
    assert command.process.returncode == 0, command.log_tail()
    assert "->" in command.log_tail()

    expected = database_vehicles(pipeline.database_url)
    deadline = time.monotonic() + 60
    try:
        while (mismatches := index_mismatches(pipeline, expected, writes.deleted)) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        searches.stop.set()
        searches.join(timeout=30)
    assert mismatches == [], f"the index differs from the database in {len(mismatches)} vehicles: {mismatches[:10]}"

    state = pipeline.control.read()
    assert state is not None
    assert state.state == "swapped", state
    assert pipeline.versions.current() != old_version
    assert pipeline.versions.current().name == state.version
    during = [label for label in writes.states if label in ("journaling", "built")]
    assert len(during) >= 5, f"too few writes landed while the reindex built: {writes.states}"
    assert writes.renamed
    assert searches.requests > 100
    assert searches.failures == []
    assert pipeline.worker.alive(), pipeline.worker.log_tail()


def test_changes_after_the_swap_reach_the_new_version(pipeline: Pipeline, seeded: dict[str, Any]) -> None:
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        vehicle = insert_vehicle(conn, seeded["dealers"][1], model="Tacoma")
    wait_until(
        lambda: pipeline.client.get(f"/api/v1/vehicles/{vehicle}").status_code == 200,
        timeout=30,
        what="a vehicle inserted after the swap",
    )
    assert pipeline.worker.alive()


# -- the command alone, and the worker's side without Kafka -------------------------------------------------


@pytest.fixture
def reindex_settings(database_url: str, seeded: dict[str, Any], tmp_path: Path) -> ReindexSettings:
    return ReindexSettings(database_url=database_url, index_path=tmp_path / "index", pg_slot_name="alone")


async def test_without_a_worker_the_command_builds_and_promotes_alone(reindex_settings: ReindexSettings) -> None:
    versions = IndexVersions(reindex_settings.index_path, "vehicles")
    expected = database_vehicles(reindex_settings.database_url)
    carried_id = str(next(iter(expected)))
    # What live bidding, moderation and the ERP had put into the current version must survive the rebuild.
    current = VersionedTantivyIndex(versions, writer=True)
    await current.upsert(
        [
            VehicleDocument(
                id=carried_id,
                currentBid=12_345.0,
                bid_count=3,
                auction_status="live",
                inventory={"available": True, "stock_number": "S-1"},
                positions={"pg.vehicles": 1, "auction.bids": 7},
            )
        ]
    )
    await current.flush()
    await current.close()
    messages: list[str] = []
    summary = await Reindex(reindex_settings, ack_timeout_s=0.3, echo=messages.append).run()

    assert summary.mode == "standalone"
    assert versions.current().name == summary.new_version
    reader = VersionedTantivyIndex(versions, writer=False)
    assert summary.documents == len(expected)
    carried = await reader.get(carried_id)
    assert carried is not None
    assert (carried.currentBid, carried.bid_count, carried.auction_status) == (12_345.0, 3, "live")
    assert carried.inventory == {"available": True, "stock_number": "S-1"}
    assert carried.positions["auction.bids"] == 7
    assert carried.positions["pg.vehicles"] == summary.snapshot_lsn - 1  # rebuilt from PostgreSQL
    assert carried.make is not None
    document = await reader.get(str(next(iter(expected))))
    assert document is not None
    assert document.dealer is not None
    # Just below the snapshot's position: a change streamed at exactly that position still applies.
    assert document.positions["pg.vehicles"] == summary.snapshot_lsn - 1
    state = ReindexControl(reindex_settings.index_path, "vehicles").read()
    assert state is not None
    assert state.state == "swapped"
    assert any("building alone" in message for message in messages)


async def test_a_worker_that_holds_the_lock_but_never_answers_fails_the_command(
    reindex_settings: ReindexSettings,
) -> None:
    versions = IndexVersions(reindex_settings.index_path, "vehicles")
    stuck = TantivyIndex(versions.current(), writer=True)
    try:
        with pytest.raises(ReindexError, match="lock .* is held"):
            await Reindex(reindex_settings, ack_timeout_s=0.3, echo=lambda _: None).run()
    finally:
        await stuck.close()
    state = ReindexControl(reindex_settings.index_path, "vehicles").read()
    assert state is not None
    assert state.state == "failed"
    assert versions.versions() == [versions.current()]  # the new directory was removed


async def test_a_restarted_worker_fails_a_reindex_whose_journal_it_lost(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path, "vehicles")
    index = VersionedTantivyIndex(versions, writer=True)
    first = ReindexCoordinator(index, VehicleIndexer(index))
    control = ReindexControl(tmp_path, "vehicles")
    target = versions.new_version()
    control.write(ReindexState("requested", target.name, cli_pid=os.getpid()))
    await first.step()
    assert control.read().state == "journaling"  # type: ignore[union-attr]
    await first.indexer.apply([VehicleUpsert("1", {"id": 1, "model": "Camry"}, 500)])
    assert first.indexer.journal is not None
    assert len(first.indexer.journal) == 1

    restarted = ReindexCoordinator(index, VehicleIndexer(index))  # a new process: another worker id
    await restarted.step()

    state = control.read()
    assert state is not None
    assert state.state == "failed"
    assert "journal is lost" in (state.reason or "")
    await index.close()


async def test_the_worker_replays_its_journal_into_the_built_version_and_swaps(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path, "vehicles")
    index = VersionedTantivyIndex(versions, writer=True)
    indexer = VehicleIndexer(index)
    coordinator = ReindexCoordinator(index, indexer)
    control = ReindexControl(tmp_path, "vehicles")
    target = versions.new_version()
    control.write(ReindexState("requested", target.name, cli_pid=os.getpid()))
    await coordinator.step()
    # Applied live while the command builds: one change older than the snapshot (position 400), one newer.
    await indexer.apply([VehicleUpsert("1", {"id": 1, "model": "Old"}, 400)])
    await indexer.apply([VehicleUpsert("2", {"id": 2, "model": "New"}, 600)])
    built = TantivyIndex(target, writer=True)
    snapshot_doc = (await VehicleIndexer(built).apply([VehicleUpsert("1", {"id": 1, "model": "Snap"}, 500)])).written
    await built.close()
    assert snapshot_doc == 1
    control.write(control.read().advance("built", snapshot_lsn=500))  # type: ignore[union-attr]

    await coordinator.step()

    state = control.read()
    assert state is not None
    assert state.state == "swapped", state
    assert state.replayed == 2
    assert versions.current() == target
    assert index.path == target
    assert indexer.journal is None
    one, two = await index.get("1"), await index.get("2")
    assert one is not None
    assert one.model == "Snap"
    assert two is not None
    assert two.model == "New"
    await index.close()
