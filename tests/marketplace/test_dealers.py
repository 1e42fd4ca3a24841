"""Dealers over real PostgreSQL: registration, verification, store changes, listings, auctions, statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.marketplace.api_client import Member, marketplace_client, sign_up
from tests.marketplace.dealer_rows import (
    insert_auction,
    insert_bid,
    insert_lot,
    insert_vehicle,
    register_store,
)

STORE = {
    "name": "Lone Star Autos",
    "address": "400 Pine St",
    "zip": "79605",
    "licence_number": "tx-dl-4411 ",
    "contact_email": "sales@lonestar.example",
    "phone": "+1 325 555 0100",
}


@pytest.fixture
async def client(migrated_database: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with marketplace_client(migrated_database, tmp_path / "index") as http:
        yield http


async def admin_of(client: httpx.AsyncClient, database_url: str) -> Member:
    return await sign_up(client, "admin@example.com", "admin", database_url)


async def test_a_buyer_registers_a_pending_store_and_becomes_a_dealer(client: httpx.AsyncClient) -> None:
    buyer = await sign_up(client, "rita@example.com")
    response = await client.post("/api/v1/dealers", json=STORE, headers=buyer.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    store = body["data"]
    assert store["status"] == "pending"
    assert (store["city"], store["state"], store["zip"]) == ("Abilene", "TX", "79605")
    assert store["lat"] == pytest.approx(32.432)
    assert store["licence_number"] == "TX-DL-4411"
    assert store["owner_id"] == buyer.id
    assert "refresh" in body["message"]
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": buyer.refresh_token})
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"})
    assert me.json()["data"]["role"] == "dealer"
    mine = await client.get("/api/v1/dealers/me", headers=buyer.headers)
    assert (mine.status_code, mine.json()["data"]["id"]) == (200, store["id"])
    assert mine.json()["data"]["licence_number"] == "TX-DL-4411"  # the owner sees the private fields
    nobody = await sign_up(client, "nobody@example.com")
    none = await client.get("/api/v1/dealers/me", headers=nobody.headers)
    assert none.status_code == 404
    assert "POST /api/v1/dealers" in none.json()["error"]["message"]


async def test_one_store_per_account_and_licence_numbers_are_unique(client: httpx.AsyncClient) -> None:
    dealer = await sign_up(client, "sam@example.com", "dealer")
    assert (await client.post("/api/v1/dealers", json=STORE, headers=dealer.headers)).status_code == 201
    second = await client.post(
        "/api/v1/dealers", json={**STORE, "licence_number": "TX-OTHER-1"}, headers=dealer.headers
    )
    assert second.status_code == 409
    assert "already registered store" in second.json()["error"]["message"]
    rival = await sign_up(client, "tom@example.com", "dealer")
    same_licence = await client.post(
        "/api/v1/dealers", json={**STORE, "licence_number": " TX-DL-4411"}, headers=rival.headers
    )
    assert same_licence.status_code == 409
    assert "licence number" in same_licence.json()["error"]["message"]


async def test_registration_errors_name_the_parameter(client: httpx.AsyncClient, migrated_database: str) -> None:
    buyer = await sign_up(client, "uma@example.com")
    unknown_zip = await client.post("/api/v1/dealers", json={**STORE, "zip": "00000"}, headers=buyer.headers)
    assert unknown_zip.status_code == 422
    assert unknown_zip.json()["error"]["problems"] == [
        {"parameter": "zip", "message": "unknown US ZIP code '00000'; give the store's 5-digit ZIP code"}
    ]
    missing = await client.post("/api/v1/dealers", json={"name": "X"}, headers=buyer.headers)
    assert missing.status_code == 422
    assert {p["parameter"] for p in missing.json()["error"]["problems"]} >= {"address", "zip", "licence_number"}
    bad_email = await client.post("/api/v1/dealers", json={**STORE, "contact_email": "nope"}, headers=buyer.headers)
    assert bad_email.json()["error"]["problems"][0]["parameter"] == "contact_email"
    own_status = await client.post("/api/v1/dealers", json={**STORE, "status": "verified"}, headers=buyer.headers)
    assert own_status.status_code == 422
    # Nothing was written by the refused requests: the account is still a buyer without a store.
    with psycopg.connect(migrated_database) as conn:
        assert conn.execute("SELECT count(*) FROM dealers").fetchone() == (0,)
        assert conn.execute("SELECT role FROM users WHERE id = %s", (buyer.id,)).fetchone() == ("buyer",)


async def test_staff_accounts_cannot_own_a_store(client: httpx.AsyncClient, migrated_database: str) -> None:
    moderator = await sign_up(client, "mod@example.com", "moderator", migrated_database)
    admin = await admin_of(client, migrated_database)
    for staff in (moderator, admin):
        response = await client.post("/api/v1/dealers", json=STORE, headers=staff.headers)
        assert response.status_code == 403
    assert (await client.post("/api/v1/dealers", json=STORE)).status_code == 401


async def test_admins_verify_and_suspend_and_owners_cannot(client: httpx.AsyncClient, migrated_database: str) -> None:
    owner = await sign_up(client, "vic@example.com", "dealer")
    dealer_id = await register_store(client, owner)
    admin = await admin_of(client, migrated_database)
    url = f"/api/v1/dealers/{dealer_id}/status"
    assert (await client.patch(url, json={"status": "verified"}, headers=owner.headers)).status_code == 403
    in_body = await client.patch(f"/api/v1/dealers/{dealer_id}", json={"status": "verified"}, headers=owner.headers)
    assert in_body.status_code == 422
    verified = await client.patch(url, json={"status": "verified"}, headers=admin.headers)
    assert verified.status_code == 200
    assert verified.json()["data"]["status"] == "verified"
    suspended = await client.patch(url, json={"status": "suspended"}, headers=admin.headers)
    assert suspended.json()["data"]["status"] == "suspended"
    wrong = await client.patch(url, json={"status": "banned"}, headers=admin.headers)
    assert wrong.status_code == 422
    assert wrong.json()["error"]["problems"][0]["parameter"] == "status"
    missing = await client.patch("/api/v1/dealers/999999/status", json={"status": "verified"}, headers=admin.headers)
    assert missing.status_code == 404


async def test_owners_update_their_store_and_a_new_licence_needs_verification(
    client: httpx.AsyncClient, migrated_database: str
) -> None:
    owner = await sign_up(client, "wes@example.com", "dealer")
    dealer_id = await register_store(client, owner)
    admin = await admin_of(client, migrated_database)
    await client.patch(f"/api/v1/dealers/{dealer_id}/status", json={"status": "verified"}, headers=admin.headers)
    url = f"/api/v1/dealers/{dealer_id}"
    moved = await client.patch(url, json={"zip": "79102", "name": "Panhandle Autos"}, headers=owner.headers)
    assert moved.status_code == 200
    store = moved.json()["data"]
    assert (store["name"], store["city"], store["zip"], store["status"]) == (
        "Panhandle Autos", "Amarillo", "79102", "verified"
    )  # fmt: skip
    unknown = await client.patch(url, json={"zip": "00000"}, headers=owner.headers)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["problems"][0]["parameter"] == "zip"
    relicensed = await client.patch(url, json={"licence_number": "TX-NEW-9"}, headers=owner.headers)
    assert relicensed.json()["data"]["status"] == "pending"
    assert relicensed.json()["data"]["licence_number"] == "TX-NEW-9"
    rival = await sign_up(client, "xia@example.com", "dealer")
    rival_store = await register_store(client, rival)
    taken = await client.patch(
        f"/api/v1/dealers/{rival_store}", json={"licence_number": "tx-new-9"}, headers=rival.headers
    )
    assert taken.status_code == 409


async def test_contact_and_licence_are_for_the_owner_and_admins(
    client: httpx.AsyncClient, migrated_database: str
) -> None:
    owner = await sign_up(client, "yan@example.com", "dealer")
    dealer_id = await register_store(client, owner)
    buyer = await sign_up(client, "zoe@example.com")
    admin = await admin_of(client, migrated_database)
    url = f"/api/v1/dealers/{dealer_id}"
    public = (await client.get(url, headers=buyer.headers)).json()["data"]
    assert public["name"] == "yan Motors"
    assert not {"licence_number", "contact_email", "owner_id"} & public.keys()
    for privileged in (owner, admin):
        private = (await client.get(url, headers=privileged.headers)).json()["data"]
        assert private["contact_email"] == "yan@example.com"
        assert private["licence_number"].startswith("TX-")
    listed = (await client.get("/api/v1/dealers", headers=buyer.headers)).json()["data"]
    assert "licence_number" not in listed[0]
    assert (await client.get("/api/v1/dealers/424242", headers=buyer.headers)).status_code == 404


async def test_list_filters_by_status_and_state_and_paginates(
    client: httpx.AsyncClient, migrated_database: str
) -> None:
    admin = await admin_of(client, migrated_database)
    ids = []
    for n, zip_code in enumerate(("79605", "79102", "99513")):  # TX, TX, AK
        owner = await sign_up(client, f"owner{n}@example.com", "dealer")
        ids.append(await register_store(client, owner, zip_code=zip_code))
    await client.patch(f"/api/v1/dealers/{ids[1]}/status", json={"status": "verified"}, headers=admin.headers)
    everyone = await client.get("/api/v1/dealers", params={"limit": 2}, headers=admin.headers)
    assert everyone.json()["pagination"] == {"page": 1, "limit": 2, "total": 3, "pages": 2}
    assert [d["id"] for d in everyone.json()["data"]] == ids[:2]
    page_two = await client.get("/api/v1/dealers", params={"limit": 2, "page": 2}, headers=admin.headers)
    assert [d["id"] for d in page_two.json()["data"]] == ids[2:]
    beyond = await client.get("/api/v1/dealers", params={"limit": 2, "page": 5}, headers=admin.headers)
    assert (beyond.json()["data"], beyond.json()["pagination"]["total"]) == ([], 3)
    texas = await client.get("/api/v1/dealers", params={"state": "tx"}, headers=admin.headers)
    assert [d["id"] for d in texas.json()["data"]] == ids[:2]
    pending_tx = await client.get("/api/v1/dealers", params={"state": "TX", "status": "pending"}, headers=admin.headers)
    assert [d["id"] for d in pending_tx.json()["data"]] == [ids[0]]
    bad = await client.get("/api/v1/dealers", params={"status": "gone"}, headers=admin.headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["problems"][0]["parameter"] == "status"


async def test_cars_and_auctions_of_a_dealer(client: httpx.AsyncClient, migrated_database: str) -> None:
    owner = await sign_up(client, "al@example.com", "dealer")
    dealer_id = await register_store(client, owner)
    buyer = await sign_up(client, "bea@example.com")
    active = insert_vehicle(migrated_database, dealer_id, "18500.00")
    draft = insert_vehicle(migrated_database, dealer_id, "9000.00", "draft")
    insert_vehicle(migrated_database, dealer_id, "7000.00", deleted=True)
    sold = insert_vehicle(migrated_database, dealer_id, "12000.00", "sold")
    cars_url = f"/api/v1/dealers/{dealer_id}/cars"
    public = (await client.get(cars_url, headers=buyer.headers)).json()
    assert [car["id"] for car in public["data"]] == [active, sold]
    assert public["data"][0]["asking_price"] == 18500.0
    assert public["data"][0]["make"] == "Honda"
    own = (await client.get(cars_url, headers=owner.headers)).json()
    assert [car["id"] for car in own["data"]] == [active, draft, sold]
    assert own["pagination"]["total"] == 3
    drafts = await client.get(cars_url, params={"status": "draft"}, headers=buyer.headers)
    assert drafts.json()["data"] == []
    own_drafts = await client.get(cars_url, params={"status": "draft"}, headers=owner.headers)
    assert [car["id"] for car in own_drafts.json()["data"]] == [draft]

    older = insert_auction(migrated_database, dealer_id, "closed", days_ago=10)
    newer = insert_auction(migrated_database, dealer_id, "upcoming", days_ago=-2)
    insert_lot(migrated_database, older, active, 1, "unsold", None)
    insert_lot(migrated_database, older, sold, 2, "sold", "12500.00")
    auctions_url = f"/api/v1/dealers/{dealer_id}/auctions"
    listed = (await client.get(auctions_url, headers=buyer.headers)).json()
    assert [(a["id"], a["lot_count"]) for a in listed["data"]] == [(newer, 0), (older, 2)]
    closed = (await client.get(auctions_url, params={"status": "closed"}, headers=buyer.headers)).json()
    assert [a["id"] for a in closed["data"]] == [older]
    assert (await client.get("/api/v1/dealers/99999/cars", headers=buyer.headers)).status_code == 404
    assert (await client.get("/api/v1/dealers/99999/auctions", headers=buyer.headers)).status_code == 404


async def test_statistics_are_computed_from_auctions_lots_and_bids(
    client: httpx.AsyncClient, migrated_database: str
) -> None:
    db = migrated_database
    owner = await sign_up(client, "cy@example.com", "dealer")
    dealer_id = await register_store(client, owner)
    rival = await sign_up(client, "di@example.com", "dealer")
    rival_id = await register_store(client, rival)
    bidder = await sign_up(client, "ed@example.com")
    url = f"/api/v1/dealers/{dealer_id}/statistics"

    empty = (await client.get(url, headers=owner.headers)).json()["data"]
    assert empty == {
        "dealer_id": dealer_id, "total_auctions": 0, "live_auctions": 0, "cars_listed": 0, "cars_sold": 0,
        "lots_sold": 0, "lots_unsold": 0, "lots_awaiting_decision": 0, "total_bids": 0, "earnings": 0.0,
        "average_sale_price": None, "average_asking_price": None,
        "sale_to_asking_ratio": None,
    }  # fmt: skip

    v1 = insert_vehicle(db, dealer_id, "20000.00", "sold")  # sold at auction for 21,000
    v2 = insert_vehicle(db, dealer_id, "30000.00", "in_auction")  # lot sold for 27,000, row not yet updated
    v3 = insert_vehicle(db, dealer_id, "15000.00")  # lot unsold at 12,000: no sale
    insert_vehicle(db, dealer_id, "10000.00", "sold")  # sold outside any auction: counted, no sale price
    v5 = insert_vehicle(db, dealer_id, "5000.00")  # in a live auction, open lot
    insert_vehicle(db, dealer_id, "8000.00", "draft")
    insert_vehicle(db, dealer_id, "6000.00", "sold", deleted=True)  # removed listing: sold, but not listed
    a1 = insert_auction(db, dealer_id, "closed", days_ago=9)
    a2 = insert_auction(db, dealer_id, "closed", days_ago=6)
    a3 = insert_auction(db, dealer_id, "live", days_ago=0)
    lot1 = insert_lot(db, a1, v1, 1, "sold", "21000.00")
    lot3 = insert_lot(db, a1, v3, 2, "unsold", "12000.00")
    lot2 = insert_lot(db, a2, v2, 1, "sold", "27000.00")
    insert_lot(db, a3, v5, 1, "open", None)
    for lot, amount in ((lot1, "20000"), (lot1, "21000"), (lot2, "27000"), (lot3, "12000")):
        insert_bid(db, lot, bidder.id, amount)
    # The rival's sale must not leak into these numbers.
    rival_car = insert_vehicle(db, rival_id, "50000.00", "sold")
    rival_lot = insert_lot(db, insert_auction(db, rival_id), rival_car, 1, "sold", "99999.00")
    insert_bid(db, rival_lot, bidder.id, "99999")

    stats = (await client.get(url, headers=owner.headers)).json()["data"]
    assert stats == {
        "dealer_id": dealer_id,
        "total_auctions": 3,
        "live_auctions": 1,
        "cars_listed": 6,  # v1, v2, v3, v4, v5, the draft; not the deleted one
        "cars_sold": 4,  # v1 and v2 (lots sold), v4 and the deleted one (rows say sold)
        "lots_sold": 2,
        "lots_unsold": 1,  # lot3
        "lots_awaiting_decision": 0,
        "total_bids": 4,
        "earnings": 48000.0,  # 21,000 + 27,000
        "average_sale_price": 24000.0,  # 48,000 / 2
        "average_asking_price": 25000.0,  # (20,000 + 30,000) / 2, the asking prices of those same cars
        "sale_to_asking_ratio": 0.96,  # 48,000 / 50,000
    }
    # Statistics follow the data: a late correction of a lot shows up at once, no counter to drift.
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE auction_lots SET status = 'sold' WHERE id = %s", (lot3,))
    after = (await client.get(url, headers=owner.headers)).json()["data"]
    assert (after["lots_sold"], after["cars_sold"], after["earnings"]) == (3, 5, 60000.0)
    assert after["average_sale_price"] == 20000.0
    assert after["average_asking_price"] == pytest.approx(21666.67)
    assert after["sale_to_asking_ratio"] == pytest.approx(0.9231)
    assert after["lots_unsold"] == 0

    # Closed below the reserve: the lot waits for the dealer ("if bid"), then sells at the price agreed.
    v6 = insert_vehicle(db, dealer_id, "10000.00", "in_auction")
    lot6 = insert_lot(db, a2, v6, 2, "if_bid", "9000.00")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO lot_results (lot_id, auction_id, outcome, high_bid, high_bidder_id, bid_count, closed_at, "
            "status) VALUES (%s, %s, 'if_bid', 9000, %s, 1, now(), 'pending_seller')",
            (lot6, a2, bidder.id),
        )
    waiting = (await client.get(url, headers=owner.headers)).json()["data"]
    assert (waiting["lots_awaiting_decision"], waiting["lots_sold"], waiting["earnings"]) == (1, 3, 60000.0)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE lot_results SET status = 'sold', final_price = 9500 WHERE lot_id = %s", (lot6,))
        conn.execute("UPDATE auction_lots SET status = 'sold' WHERE id = %s", (lot6,))
    agreed = (await client.get(url, headers=owner.headers)).json()["data"]
    assert (agreed["lots_awaiting_decision"], agreed["lots_sold"]) == (0, 4)
    assert agreed["earnings"] == 69500.0  # the counter-offer's 9,500, not the 9,000 high bid

    rival_view = await client.get(url, headers=rival.headers)
    assert rival_view.status_code == 403
    assert (await client.get(f"/api/v1/dealers/{rival_id}/statistics", headers=rival.headers)).status_code == 200
