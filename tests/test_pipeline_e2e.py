"""The spine end to end: PostgreSQL -> our connector -> tansu -> Faust worker -> tantivy -> HTTP API.

Every component is real and runs as its own process (connector, worker) or in-process (the API, read
through FastAPI's TestClient with a reader of the same index directory).
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from hub.api import create_app
from hub.broker import EmbeddedBroker
from marketplace.migrate import apply_migrations
from marketplace.vin import make_vin
from search_api.settings import ApiSettings
from tests.pipeline import HubProcess, pipeline_env, wait_for_worker_ready, wait_until

pytestmark = pytest.mark.timeout(900)

RNG = random.Random(5)  # noqa: S311
SERIALS = itertools.count(100_000)  # VINs are unique: never reuse a serial


def insert_dealer(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute(
        "INSERT INTO dealers (name, rating, city, state, zip, lat, lon) "
        "VALUES (%s, 4.6, 'Denver', 'CO', '80202', 39.75, -104.99) RETURNING id",
        (name,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def insert_vehicle(conn: psycopg.Connection, dealer_id: int, **overrides: Any) -> int:
    serial = next(SERIALS)
    values = {
        "dealer_id": dealer_id, "vin": make_vin(RNG, "4T1", "BF1FK", 2021, serial), "make": "Toyota",
        "model": "Camry", "trim": "SE", "year": 2021, "mileage": 25_000, "condition_grade": 4.2,
        "body_type": "sedan", "fuel": "gasoline", "transmission": "automatic", "drivetrain": "fwd",
        "exterior_color": "Blue", "city": "Denver", "state": "CO", "zip": "80202", "lat": 39.75, "lon": -104.99,
        "asking_price": 23_900, "description": "Certified pre-owned",
    }  # fmt: skip
    values.update(overrides)
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    row = conn.execute(
        f"INSERT INTO vehicles ({columns}) VALUES ({placeholders}) RETURNING id", list(values.values())
    ).fetchone()
    assert row is not None
    return int(row[0])


class Stack:
    def __init__(self, database_url: str, env: dict[str, str], workdir: Path) -> None:
        self.database_url = database_url
        self.env = env
        self.workdir = workdir
        self.connector = HubProcess(["connect", "postgres"], env, workdir / "connector.log")
        self.worker = HubProcess(["worker"], env, workdir / "worker.log")
        settings = ApiSettings(index_path=Path(env["AUCTION_HUB_INDEX_PATH"]), reader_refresh_ms=0)
        self.client = TestClient(create_app(settings))

    def vehicle(self, vehicle_id: int) -> tuple[int, dict[str, Any]]:
        response = self.client.get(f"/api/v1/vehicles/{vehicle_id}")
        return response.status_code, response.json()

    def wait_vehicle(self, vehicle_id: int, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            assert self.connector.alive(), f"connector exited:\n{self.connector.log_tail()}"
            status, body = self.vehicle(vehicle_id)
            return body if status == 200 and predicate(body) else None

        return wait_until(probe, timeout=timeout, what=f"vehicle {vehicle_id} through the API")

    def wait_gone(self, vehicle_id: int, timeout: float = 60) -> None:
        wait_until(lambda: self.vehicle(vehicle_id)[0] == 404, timeout=timeout, what=f"vehicle {vehicle_id} to be 404")


@pytest.fixture(scope="module")
def database_url(database_factory: Any) -> str:
    url: str = database_factory("pipeline")
    apply_migrations(url)
    return url


@pytest.fixture(scope="module")
def snapshot_rows(database_url: str) -> dict[str, int]:
    """Rows that exist before the connector first starts: they must arrive through the snapshot."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        dealer = insert_dealer(conn, "Mile High Motors")
        vehicles = [insert_vehicle(conn, dealer) for _ in range(5)]
    return {"dealer": dealer, "first_vehicle": vehicles[0], "last_vehicle": vehicles[-1]}


