"""GET /api/v1/vehicles and /vehicles/suggest over a real tantivy index: what a buyer sends and gets back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.search.factory import create_search_index
from connectors.search.port import SearchIndex
from marketplace.catalog import location_for_zip
from schemas.geo import haversine_km
from search_api.settings import ApiSettings
from tests.connectors.search.conftest import make_vehicle

DALLAS_ZIP = "75270"


@pytest.fixture
async def index(index_dir: Path) -> AsyncIterator[SearchIndex]:
    dallas = location_for_zip(DALLAS_ZIP)
    assert dallas is not None
    search_index = create_search_index(ApiSettings(index_path=index_dir), writer=True)
    await search_index.upsert(
        [
            make_vehicle(1, make="Toyota", model="Camry", year=2021, asking_price=24_000.0, state="TX",
                         lat=dallas.lat, lon=dallas.lon),
            make_vehicle(2, make="Toyota", model="Corolla", year=2018, asking_price=14_000.0, state="TX"),
            make_vehicle(3, make="Ford", model="F-150", year=2020, asking_price=38_000.0, state="CA",
                         lat=34.05, lon=-118.24, exterior_color="Red"),
            make_vehicle(4, make="Honda", model="Civic", year=2016, asking_price=9_500.0, state="WA",
                         lat=47.61, lon=-122.33),
            make_vehicle(5, make="Honda", model="Accord", year=2019, asking_price=19_000.0, status="sold"),
            make_vehicle(6, make="Toyota", model="Camry", year=2023, asking_price=29_000.0, state="CA",
                         currentBid=27_500.0, auction_status="live", auction_ends_at="2026-11-24T20:00:00Z"),
        ]
    )  # fmt: skip
    await search_index.flush()
    yield search_index
    await search_index.close()


async def search(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/vehicles", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [vehicle["id"] for vehicle in body["data"]]


def counts(body: dict[str, Any], facet: str) -> dict[Any, int]:
    return {bucket["value"]: bucket["count"] for bucket in body["facets"][facet]}


async def test_response_shape_is_data_facets_pagination(client: httpx.AsyncClient) -> None:
    body = await search(client, limit=2)
    assert set(body) == {"data", "facets", "pagination"}
    assert body["pagination"] == {
        "page": 1, "limit": 2, "total": 5, "pages": 3, "next_cursor": body["pagination"]["next_cursor"],
    }  # fmt: skip
    assert body["pagination"]["next_cursor"]
    assert "positions" not in body["data"][0]
    assert counts(body, "make") == {"Toyota": 3, "Ford": 1, "Honda": 1}  # the sold Accord is not for sale
    assert [bucket["count"] for bucket in body["facets"]["price"]][:2] == [0, 1]


async def test_text_and_filters_with_disjunctive_facets(client: httpx.AsyncClient) -> None:
    body = await search(client, q="toyta", make="Toyota", state=["TX"])
    assert sorted(ids(body)) == ["1", "2"]
    assert counts(body, "state") == {"TX": 2, "CA": 1}  # state counts ignore the state filter
    assert counts(body, "make") == {"Toyota": 2}  # "toyta" still narrows the make counts


async def test_ranges_radius_and_distance_sort(client: httpx.AsyncClient) -> None:
    assert ids(await search(client, price_min=10_000, price_max=30_000, sort="price")) == ["2", "1", "6"]
    near = await search(client, zip=DALLAS_ZIP, radius_km=50)
    assert ids(near) == ["1"]
    assert near["data"][0]["distance_km"] == 0
    by_distance = await search(client, lat=32.7767, lon=-96.797, sort="distance")
    dallas = location_for_zip(DALLAS_ZIP)
    assert dallas is not None
    kilometres = [v["distance_km"] for v in by_distance["data"] if v["distance_km"] is not None]
    assert kilometres == sorted(kilometres)
    assert kilometres[-1] == round(haversine_km(32.7767, -96.797, 47.61, -122.33), 2)


async def test_ending_soonest_and_auction_status(client: httpx.AsyncClient) -> None:
    body = await search(client, auction_status="live", sort="ending_soonest")
    assert ids(body) == ["6"]
    assert body["data"][0]["currentBid"] == 27_500.0


async def test_filter_values_match_whatever_case_the_buyer_typed(client: httpx.AsyncClient) -> None:
    assert sorted(ids(await search(client, make="toyota", state="tx"))) == ["1", "2"]
    assert ids(await search(client, make="FORD", model="f-150", body_type=" Sedan ")) == ["3"]
    assert ids(await search(client, make="FORD", model="f-150", body_type="truck")) == []
    assert sorted(ids(await search(client, model=["camry", " COROLLA "]))) == ["1", "2", "6"]
    assert ids(await search(client, color="RED")) == ["3"]
    assert len(ids(await search(client, city=" austin"))) == 5


async def test_unknown_filter_values_give_empty_results_not_errors(client: httpx.AsyncClient) -> None:
    body = await search(client, make="Lamborghini", color="Plaid")
    assert body["data"] == []
    assert body["pagination"]["total"] == 0


async def test_cursor_pages_through_everything_once(client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": "-price", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = await search(client, **params)
        seen += ids(body)
        cursor = body["pagination"]["next_cursor"]
        if not cursor:
            break
    assert seen == ["3", "6", "1", "2", "4"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"price_min": -1}, "price_min"),
        ({"price_min": 500, "price_max": 100}, "price_min"),
        ({"radius_km": 10}, "radius_km"),
        ({"lat": 32.7}, "lon"),
        ({"zip": "00000", "radius_km": 5}, "zip"),
        ({"zip": "1000"}, "zip"),
        ({"limit": 101}, "limit"),
        ({"page": 10_000}, "page"),
        ({"page": 0}, "page"),
        ({"sort": "cheapest"}, "sort"),
        ({"sort": "distance"}, "sort"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"year_min": "new"}, "year_min"),
        ({"colour": "Red"}, "colour"),
    ],
)
async def test_malformed_parameters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, Any], parameter: str
) -> None:
    response = await client.get("/api/v1/vehicles", params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["problems"][0]["parameter"] == parameter
    assert parameter in error["message"]


async def test_facet_only_requests_and_details_carry_etags(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/v1/vehicles", params={"limit": 0, "make": "Toyota"})
    assert first.status_code == 200
    assert first.headers["cache-control"].startswith("public, max-age=")
    assert first.json()["data"] == []
    again = await client.get(
        "/api/v1/vehicles", params={"limit": 0, "make": "Toyota"}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    detail = await client.get("/api/v1/vehicles/1")
    assert detail.headers["etag"]
    unchanged = await client.get("/api/v1/vehicles/1", headers={"If-None-Match": detail.headers["etag"]})
    assert unchanged.status_code == 304


async def test_detail_etag_changes_with_the_document(client: httpx.AsyncClient, index: SearchIndex) -> None:
    before = (await client.get("/api/v1/vehicles/1")).headers["etag"]
    await index.upsert([make_vehicle(1, make="Toyota", model="Camry", asking_price=23_000.0, version=2)])
    await index.flush()
    after = await client.get("/api/v1/vehicles/1", headers={"If-None-Match": before})
    assert after.status_code == 200
    assert after.json()["asking_price"] == 23_000.0


async def test_suggest_offers_makes_and_models(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/vehicles/suggest", params={"q": "toy"})
    assert response.status_code == 200
    texts = [suggestion["text"] for suggestion in response.json()["data"]]
    assert texts[0] == "Toyota"
    assert "Toyota Camry" in texts
    assert "Toyota Corolla" in texts
    camry = next(s for s in response.json()["data"] if s["text"] == "Toyota Camry")
    assert camry["count"] == 2
    assert (await client.get("/api/v1/vehicles/suggest", params={"q": ""})).status_code == 422
