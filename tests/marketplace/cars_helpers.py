"""Factories for the cars tests: dealers (inserted directly until /dealers exists), valid VINs, car bodies."""

from __future__ import annotations

import itertools
import random
from typing import Any

import httpx
import psycopg

from marketplace.vin import make_vin
from tests.marketplace.api_client import Member, sign_up

_RNG = random.Random(11)
_SERIALS = itertools.count(1)


def new_vin(year: int = 2021) -> str:
    return make_vin(_RNG, "4T1", "BF1FK", year, next(_SERIALS))


def car_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "vin": new_vin(), "make": "Toyota", "model": "Camry", "trim": "SE", "year": 2021, "mileage": 25_000,
        "condition_grade": 4.2, "body_type": "sedan", "fuel": "gasoline", "transmission": "automatic",
        "drivetrain": "fwd", "exterior_color": "Blue", "zip": "80264", "asking_price": 23_900,
    }  # fmt: skip
    fields.update(overrides)
    return fields


def insert_dealer(database_url: str, owner_id: int, name: str = "Mile High Motors", status: str = "verified") -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO dealers (owner_id, name, rating, city, state, zip, lat, lon, status) "
            "VALUES (%s, %s, 4.6, 'Denver', 'CO', '80202', 39.75, -104.99, %s) RETURNING id",
            (owner_id, name, status),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def dealer_member(client: httpx.AsyncClient, database_url: str, email: str) -> tuple[Member, int]:
    """A signed-in dealer user and the id of the dealership they own."""
    member = await sign_up(client, email, role="dealer")
    return member, insert_dealer(database_url, member.id, name=email.split("@")[0])
