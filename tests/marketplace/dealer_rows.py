"""Rows the dealer tests insert straight into PostgreSQL: cars, auctions, lots and bids (other engineers own
the endpoints that create them), plus a helper that registers a store through the API."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import psycopg

from marketplace.vin import with_check_digit
from tests.marketplace.api_client import Member

_serials = itertools.count(1)
_licences = itertools.count(1)


async def register_store(
    client: httpx.AsyncClient, member: Member, *, zip_code: str = "79605", name: str | None = None
) -> int:
    """Register `member`'s store through the API; returns the dealer id."""
    response = await client.post(
        "/api/v1/dealers",
        json={"name": name or f"{member.email.split('@')[0]} Motors", "address": "1 Main St", "zip": zip_code,
              "licence_number": f"TX-{next(_licences):06d}", "contact_email": member.email},
        headers=member.headers,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["id"])


def insert_vehicle(
    database_url: str, dealer_id: int, asking_price: str, status: str = "active", *, deleted: bool = False
) -> int:
    vin = with_check_digit(f"1HGCM8260LA{next(_serials):06d}")
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO vehicles (dealer_id, vin, make, model, year, mileage, condition_grade, body_type, fuel, "
            "transmission, drivetrain, exterior_color, city, state, zip, lat, lon, asking_price, status, deleted_at) "
            "VALUES (%s, %s, 'Honda', 'Accord', 2020, 30000, 4.0, 'sedan', 'gasoline', 'automatic', 'fwd', 'Blue', "
            "'Abilene', 'TX', '79605', 32.432, -99.7724, %s, %s, %s) RETURNING id",
            (dealer_id, vin, Decimal(asking_price), status, datetime.now(UTC) if deleted else None),
        ).fetchone()
    assert row is not None
    return int(row[0])


def insert_auction(database_url: str, dealer_id: int, status: str = "closed", *, days_ago: int = 3) -> int:
    starts = datetime.now(UTC) - timedelta(days=days_ago)
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO auctions (dealer_id, title, starts_at, ends_at, status) VALUES (%s, %s, %s, %s, %s) "
            "RETURNING id",
            (dealer_id, f"Auction of dealer {dealer_id}", starts, starts + timedelta(days=1), status),
        ).fetchone()
    assert row is not None
    return int(row[0])


def insert_lot(
    database_url: str, auction_id: int, vehicle_id: int, lot_number: int, status: str, current_bid: str | None
) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO auction_lots (auction_id, vehicle_id, lot_number, starting_price, current_bid, status) "
            "VALUES (%s, %s, %s, 1000, %s, %s) RETURNING id",
            (auction_id, vehicle_id, lot_number, Decimal(current_bid) if current_bid else None, status),
        ).fetchone()
    assert row is not None
    return int(row[0])


def insert_bid(database_url: str, lot_id: int, user_id: int, amount: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO bids (lot_id, user_id, amount) VALUES (%s, %s, %s) RETURNING id",
            (lot_id, user_id, Decimal(amount)),
        ).fetchone()
    assert row is not None
    return int(row[0])
