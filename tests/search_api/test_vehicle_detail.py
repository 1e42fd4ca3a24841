"""GET /api/v1/vehicles/{id} over a real tantivy index; 503 when the index cannot be reached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connectors.search.factory import create_search_index
from connectors.search.port import SearchIndex
from hub.api import create_app
from hub.broker import free_port
from schemas.vehicle import DealerSummary, VehicleDocument
from search_api.settings import ApiSettings


@pytest.fixture
async def index(index_dir: Path) -> AsyncIterator[SearchIndex]:
    search_index = create_search_index(ApiSettings(index_path=index_dir), writer=True)
    await search_index.upsert(
        [
            VehicleDocument(
                id="42", make="Toyota", model="Camry", trim="XSE", year=2022, status="active", currentBid=14500.0,
                dealer_id=3, dealer=DealerSummary(id=3, name="Sun Valley Toyota", rating=4.7),
                positions={"pg.vehicles": 10}, version=2,
            ),
            VehicleDocument(id="43", make="Honda", model="Civic", status="active", deleted=True),
        ]
    )  # fmt: skip
    await search_index.flush()
    yield search_index
    await search_index.close()


async def test_detail_has_the_seed_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/vehicles/42")
    assert response.status_code == 200
    body = response.json()
    assert {
        "id": "42",
        "make": "Toyota",
        "model": "Camry",
        "currentBid": 14500.0,
        "questions": [],
    }.items() <= body.items()
    assert body["dealer"]["name"] == "Sun Valley Toyota"
    assert "positions" not in body


async def test_unknown_and_deleted_vehicles_are_404_with_error_shape(client: httpx.AsyncClient) -> None:
    for vehicle_id in ("999", "43"):
        response = await client.get(f"/api/v1/vehicles/{vehicle_id}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert vehicle_id in response.json()["error"]["message"]


async def test_malformed_id_is_422_naming_the_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/vehicles/" + "9" * 65)
    assert response.status_code == 422
    assert response.json()["error"]["problems"][0]["parameter"] == "vehicle_id"


async def test_the_root_points_the_way_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    links = response.json()["links"]
    for name in ("search", "docs", "health"):
        assert (await client.get(links[name])).status_code == 200, name


async def test_health_reports_the_index(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["index"]["documents"] >= 1


async def test_health_counts_what_the_writer_committed_since_the_reader_opened(
    index: SearchIndex, index_dir: Path
) -> None:
    """The API's reader only reloads on demand: /health alone must see another process's new commit (operators
    and the benchmarks poll it while nothing searches)."""
    app = create_app(ApiSettings(index_path=index_dir))  # its own read-only handle, as in the API process
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            before = (await http.get("/health")).json()["index"]["documents"]
            await index.upsert([VehicleDocument(id=str(n), make="Kia", status="active") for n in range(100, 105)])
            await index.flush()
            after = (await http.get("/health")).json()["index"]["documents"]
    assert after == before + 5


async def test_unreachable_index_is_503_with_retry_after() -> None:
    settings = ApiSettings(index_backend="elasticsearch", elasticsearch_url=f"http://127.0.0.1:{free_port()}")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get("/api/v1/vehicles/42")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "unavailable" in response.json()["error"]["message"]
