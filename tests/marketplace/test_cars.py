"""/api/v1/cars: create, read, change, delete and list a dealer's cars, over real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from marketplace.vin import with_check_digit
from tests.marketplace.api_client import marketplace_client, sign_up
from tests.marketplace.cars_helpers import car_fields, dealer_member, insert_dealer, new_vin


@pytest.fixture
async def client(migrated_database: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with marketplace_client(migrated_database, tmp_path / "index") as http:
        yield http


def problems_of(response: httpx.Response) -> list[str]:
    return [problem["parameter"] for problem in response.json()["error"]["problems"]]


async def test_dealer_creates_a_car_with_location_from_zip(client: httpx.AsyncClient, migrated_database: str) -> None:
    dealer, dealer_id = await dealer_member(client, migrated_database, "lot@example.com")
    fields = car_fields(
        make="toyota", model=" rav4 ", body_type="SUV", fuel="Plug-in hybrid", zip="98164", exterior_color="dark  BLUE"
    )
    response = await client.post("/api/v1/cars", json=fields, headers=dealer.headers)
    assert response.status_code == 201, response.text
    car = response.json()["data"]
    assert car["dealer_id"] == dealer_id
    assert (car["make"], car["model"], car["exterior_color"]) == ("Toyota", "RAV4", "Dark Blue")  # one spelling
    assert (car["body_type"], car["fuel"], car["status"]) == ("suv", "plug_in_hybrid", "active")
    assert car["location"]["zip"] == "98164"
    assert car["location"]["state"] == "WA"
    assert car["location"]["city"]
    assert car["asking_price"] == 23_900.0

    buyer = await sign_up(client, "buyer@example.com")
    seen = await client.get(f"/api/v1/cars/{car['id']}", headers=buyer.headers)
    assert seen.status_code == 200
    assert seen.json()["data"]["vin"] == fields["vin"]
    assert (await client.get(f"/api/v1/cars/{car['id']}")).status_code == 401


async def test_a_car_listed_without_a_zip_stands_at_its_dealership(
    client: httpx.AsyncClient, migrated_database: str
) -> None:
    dealer, _ = await dealer_member(client, migrated_database, "atlot@example.com")  # the dealership is in 80202
    fields = car_fields()
    del fields["zip"]
    response = await client.post("/api/v1/cars", json=fields, headers=dealer.headers)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["location"] == {
        "zip": "80202", "city": "Denver", "state": "CO", "lat": 39.75, "lon": -104.99}  # fmt: skip
    moved = await client.patch(
        f"/api/v1/cars/{response.json()['data']['id']}", json={"zip": "98164"}, headers=dealer.headers
    )
    assert moved.json()["data"]["location"]["state"] == "WA"
    null_zip = await client.post("/api/v1/cars", json=car_fields(zip=None), headers=dealer.headers)
    assert null_zip.status_code == 201, null_zip.text
    assert null_zip.json()["data"]["location"]["zip"] == "80202"


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"vin": "4T1BF1FK5CU12345"}, "vin"),  # 16 characters
        ({"vin": "4T1BF1FKICU123456"}, "vin"),  # I is never in a VIN
        ({"year": 1975}, "year"),
        ({"year": 2031}, "year"),
        ({"mileage": -1}, "mileage"),
        ({"condition_grade": 5.5}, "condition_grade"),
        ({"condition_grade": 4.25}, "condition_grade"),
        ({"zip": "00000"}, "zip"),
        ({"zip": "8020"}, "zip"),
        ({"body_type": "spaceship"}, "body_type"),
        ({"asking_price": -5}, "asking_price"),
        ({"asking_price": "about 20k"}, "asking_price"),
        ({"mileage": "lots"}, "mileage"),
        ({"status": "sold"}, "status"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_specifications_are_422_naming_the_field(
    client: httpx.AsyncClient, migrated_database: str, overrides: dict[str, Any], parameter: str
) -> None:
    dealer, _ = await dealer_member(client, migrated_database, "val@example.com")
    response = await client.post("/api/v1/cars", json=car_fields(**overrides), headers=dealer.headers)
    assert response.status_code == 422, response.text
    assert problems_of(response) == [parameter]


async def test_an_unknown_field_names_the_one_likely_meant(client: httpx.AsyncClient, migrated_database: str) -> None:
    dealer, _ = await dealer_member(client, migrated_database, "meant@example.com")
    fields = car_fields()
    fields["color"] = fields.pop("exterior_color")
    response = await client.post("/api/v1/cars", json=fields, headers=dealer.headers)
    assert response.status_code == 422
    assert {problem["parameter"]: problem["message"] for problem in response.json()["error"]["problems"]} == {
        "exterior_color": "Field required",
        "color": "unknown field: did you mean exterior_color? (see /docs)",
    }


async def test_vin_check_digit_error_names_the_expected_digit(
    client: httpx.AsyncClient, migrated_database: str
) -> None:
    dealer, _ = await dealer_member(client, migrated_database, "digit@example.com")
    vin = new_vin()
    wrong = vin[:8] + ("0" if vin[8] != "0" else "1") + vin[9:]
    response = await client.post("/api/v1/cars", json=car_fields(vin=wrong), headers=dealer.headers)
    assert response.status_code == 422
    problem = response.json()["error"]["problems"][0]
    assert problem["parameter"] == "vin"
    assert problem["message"].startswith("check digit (position 9)")
    assert f"give {vin[8]!r}" in problem["message"]
    assert with_check_digit(wrong) == vin


async def test_vin_is_unique_per_dealer_and_free_again_after_delete(
    client: httpx.AsyncClient, migrated_database: str
) -> None:
    first, _ = await dealer_member(client, migrated_database, "one@example.com")
    second, _ = await dealer_member(client, migrated_database, "two@example.com")
    fields = car_fields()
    created = await client.post("/api/v1/cars", json=fields, headers=first.headers)
    assert created.status_code == 201
    again = await client.post("/api/v1/cars", json=fields, headers=first.headers)
    assert again.status_code == 409
    assert problems_of(again) == ["vin"]
    other_dealer = await client.post("/api/v1/cars", json=fields, headers=second.headers)
    assert other_dealer.status_code == 201

    car_id = created.json()["data"]["id"]
    deleted = await client.delete(f"/api/v1/cars/{car_id}", headers=first.headers)
    assert deleted.status_code == 200
    assert (await client.get(f"/api/v1/cars/{car_id}", headers=first.headers)).status_code == 404
    with psycopg.connect(migrated_database) as conn:
        row = conn.execute("SELECT deleted_at FROM vehicles WHERE id = %s", (car_id,)).fetchone()
    assert row is not None
    assert row[0] is not None  # soft delete: the row stays so CDC streams the change
    relisted = await client.post("/api/v1/cars", json=fields, headers=first.headers)
    assert relisted.status_code == 201


async def test_only_the_owning_dealer_or_an_admin_changes_a_car(
    client: httpx.AsyncClient, migrated_database: str
) -> None:
    owner, _ = await dealer_member(client, migrated_database, "owner@example.com")
    rival, _ = await dealer_member(client, migrated_database, "rival@example.com")
    buyer = await sign_up(client, "bob@example.com")
    admin = await sign_up(client, "root@example.com", role="admin", database_url=migrated_database)
    car_id = (await client.post("/api/v1/cars", json=car_fields(), headers=owner.headers)).json()["data"]["id"]

    for intruder in (rival, buyer):
        assert (
            await client.patch(f"/api/v1/cars/{car_id}", json={"mileage": 1}, headers=intruder.headers)
        ).status_code == 403
        assert (await client.delete(f"/api/v1/cars/{car_id}", headers=intruder.headers)).status_code == 403
    assert (await client.post("/api/v1/cars", json=car_fields(), headers=buyer.headers)).status_code == 403
    assert (await client.get("/api/v1/cars", headers=buyer.headers)).status_code == 403

    changes = {"asking_price": "$21,999.50", "mileage": "31,200", "zip": "10007", "trim": None}
    changed = await client.patch(f"/api/v1/cars/{car_id}", json=changes, headers=owner.headers)
    assert changed.status_code == 200, changed.text
    body = changed.json()["data"]
    assert (body["asking_price"], body["mileage"], body["location"]["state"], body["trim"]) == (
        21999.5,
        31200,
        "NY",
        None,
    )
    bad = await client.patch(f"/api/v1/cars/{car_id}", json={"make": None}, headers=owner.headers)
    assert bad.status_code == 422
    assert problems_of(bad) == ["make"]
    by_admin = await client.patch(f"/api/v1/cars/{car_id}", json={"status": "withdrawn"}, headers=admin.headers)
    assert by_admin.status_code == 200
    # Withdrawn: hidden from other users, visible to its dealer.
    assert (await client.get(f"/api/v1/cars/{car_id}", headers=buyer.headers)).status_code == 404
    assert (await client.get(f"/api/v1/cars/{car_id}", headers=owner.headers)).status_code == 200
    assert (await client.delete(f"/api/v1/cars/{car_id}", headers=admin.headers)).status_code == 200


async def test_cars_in_auction_or_sold_are_frozen(client: httpx.AsyncClient, migrated_database: str) -> None:
    owner, _ = await dealer_member(client, migrated_database, "frozen@example.com")
    car_id = (await client.post("/api/v1/cars", json=car_fields(), headers=owner.headers)).json()["data"]["id"]
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        conn.execute("UPDATE vehicles SET status = 'sold' WHERE id = %s", (car_id,))
    response = await client.patch(f"/api/v1/cars/{car_id}", json={"mileage": 5}, headers=owner.headers)
    assert response.status_code == 409
    assert (await client.delete(f"/api/v1/cars/{car_id}", headers=owner.headers)).status_code == 409


async def test_users_without_a_dealership_or_suspended_cannot_list(
    client: httpx.AsyncClient, migrated_database: str
) -> None:
    lone = await sign_up(client, "lone@example.com", role="dealer")
    response = await client.post("/api/v1/cars", json=car_fields(), headers=lone.headers)
    assert response.status_code == 403
    assert "/api/v1/dealers" in response.json()["error"]["message"]
    banned = await sign_up(client, "banned@example.com", role="dealer")
    insert_dealer(migrated_database, banned.id, "Shady Cars", status="suspended")
    assert (await client.post("/api/v1/cars", json=car_fields(), headers=banned.headers)).status_code == 403


async def test_inventory_lists_only_own_cars_with_filters_and_pages(
    client: httpx.AsyncClient, migrated_database: str
) -> None:
    dealer, dealer_id = await dealer_member(client, migrated_database, "inv@example.com")
    other, _ = await dealer_member(client, migrated_database, "else@example.com")
    admin = await sign_up(client, "adm@example.com", role="admin", database_url=migrated_database)
    for index in range(5):
        fields = car_fields(
            year=2016 + index, asking_price=10_000 + index * 1_000, status="draft" if index == 0 else "active"
        )
        assert (await client.post("/api/v1/cars", json=fields, headers=dealer.headers)).status_code == 201
    await client.post("/api/v1/cars", json=car_fields(model="Corolla"), headers=other.headers)

    everything = (await client.get("/api/v1/cars", headers=dealer.headers)).json()
    assert everything["pagination"]["total"] == 5
    assert {car["dealer_id"] for car in everything["data"]} == {dealer_id}
    page = (
        await client.get("/api/v1/cars", params={"limit": 2, "page": 2, "sort": "price"}, headers=dealer.headers)
    ).json()
    assert [car["asking_price"] for car in page["data"]] == [12_000.0, 13_000.0]
    assert page["pagination"]["pages"] == 3
    filtered = await client.get(
        "/api/v1/cars", params={"year_min": 2018, "price_max": 13_000, "status": "active"}, headers=dealer.headers
    )
    assert [car["year"] for car in filtered.json()["data"]] == [2019, 2018]
    drafts = await client.get("/api/v1/cars", params={"status": "draft"}, headers=dealer.headers)
    assert drafts.json()["pagination"]["total"] == 1
    foreign = await client.get("/api/v1/cars", params={"dealer_id": dealer_id}, headers=other.headers)
    assert foreign.status_code == 403
    assert (await client.get("/api/v1/cars", headers=admin.headers)).json()["pagination"]["total"] == 6
    one = await client.get("/api/v1/cars", params={"dealer_id": dealer_id}, headers=admin.headers)
    assert one.json()["pagination"]["total"] == 5
    bad = await client.get("/api/v1/cars", params={"sort": "colour"}, headers=dealer.headers)
    assert bad.status_code == 422
    assert problems_of(bad) == ["sort"]
