"""/api/v1/auctions over real PostgreSQL: validation, ownership, car status, derived status, participants."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from marketplace.vin import make_vin
from tests.marketplace.api_client import Member, marketplace_client, sign_up

RNG = random.Random(11)
SERIALS = itertools.count(300_000)


@dataclass
class Dealer:
    member: Member
    dealer_id: int

    @property
    def headers(self) -> dict[str, str]:
        return self.member.headers


class Market:
    """The API client plus direct SQL for what other endpoints own (dealers, cars, bids)."""

    def __init__(self, client: httpx.AsyncClient, database_url: str) -> None:
        self.client = client
        self.database_url = database_url
        self.emails = itertools.count()

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    async def member(self, role: str = "buyer") -> Member:
        return await sign_up(self.client, f"{role}{next(self.emails)}@example.com", role, self.database_url)

    async def dealer(self, status: str = "verified") -> Dealer:
        member = await self.member("dealer")
        rows = self.sql(
            "INSERT INTO dealers (owner_id, name, city, state, zip, lat, lon, status) "
            "VALUES (%s, 'Lot Co', 'Denver', 'CO', '80202', 39.75, -104.99, %s) RETURNING id",
            (member.id, status),
        )
        return Dealer(member, int(rows[0][0]))

    def car(self, dealer: Dealer, status: str = "active") -> int:
        vin = make_vin(RNG, "4T1", "BF1FK", 2021, next(SERIALS))
        rows = self.sql(
            "INSERT INTO vehicles (dealer_id, vin, make, model, year, mileage, condition_grade, body_type, fuel, "
            "transmission, drivetrain, exterior_color, city, state, zip, lat, lon, asking_price, status) VALUES "
            "(%s, %s, 'Toyota', 'Camry', 2021, 25000, 4.2, 'sedan', 'gasoline', 'automatic', 'fwd', 'Blue', "
            "'Denver', 'CO', '80202', 39.75, -104.99, 23900, %s) RETURNING id",
            (dealer.dealer_id, vin, status),
        )
        return int(rows[0][0])

    def car_status(self, vehicle_id: int) -> str:
        return str(self.sql("SELECT status FROM vehicles WHERE id = %s", (vehicle_id,))[0][0])

    def bid(self, auction_id: int, user: Member, amount: int, lot_number: int = 1) -> None:
        self.sql(
            "INSERT INTO bids (lot_id, user_id, amount) "
            "SELECT id, %s, %s FROM auction_lots WHERE auction_id = %s AND lot_number = %s",
            (user.id, amount, auction_id, lot_number),
        )

    def shift_schedule(self, auction_id: int, starts_in: timedelta, ends_in: timedelta) -> None:
        now = datetime.now(UTC)
        self.sql(
            "UPDATE auctions SET starts_at = %s, ends_at = %s WHERE id = %s",
            (now + starts_in, now + ends_in, auction_id),
        )

    async def create(self, dealer: Dealer | Member, cars: list[int], **overrides: Any) -> httpx.Response:
        return await self.client.post("/api/v1/auctions", json=auction_json(cars, **overrides), headers=dealer.headers)

    async def created(self, dealer: Dealer, cars: list[int], **overrides: Any) -> dict[str, Any]:
        response = await self.create(dealer, cars, **overrides)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()["data"]
        return data


def auction_json(cars: list[int], **overrides: Any) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=1)
    body: dict[str, Any] = {
        "title": "Weekend sale",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=2)).isoformat(),
        "lots": [
            {
                "vehicle_id": car,
                "starting_price": 10_000,
                "reserve_price": 15_000,
                "buy_now_price": 22_000,
                "bid_increments": [[0, 100], [20_000, 250]],
            }
            for car in cars
        ],
    }
    body.update(overrides)
    return body


def problem(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    return str(response.json()["error"]["problems"][0]["parameter"])


@pytest.fixture
async def market(migrated_database: str, tmp_path: Path) -> AsyncIterator[Market]:
    async with marketplace_client(migrated_database, tmp_path / "index") as client:
        yield Market(client, migrated_database)


async def test_dealer_schedules_an_auction_and_its_cars_go_in_auction(market: Market) -> None:
    dealer = await market.dealer()
    cars = [market.car(dealer), market.car(dealer)]
    auction = await market.created(dealer, cars, description="Two Camrys")
    assert auction["status"] == "upcoming"
    assert auction["dealer_id"] == dealer.dealer_id
    assert [lot["vehicle_id"] for lot in auction["lots"]] == cars
    assert [lot["lot_number"] for lot in auction["lots"]] == [1, 2]
    lot = auction["lots"][0]
    assert lot["reserve_price"] == 15_000
    assert lot["bid_increments"] == [[0, 100], [20_000, 250]]
    assert lot["min_increment"] == 100
    assert lot["buy_now_price"] == 22_000
    assert [market.car_status(car) for car in cars] == ["in_auction", "in_auction"]

    buyer = await market.member()
    seen = (await market.client.get(f"/api/v1/auctions/{auction['id']}", headers=buyer.headers)).json()["data"]
    assert seen["lots"][0]["reserve_price"] is None
    assert seen["lots"][0]["has_reserve"] is True
    assert (await market.client.get(f"/api/v1/auctions/{auction['id']}")).status_code == 401


async def test_lot_defaults_and_optional_prices(market: Market) -> None:
    dealer = await market.dealer()
    car = market.car(dealer)
    body = auction_json([car])
    body["lots"] = [{"vehicle_id": car, "starting_price": "5000.50"}]
    response = await market.client.post("/api/v1/auctions", json=body, headers=dealer.headers)
    assert response.status_code == 201, response.text
    lot = response.json()["data"]["lots"][0]
    assert lot["starting_price"] == 5000.5
    assert lot["reserve_price"] is None
    assert lot["has_reserve"] is False
    assert lot["buy_now_price"] is None
    assert lot["bid_increments"] == [[0, 100]]


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"ends_at": "start"}, "ends_at"),
        ({"starts_at": "past"}, "starts_at"),
        ({"starts_at": "naive"}, "starts_at"),
        ({"reserve_price": 9_000}, "lots[0].reserve_price"),
        ({"buy_now_price": 10_000}, "lots[0].buy_now_price"),
        ({"buy_now_price": 12_000}, "lots[0].buy_now_price"),  # below the 15,000 reserve
        ({"bid_increments": [[0, 100], [0, 200]]}, "lots[0].bid_increments"),
        ({"bid_increments": [[5_000, 100], [1_000, 200]]}, "lots[0].bid_increments"),
        ({"bid_increments": [[0, 0]]}, "lots[0].bid_increments"),
        ({"bid_increments": [[20_000, 100]]}, "lots[0].bid_increments"),  # starts above the starting price
        ({"bid_increments": []}, "lots.0.bid_increments"),
        ({"starting_price": -1}, "lots.0.starting_price"),
        ({"starting_price": "1.001"}, "lots.0.starting_price"),
    ],
)
async def test_invalid_auctions_name_the_parameter(market: Market, change: dict[str, Any], parameter: str) -> None:
    dealer = await market.dealer()
    car = market.car(dealer)
    body = auction_json([car])
    start = datetime.now(UTC) + timedelta(days=1)
    if change.get("ends_at") == "start":
        body["ends_at"] = body["starts_at"]
    elif change.get("starts_at") == "past":
        body["starts_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    elif change.get("starts_at") == "naive":
        body["starts_at"] = start.replace(tzinfo=None).isoformat()
    else:
        body["lots"][0].update(change)
    assert problem(await market.client.post("/api/v1/auctions", json=body, headers=dealer.headers)) == parameter
    assert market.car_status(car) == "active"


async def test_cars_must_be_the_dealers_own_active_and_free(market: Market) -> None:
    dealer, rival = await market.dealer(), await market.dealer()
    mine, theirs = market.car(dealer), market.car(rival)
    assert problem(await market.create(dealer, [mine, theirs])) == "lots[1].vehicle_id"
    assert problem(await market.create(dealer, [mine, mine])) == "lots[1].vehicle_id"
    assert problem(await market.create(dealer, [10**9])) == "lots[0].vehicle_id"
    market.sql("UPDATE vehicles SET deleted_at = now() WHERE id = %s", (theirs,))
    assert problem(await market.create(rival, [theirs])) == "lots[0].vehicle_id"

    draft = market.car(dealer, status="draft")
    refused = await market.create(dealer, [mine, draft])
    assert refused.status_code == 409
    assert "draft" in refused.json()["error"]["message"]
    assert market.car_status(mine) == "active"  # nothing of the refused auction stayed

    first = await market.created(dealer, [mine])
    again = await market.create(dealer, [mine])
    assert again.status_code == 409
    assert f"auction {first['id']}" in again.json()["error"]["message"]


async def test_two_auctions_racing_for_one_car(market: Market) -> None:
    dealer = await market.dealer()
    car = market.car(dealer)
    responses = await asyncio.gather(*(market.create(dealer, [car]) for _ in range(4)))
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409]


async def test_who_may_create_auctions(market: Market) -> None:
    dealer = await market.dealer()
    car = market.car(dealer)
    buyer = await market.member()
    assert (await market.create(buyer, [car])).status_code == 403
    storeless = await market.member("dealer")
    response = await market.create(storeless, [car])
    assert response.status_code == 403
    assert "/api/v1/dealers" in response.json()["error"]["message"]
    other = await market.dealer()
    assert (await market.create(other, [car], dealer_id=dealer.dealer_id)).status_code == 403
    suspended = await market.dealer(status="suspended")
    assert (await market.create(suspended, [market.car(suspended)])).status_code == 403

    admin = await market.member("admin")
    assert problem(await market.create(admin, [car])) == "dealer_id"
    made = await market.create(admin, [car], dealer_id=dealer.dealer_id)
    assert made.status_code == 201, made.text
    assert made.json()["data"]["dealer_id"] == dealer.dealer_id


async def test_update_while_scheduled_only_by_owner_or_admin(market: Market) -> None:
    dealer = await market.dealer()
    old, new = market.car(dealer), market.car(dealer)
    auction = await market.created(dealer, [old])
    url = f"/api/v1/auctions/{auction['id']}"
    other, buyer, admin = await market.dealer(), await market.member(), await market.member("admin")
    assert (await market.client.patch(url, json={"title": "Mine"}, headers=other.headers)).status_code == 403
    assert (await market.client.patch(url, json={"title": "Mine"}, headers=buyer.headers)).status_code == 403

    start = datetime.now(UTC) + timedelta(days=3)
    changes = {
        "title": "  Moved sale ",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=5)).isoformat(),
        "lots": [{"vehicle_id": new, "starting_price": 8_000, "bid_increments": [[0, 50], [10_000, 200]]}],
    }
    response = await market.client.patch(url, json=changes, headers=dealer.headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["title"] == "Moved sale"
    assert datetime.fromisoformat(data["starts_at"]) == start
    assert [lot["vehicle_id"] for lot in data["lots"]] == [new]
    assert (market.car_status(old), market.car_status(new)) == ("active", "in_auction")

    bad_end = await market.client.patch(url, json={"ends_at": start.isoformat()}, headers=dealer.headers)
    assert problem(bad_end) == "ends_at"
    assert (await market.client.patch(url, json={"description": "ok"}, headers=admin.headers)).status_code == 200

    market.shift_schedule(auction["id"], timedelta(hours=-1), timedelta(hours=3))
    live = await market.client.patch(url, json={"title": "Too late"}, headers=dealer.headers)
    assert live.status_code == 409
    assert "live" in live.json()["error"]["message"]


async def test_a_new_schedule_replaces_the_end_pre_bids_recorded_on_the_lots(market: Market) -> None:
    dealer = await market.dealer()
    auction = await market.created(dealer, [market.car(dealer)])
    market.sql("UPDATE auction_lots SET ends_at = %s WHERE auction_id = %s",
               (datetime.now(UTC) + timedelta(days=9), auction["id"]))  # fmt: skip
    start = datetime.now(UTC) + timedelta(days=1)
    moved = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat()}
    response = await market.client.patch(f"/api/v1/auctions/{auction['id']}", json=moved, headers=dealer.headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [lot["ends_at"] for lot in data["lots"]] == [data["ends_at"]]


async def test_delete_only_without_bids_and_cancel_restores_cars(market: Market) -> None:
    dealer = await market.dealer()
    first, second = market.car(dealer), market.car(dealer)
    quiet = await market.created(dealer, [first])
    other = await market.dealer()
    assert (await market.client.delete(f"/api/v1/auctions/{quiet['id']}", headers=other.headers)).status_code == 403
    deleted = await market.client.delete(f"/api/v1/auctions/{quiet['id']}", headers=dealer.headers)
    assert deleted.status_code == 200, deleted.text
    assert market.car_status(first) == "active"
    assert (await market.client.get(f"/api/v1/auctions/{quiet['id']}", headers=dealer.headers)).status_code == 404

    busy = await market.created(dealer, [first, second])
    market.shift_schedule(busy["id"], timedelta(minutes=-5), timedelta(hours=2))
    market.bid(busy["id"], await market.member(), 10_100)
    refused = await market.client.delete(f"/api/v1/auctions/{busy['id']}", headers=dealer.headers)
    assert refused.status_code == 409
    assert "cancel" in refused.json()["error"]["message"]

    cancelled = await market.client.post(f"/api/v1/auctions/{busy['id']}/cancel", headers=dealer.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"]["status"] == "cancelled"
    assert {lot["status"] for lot in cancelled.json()["data"]["lots"]} == {"withdrawn"}
    assert (market.car_status(first), market.car_status(second)) == ("active", "active")
    again = await market.client.post(f"/api/v1/auctions/{busy['id']}/cancel", headers=dealer.headers)
    assert again.status_code == 409
    assert (await market.created(dealer, [first]))["status"] == "upcoming"  # the car is free again


async def test_list_by_derived_status_and_dealer_paginated(market: Market) -> None:
    dealer, other = await market.dealer(), await market.dealer()
    ids = [(await market.created(dealer, [market.car(dealer)]))["id"] for _ in range(4)]
    theirs = (await market.created(other, [market.car(other)]))["id"]
    market.shift_schedule(ids[0], timedelta(hours=-1), timedelta(hours=1))  # live, by the clock only
    market.shift_schedule(ids[1], timedelta(hours=-3), timedelta(hours=-1))  # closed, by the clock only
    market.sql("UPDATE auctions SET status = 'cancelled' WHERE id = %s", (ids[2],))
    buyer = await market.member()

    async def listed(**params: Any) -> dict[str, Any]:
        response = await market.client.get("/api/v1/auctions", params=params, headers=buyer.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def found(body: dict[str, Any]) -> set[int]:
        return {item["id"] for item in body["data"]}

    assert found(await listed()) == {ids[0], ids[3], theirs}
    assert found(await listed(status="live")) == {ids[0]}
    assert found(await listed(status="closed")) == {ids[1]}
    assert found(await listed(status="cancelled")) == {ids[2]}
    assert found(await listed(status="upcoming", dealer_id=dealer.dealer_id)) == {ids[3]}
    assert {item["status"] for item in (await listed())["data"]} == {"live", "upcoming"}
    first_page = await listed(limit=2, page=1)
    second_page = await listed(limit=2, page=2)
    assert first_page["pagination"] == {"page": 1, "limit": 2, "total": 3, "pages": 2}
    assert found(first_page) | found(second_page) == {ids[0], ids[3], theirs}
    wrong = await market.client.get("/api/v1/auctions", params={"status": "gone"}, headers=buyer.headers)
    assert wrong.status_code == 422


async def test_an_auction_past_its_end_stays_live_while_a_late_bid_extends_a_lot(market: Market) -> None:
    """Soft close moves a lot's end past the auction's: the auction reads live (and lists as live) until that lot
    closes, and the lot shows its own end; a lot closed below its reserve reads `if_bid`."""
    dealer = await market.dealer()
    auction = await market.created(dealer, [market.car(dealer), market.car(dealer)])
    market.shift_schedule(auction["id"], timedelta(hours=-2), timedelta(seconds=-30))
    extended, below_reserve = (lot["id"] for lot in auction["lots"])
    market.sql("UPDATE auction_lots SET ends_at = now() + interval '90 seconds' WHERE id = %s", (extended,))
    market.sql("UPDATE auction_lots SET status = 'if_bid' WHERE id = %s", (below_reserve,))
    buyer = await market.member()

    async def read() -> dict[str, Any]:
        response = await market.client.get(f"/api/v1/auctions/{auction['id']}", headers=buyer.headers)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    data = await read()
    lots = {lot["id"]: lot for lot in data["lots"]}
    assert data["status"] == "live"
    assert lots[below_reserve]["status"] == "if_bid"
    assert lots[extended]["ends_at"] > data["ends_at"]
    assert lots[below_reserve]["ends_at"] == data["ends_at"]
    live = await market.client.get("/api/v1/auctions", params={"status": "live"}, headers=buyer.headers)
    assert auction["id"] in {item["id"] for item in live.json()["data"]}

    market.sql("UPDATE auction_lots SET status = 'sold' WHERE id = %s", (extended,))
    assert (await read())["status"] == "closed"


async def test_participants_and_bids(market: Market) -> None:
    dealer = await market.dealer()
    auction = await market.created(dealer, [market.car(dealer), market.car(dealer)])
    market.shift_schedule(auction["id"], timedelta(minutes=-5), timedelta(hours=2))
    ann, bob = await market.member(), await market.member()
    for amount in (10_100, 10_300):
        market.bid(auction["id"], ann, amount)
    market.bid(auction["id"], bob, 10_200)
    market.bid(auction["id"], bob, 11_000, lot_number=2)
    market.bid(auction["id"], ann, 11_500, lot_number=2)
    url = f"/api/v1/auctions/{auction['id']}"

    seen_by_buyer = (await market.client.get(f"{url}/participants", headers=bob.headers)).json()["data"]
    assert seen_by_buyer["total_bids"] == 5
    assert seen_by_buyer["participant_count"] == 2
    assert [(p["user_id"], p["bid_count"]) for p in seen_by_buyer["participants"]] == [(ann.id, 3), (bob.id, 2)]
    assert {p["email"] for p in seen_by_buyer["participants"]} == {None}
    for reader in (dealer, await market.member("admin")):
        seen = (await market.client.get(f"{url}/participants", headers=reader.headers)).json()["data"]
        assert {p["email"] for p in seen["participants"]} == {ann.email, bob.email}
    assert (await market.client.get(url, headers=bob.headers)).json()["data"]["total_bids"] == 5

    bids = (await market.client.get(f"{url}/bids", params={"limit": 2}, headers=bob.headers)).json()
    assert bids["pagination"]["total"] == 5
    assert len(bids["data"]) == 2
    assert set(bids["data"][0]) == {"id", "lot_id", "lot_number", "user_id", "amount", "currency", "placed_at"}
    listed = (await market.client.get("/api/v1/auctions", params={"status": "live"}, headers=bob.headers)).json()
    assert listed["data"][0]["total_bids"] == 5
    assert listed["data"][0]["lot_count"] == 2
    assert (await market.client.get("/api/v1/auctions/999999/participants", headers=bob.headers)).status_code == 404
