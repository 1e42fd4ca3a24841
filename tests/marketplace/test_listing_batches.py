"""Concurrent creates coalesced into multi-row inserts: each car still gets its own answer; real PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
import pytest

from hub.errors import Conflict, Forbidden
from marketplace import listing_store
from marketplace.accounts import CurrentUser
from marketplace.db import Connection, create_pool
from marketplace.listing_batches import CarBatcher
from marketplace.listings import CarSpec, Listings, columns_of
from tests.marketplace.cars_helpers import car_fields, insert_dealer

_emails = itertools.count(1)


def insert_user(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO users (email, password_hash, full_name, role) VALUES (%s, 'x', 'Dealer', 'dealer') "
            "RETURNING id",
            (f"batch{next(_emails)}@example.com",),
        ).fetchone()
    assert row is not None
    return int(row[0])


def dealer_user(database_url: str, status: str = "verified") -> tuple[CurrentUser, int | None]:
    user_id = insert_user(database_url)
    dealer_id = insert_dealer(database_url, user_id, f"Dealer {user_id}", status=status) if status else None
    return CurrentUser(user_id, "dealer"), dealer_id


def car(**overrides: Any) -> dict[str, Any]:
    return columns_of(CarSpec.model_validate(car_fields(**overrides)))


@pytest.fixture
async def pool(migrated_database: str) -> AsyncIterator[Any]:
    pool = create_pool(migrated_database, max_size=4)
    await pool.open()
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows per batch statement the batcher sent."""
    sizes: list[int] = []
    insert = listing_store.insert_cars_for_owners

    async def counted(conn: Connection, cars: Sequence[tuple[int, dict[str, Any]]]) -> Any:
        sizes.append(len(cars))
        return await insert(conn, cars)

    monkeypatch.setattr(listing_store, "insert_cars_for_owners", counted)
    return sizes


def vehicle_rows(database_url: str) -> list[tuple[int, str]]:
    with psycopg.connect(database_url) as conn:
        return [(int(d), str(v)) for d, v in conn.execute("SELECT dealer_id, vin FROM vehicles ORDER BY id")]


async def test_concurrent_cars_of_several_dealers_go_in_one_statement(
    migrated_database: str, pool: Any, statements: list[int]
) -> None:
    (ana, ana_dealer), (bo, bo_dealer) = dealer_user(migrated_database), dealer_user(migrated_database)
    batcher = CarBatcher(pool)
    cars = [(ana, car()), (bo, car(zip=None)), (ana, car(zip="79605", asking_price=9_999))]
    created = await asyncio.gather(*(batcher.insert(user.id, values) for user, values in cars))
    assert statements == [3]
    assert created[1] is not None
    assert (created[1]["zip"], created[1]["city"]) == ("80202", "Denver")  # no ZIP: the dealership's
    assert [row["dealer_id"] for row in created if row] == [ana_dealer, bo_dealer, ana_dealer]
    assert [row["vin"] for row in created if row] == [values["vin"] for _, values in cars]
    assert created[2] is not None
    assert (created[2]["city"], float(created[2]["asking_price"])) == ("Abilene", 9999.0)
    assert len({row["id"] for row in created if row}) == 3
    assert len(vehicle_rows(migrated_database)) == 3


async def test_cars_the_batch_cannot_take_get_their_own_answer(
    migrated_database: str, pool: Any, statements: list[int]
) -> None:
    ana, ana_dealer = dealer_user(migrated_database)
    nobody, _ = dealer_user(migrated_database, status="")
    banned, _ = dealer_user(migrated_database, status="suspended")
    listed = car()
    listings = Listings(pool, CarBatcher(pool))
    await listings.create(ana, CarSpec.model_validate(car_fields(vin=listed["vin"])))
    twin = car_fields()
    attempts = [
        (ana, car_fields()),
        (ana, twin),
        (ana, twin),  # the same VIN twice at once: one is listed, the other is a conflict
        (ana, car_fields(vin=listed["vin"])),  # already listed
        (nobody, car_fields()),
        (banned, car_fields()),
    ]
    statements.clear()
    results = await asyncio.gather(
        *(listings.create(user, CarSpec.model_validate(fields)) for user, fields in attempts), return_exceptions=True
    )
    assert statements[0] == 5  # the repeated VIN waits for its own insert
    assert isinstance(results[0], dict)
    assert [isinstance(result, dict) for result in results[1:3]].count(True) == 1
    assert [type(result) for result in results[1:3]].count(Conflict) == 1
    assert isinstance(results[3], Conflict)
    assert isinstance(results[4], Forbidden)
    assert "register your dealership" in str(results[4])
    assert isinstance(results[5], Forbidden)
    assert "suspended" in str(results[5])
    assert [dealer for dealer, _ in vehicle_rows(migrated_database)] == [ana_dealer] * 3


async def test_a_statement_error_sends_every_car_of_the_batch_alone(
    migrated_database: str, pool: Any, statements: list[int]
) -> None:
    ana, ana_dealer = dealer_user(migrated_database)
    batcher = CarBatcher(pool)
    listings = Listings(pool, batcher)
    good = CarSpec.model_validate(car_fields())
    broken = {**car(), "state": "colorado"}  # past the API's rules, the table's CHECK refuses it
    bad, created = await asyncio.gather(batcher.insert(ana.id, broken), listings.create(ana, good))
    assert statements == [2]
    assert bad is None
    assert (created["vin"], created["dealer_id"]) == (good.vin, ana_dealer)
    assert vehicle_rows(migrated_database) == [(ana_dealer, good.vin)]


async def test_a_lone_car_is_not_held_back(migrated_database: str, pool: Any, statements: list[int]) -> None:
    ana, ana_dealer = dealer_user(migrated_database)
    listings = Listings(pool, CarBatcher(pool))
    for zip_code in ("80264", None, "79605"):
        created = await listings.create(ana, CarSpec.model_validate(car_fields(zip=zip_code)))
        assert created["dealer_id"] == ana_dealer
        assert created["zip"] == (zip_code or "80202")
    assert statements == [1, 1, 1]
