"""A car listed through POST /api/v1/cars becomes searchable: API -> PostgreSQL -> connector -> tansu -> worker ->
tantivy -> GET /api/v1/vehicles; changing and deleting it through the API follows the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api import create_app
from hub.broker import EmbeddedBroker
from marketplace.migrate import apply_migrations
from search_api.settings import ApiSettings
from tests.marketplace.api_client import JWT_SECRET, PASSWORD
from tests.marketplace.cars_helpers import car_fields, insert_dealer
from tests.pipeline import HubProcess, wait_for_worker_ready, wait_until, worker_env

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def hub(database_factory: Any, kafka_broker: EmbeddedBroker, tmp_path_factory: Any) -> Iterator[tuple[TestClient, str]]:
    database_url: str = database_factory("cars_e2e")
    apply_migrations(database_url)
    workdir = tmp_path_factory.mktemp("cars_e2e")
    name = database_url.rsplit("/", 1)[-1]
    env = worker_env(
        kafka_broker.bootstrap_servers,
        workdir / "index",
        AUCTION_HUB_DATABASE_URL=database_url,
        AUCTION_HUB_PG_SLOT_NAME=f"{name}_slot",
        AUCTION_HUB_PG_PUBLICATION_NAME=f"{name}_pub",
        AUCTION_HUB_PG_HEARTBEAT_INTERVAL_S="1",
    )
    connector = HubProcess(["connect", "postgres"], env, workdir / "connector.log")
    worker = HubProcess(["worker"], env, workdir / "worker.log")
    settings = ApiSettings(
        index_path=Path(env["AUCTION_HUB_INDEX_PATH"]), reader_refresh_ms=0, database_url=database_url,
        jwt_secret=JWT_SECRET, bcrypt_rounds=4,
    )  # fmt: skip
    worker.start()
    try:
        wait_for_worker_ready(worker)
        connector.start()
        with TestClient(create_app(settings)) as client:
            yield client, database_url
    finally:
        connector.stop()
        worker.stop()


def signed_in_dealer(client: TestClient, database_url: str) -> dict[str, str]:
    email = "e2e-dealer@example.com"
    registered = client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "full_name": "E2E", "role": "dealer"}
    )
    assert registered.status_code == 201, registered.text
    insert_dealer(database_url, int(registered.json()["data"]["id"]), name="Pipeline Motors")
    login = client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_a_car_created_through_the_api_becomes_searchable(hub: tuple[TestClient, str]) -> None:
    client, database_url = hub
    headers = signed_in_dealer(client, database_url)
    fields = car_fields(make="rivian", model="R1T", trim="Adventure", fuel="electric", body_type="truck",
                        drivetrain="awd", zip="98164", asking_price=61_500)  # fmt: skip
    created = client.post("/api/v1/cars", json=fields, headers=headers)
    assert created.status_code == 201, created.text
    car_id = str(created.json()["data"]["id"])

    def found(**params: Any) -> list[str]:
        response = client.get("/api/v1/vehicles", params=params)
        assert response.status_code == 200, response.text
        return [vehicle["id"] for vehicle in response.json()["data"]]

    wait_until(lambda: found(q="rivian r1t") == [car_id], timeout=90, what="the new car in search")
    detail = client.get(f"/api/v1/vehicles/{car_id}").json()
    assert (detail["make"], detail["state"]) == ("Rivian", "WA")
    wait_until(
        lambda: (client.get(f"/api/v1/vehicles/{car_id}").json().get("dealer") or {}).get("name") == "Pipeline Motors",
        timeout=60,
        what="the dealer block",
    )

    changed = client.patch(f"/api/v1/cars/{car_id}", json={"asking_price": 58_900}, headers=headers)
    assert changed.status_code == 200
    wait_until(lambda: car_id in found(q="rivian", price_max=60_000), timeout=60, what="the price change")

    assert client.delete(f"/api/v1/cars/{car_id}", headers=headers).status_code == 200
    wait_until(lambda: found(q="rivian") == [], timeout=60, what="the deleted car to leave search")
