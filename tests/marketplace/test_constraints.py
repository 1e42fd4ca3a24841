"""The schema refuses bad rows itself, whatever client writes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

GOOD_VEHICLE: dict[str, Any] = {
    "vin": "1HGCM82633A004352",
    "make": "Honda",
    "model": "Accord",
    "trim": "EX",
    "year": 2003,
    "mileage": 164_000,
    "condition_grade": 3.2,
    "body_type": "sedan",
    "fuel": "gasoline",
    "transmission": "automatic",
    "drivetrain": "fwd",
    "exterior_color": "Silver",
    "city": "Columbus",
    "state": "OH",
    "zip": "43215",
    "lat": 39.9653,
    "lon": -83.0039,
    "asking_price": 3995,
}


@pytest.fixture(scope="module")
def database_url(migrated_database_factory: Callable[[str], str]) -> str:
    return migrated_database_factory("constraints")


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection whose transaction is rolled back after the test, so tests share one database."""
    with psycopg.connect(database_url) as connection:
        yield connection
        connection.rollback()


@pytest.fixture
def dealer_id(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "INSERT INTO dealers (name, rating, city, state, zip, lat, lon) "
        "VALUES ('Columbus Honda', 4.5, 'Columbus', 'OH', '43215', 39.9653, -83.0039) RETURNING id"
    ).fetchone()
    assert row is not None
    return int(row[0])


def insert_vehicle(conn: psycopg.Connection, dealer_id: int, **changes: Any) -> None:
    values = {**GOOD_VEHICLE, **changes, "dealer_id": dealer_id}
    columns = ", ".join(values)
    placeholders = ", ".join(f"%({name})s" for name in values)
    conn.execute(f"INSERT INTO vehicles ({columns}) VALUES ({placeholders})", values)


def test_good_vehicle_is_accepted(conn: psycopg.Connection, dealer_id: int) -> None:
    insert_vehicle(conn, dealer_id)
    assert conn.execute("SELECT count(*) FROM vehicles").fetchone() == (1,)


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        ({"vin": "1HGCM82643A004352"}, "vehicles_vin_check"),  # wrong check digit
        ({"vin": "1HGCM82633A0O4352"}, "vehicles_vin_check"),  # O
        ({"vin": "IHGCM82633A004352"}, "vehicles_vin_check"),  # I
        ({"vin": "1HGCM82633A004Q52"}, "vehicles_vin_check"),  # Q
        ({"vin": "1hgcm82633a004352"}, "vehicles_vin_check"),  # lower case
        ({"year": 1970}, "vehicles_year_check"),
        ({"year": 2031}, "vehicles_year_check"),
        ({"mileage": -1}, "vehicles_mileage_check"),
        ({"asking_price": -0.01}, "vehicles_asking_price_check"),
        ({"state": "oh"}, "vehicles_state_check"),
        ({"state": "O1"}, "vehicles_state_check"),
        ({"zip": "4321"}, "vehicles_zip_check"),
        ({"condition_grade": 5.5}, "vehicles_condition_grade_check"),
        ({"body_type": "limousine"}, "vehicles_body_type_check"),
        ({"fuel": "steam"}, "vehicles_fuel_check"),
        ({"transmission": "sequential"}, "vehicles_transmission_check"),
        ({"drivetrain": "6wd"}, "vehicles_drivetrain_check"),
        ({"lat": 91.0}, "vehicles_lat_check"),
        ({"status": "lost"}, "vehicles_status_check"),
    ],
)
def test_vehicle_check_constraints(
    conn: psycopg.Connection, dealer_id: int, changes: dict[str, Any], constraint: str
) -> None:
    with pytest.raises(errors.CheckViolation) as caught:
        insert_vehicle(conn, dealer_id, **changes)
    assert caught.value.diag.constraint_name == constraint


def test_vin_is_unique(conn: psycopg.Connection, dealer_id: int) -> None:
    insert_vehicle(conn, dealer_id)
    with pytest.raises(errors.UniqueViolation):
        insert_vehicle(conn, dealer_id)


def test_vehicle_needs_a_dealer(conn: psycopg.Connection) -> None:
    with pytest.raises(errors.ForeignKeyViolation):
        insert_vehicle(conn, 999_999)


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        (
            "INSERT INTO dealers (name, rating, city, state, zip, lat, lon) "
            "VALUES ('X', 5.5, 'Austin', 'TX', '78701', 30.27, -97.74)",
            "dealers_rating_check",
        ),
        (
            "INSERT INTO dealers (name, city, state, zip, lat, lon) "
            "VALUES ('X', 'Austin', 'Tex', '78701', 30.27, -97.74)",
            None,  # char(2) refuses a third character before any CHECK runs
        ),
        (
            "INSERT INTO users (email, password_hash, full_name) VALUES ('not-an-email', '!', 'A B')",
            "users_email_check",
        ),
        (
            "INSERT INTO users (email, password_hash, full_name, role) VALUES ('a@b.example', '!', 'A B', 'root')",
            "users_role_check",
        ),
    ],
)
def test_other_constraints(conn: psycopg.Connection, sql: str, constraint: str | None) -> None:
    with pytest.raises((errors.CheckViolation, errors.StringDataRightTruncation)) as caught:
        conn.execute(sql)
    if constraint is not None:
        assert caught.value.diag.constraint_name == constraint


def test_auction_must_end_after_it_starts(conn: psycopg.Connection, dealer_id: int) -> None:
    with pytest.raises(errors.CheckViolation):
        conn.execute(
            "INSERT INTO auctions (dealer_id, title, starts_at, ends_at) "
            "VALUES (%s, 'Sale', now(), now() - interval '1 hour')",
            (dealer_id,),
        )