@pytest.fixture(scope="module")
def stack(
    database_url: str, snapshot_rows: dict[str, int], kafka_broker: EmbeddedBroker, tmp_path_factory: Any
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("pipeline")
    env = pipeline_env(kafka_broker.bootstrap_servers, workdir, database_url)
    stack = Stack(database_url, env, workdir)
    stack.worker.start()
    try:
        wait_for_worker_ready(stack.worker)
        stack.connector.start()
        with stack.client:
            yield stack
    finally:
        stack.connector.stop()
        stack.worker.stop()


def test_snapshot_rows_are_searchable(stack: Stack, snapshot_rows: dict[str, int]) -> None:
    for vehicle_id in (snapshot_rows["first_vehicle"], snapshot_rows["last_vehicle"]):
        body = stack.wait_vehicle(vehicle_id, lambda b: (b.get("dealer") or {}).get("name") == "Mile High Motors", 90)
        assert body["make"] == "Toyota"
        assert body["model"] == "Camry"
        assert body["currentBid"] is None
        assert body["questions"] == []


def test_insert_update_delete_stream_through(stack: Stack, snapshot_rows: dict[str, int]) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        vehicle_id = insert_vehicle(conn, snapshot_rows["dealer"], make="Ford", model="F-150", trim="XLT")
        stack.wait_vehicle(vehicle_id, lambda b: b["model"] == "F-150")
        conn.execute("UPDATE vehicles SET asking_price = 31999.00 WHERE id = %s", (vehicle_id,))
        body = stack.wait_vehicle(vehicle_id, lambda b: b["asking_price"] == 31999.0)
        assert body["make"] == "Ford"
        conn.execute("UPDATE vehicles SET status = 'sold' WHERE id = %s", (vehicle_id,))
        stack.wait_vehicle(vehicle_id, lambda b: b["status"] == "sold")
        conn.execute("DELETE FROM vehicles WHERE id = %s", (vehicle_id,))
        stack.wait_gone(vehicle_id)


def test_faceted_search_follows_the_database(stack: Stack, snapshot_rows: dict[str, int]) -> None:
    """GET /api/v1/vehicles answers from the index the pipeline keeps: text, filters, facets, ranges."""

    def search(**params: Any) -> dict[str, Any]:
        response = stack.client.get("/api/v1/vehicles", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def found(**params: Any) -> list[str]:
        return [vehicle["id"] for vehicle in search(**params)["data"]]

    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        vehicle_id = insert_vehicle(
            conn, snapshot_rows["dealer"], make="Rivian", model="R1T", trim="Adventure", state="WA",
            city="Seattle", zip="98164", lat=47.61, lon=-122.33, fuel="electric", asking_price=61_500,
        )  # fmt: skip
        wanted = str(vehicle_id)
        wait_until(lambda: found(q="rivian r1t", state="WA") == [wanted], timeout=60, what="rivian in search")
        body = search(q="rivan", fuel="electric")  # one typo
        assert [vehicle["id"] for vehicle in body["data"]] == [wanted]
        assert {"value": "WA", "count": 1} in body["facets"]["state"]
        assert wanted in found(zip="98164", radius_km=10)
        assert wanted not in found(price_max=60_000, make="Rivian")

        conn.execute("UPDATE vehicles SET asking_price = 58900 WHERE id = %s", (vehicle_id,))
        wait_until(lambda: wanted in found(price_max=60_000, make="Rivian"), timeout=60, what="price change")
        conn.execute("UPDATE vehicles SET status = 'sold' WHERE id = %s", (vehicle_id,))
        wait_until(lambda: found(q="rivian") == [], timeout=60, what="sold vehicle to leave search")


def test_primary_key_change_moves_the_document(stack: Stack, snapshot_rows: dict[str, int]) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        vehicle_id = insert_vehicle(conn, snapshot_rows["dealer"], model="Corolla")
        stack.wait_vehicle(vehicle_id, lambda b: b["model"] == "Corolla")
        new_id = vehicle_id + 900_000
        conn.execute("UPDATE vehicles SET id = %s WHERE id = %s", (new_id, vehicle_id))
        stack.wait_vehicle(new_id, lambda b: b["model"] == "Corolla")
        stack.wait_gone(vehicle_id)


def test_dealer_rename_fans_out(stack: Stack, snapshot_rows: dict[str, int]) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute("UPDATE dealers SET name = 'Mile High Auto Group' WHERE id = %s", (snapshot_rows["dealer"],))
    for vehicle_id in (snapshot_rows["first_vehicle"], snapshot_rows["last_vehicle"]):
        stack.wait_vehicle(vehicle_id, lambda b: b["dealer"]["name"] == "Mile High Auto Group")


def test_connector_kill_9_mid_stream_loses_nothing(stack: Stack, snapshot_rows: dict[str, int]) -> None:
    inserted: list[int] = []

    def write() -> None:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            for i in range(600):
                inserted.append(insert_vehicle(conn, snapshot_rows["dealer"], mileage=100 + i))

    writer = threading.Thread(target=write)
    writer.start()
    wait_until(lambda: len(inserted) > 200, timeout=60, what="writes in flight")
    stack.connector.kill()
    writer.join()
    stack.connector.start()
    for vehicle_id in inserted[::50] + [inserted[-1]]:
        stack.wait_vehicle(vehicle_id, lambda b: b["mileage"] >= 100, timeout=90)
    missing = [vehicle_id for vehicle_id in inserted if stack.vehicle(vehicle_id)[0] != 200]
    assert missing == []


def test_truncate_empties_the_index(stack: Stack, snapshot_rows: dict[str, int]) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE vehicles CASCADE")
    stack.wait_gone(snapshot_rows["first_vehicle"])
    stack.wait_gone(snapshot_rows["last_vehicle"])
