"""Fixtures of the moderation tests: a migrated database with a listing, the real detectors loaded once."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from marketplace.migrate import apply_migrations
from moderation.detectors import Detector, ModelDetector
from moderation.settings import ModerationSettings
from tests.marketplace.cars_helpers import new_vin

_EMAILS = itertools.count()


@dataclass(frozen=True)
class Listing:
    database_url: str
    vehicle_id: int
    dealer_owner_id: int
    buyer_id: int
    moderator_id: int

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def question(self, body: str, status: str = "pending") -> int:
        rows = self.sql(
            "INSERT INTO questions (vehicle_id, user_id, body, status) VALUES (%s, %s, %s, %s) RETURNING id",
            (self.vehicle_id, self.buyer_id, body, status),
        )
        return int(rows[0][0])

    def item(self, kind: str, item_id: int) -> dict[str, Any]:
        table = {"question": "questions", "answer": "answers"}[kind]
        with psycopg.connect(self.database_url, row_factory=psycopg.rows.dict_row) as conn:
            row = conn.execute(f"SELECT * FROM {table} WHERE id = %s", (item_id,)).fetchone()  # noqa: S608
        assert row is not None
        return row


def user(conn: psycopg.Connection[Any], role: str) -> int:
    row = conn.execute(
        "INSERT INTO users (email, password_hash, full_name, role) VALUES (%s, 'x', %s, %s) RETURNING id",
        (f"{role}{next(_EMAILS)}@example.com", role, role),
    ).fetchone()
    assert row is not None
    return int(row[0])


def create_listing(database_url: str) -> Listing:
    """A dealer (owner), one active vehicle, a buyer and a moderator, inserted directly."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner, buyer, moderator = user(conn, "dealer"), user(conn, "buyer"), user(conn, "moderator")
        dealer = conn.execute(
            "INSERT INTO dealers (owner_id, name, city, state, zip, lat, lon, status) "
            "VALUES (%s, 'Lot Co', 'Denver', 'CO', '80202', 39.75, -104.99, 'verified') RETURNING id",
            (owner,),
        ).fetchone()
        assert dealer is not None
        vehicle = conn.execute(
            "INSERT INTO vehicles (dealer_id, vin, make, model, year, mileage, condition_grade, body_type, fuel, "
            "transmission, drivetrain, exterior_color, city, state, zip, lat, lon, asking_price) VALUES "
            "(%s, %s, 'Toyota', 'Camry', 2021, 25000, 4.2, 'sedan', 'gasoline', 'automatic', 'fwd', 'Blue', "
            "'Denver', 'CO', '80202', 39.75, -104.99, 23900) RETURNING id",
            (dealer[0], new_vin()),
        ).fetchone()
        assert vehicle is not None
    return Listing(database_url, int(vehicle[0]), owner, buyer, moderator)


@pytest.fixture(scope="module")
def listing_factory(database_factory: Callable[[str], str]) -> Callable[[], Listing]:
    """Each call: a fresh migrated database with one listing."""

    def create() -> Listing:
        url = database_factory("moderation")
        apply_migrations(url)
        return create_listing(url)

    return create


@pytest.fixture(scope="session")
def model_detector() -> Detector:
    """The real detectors, loaded once for the test session."""
    return ModelDetector(ModerationSettings())
