"""Schemathesis over the whole OpenAPI schema, in-process against a migrated database, signed in as an admin.

Bounded (a few examples per operation, derandomized so a failure reproduces): no 5xx and every documented
response matches its schema. The SSE feeds (`.../stream`) are left out: a response never ends by design, which an
in-process client reading whole bodies cannot take; tests/bidding/test_feed.py and test_outbid.py cover them.
A little data is seeded so that ids 1 and 2 exist for most resources.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import response_schema_conformance

from hub.api import create_app
from marketplace.tokens import issue_access_token
from marketplace.vin import make_vin
from search_api.settings import ApiSettings
from tests.marketplace.api_client import JWT_SECRET

pytestmark = pytest.mark.timeout(180)

MAX_EXAMPLES = 20
# A bcrypt hash of nothing anyone types: the seeded accounts are reached with tokens, not passwords.
# Path parameters aimed at seeded rows: user 3 is the buyer (so the admin never deletes itself).
SEEDED_IDS = {"user_id": 3}
UNUSABLE_HASH = "$2b$04$" + "." * 53


def seed(database_url: str) -> dict[str, str]:
    """An admin, a dealer with cars and an auction with bids, a buyer; returns the admin's auth header."""
    rng = random.Random(3)
    serials = itertools.count(700_000)
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:

        def one(query: str, params: tuple[Any, ...]) -> int:
            row = conn.execute(query, params).fetchone()
            assert row is not None
            return int(row[0])

        def user(email: str, role: str) -> int:
            return one(
                "INSERT INTO users (email, password_hash, full_name, role) VALUES (%s, %s, %s, %s) RETURNING id",
                (email, UNUSABLE_HASH, email.split("@")[0], role),
            )

        admin = user("admin@example.com", "admin")
        owner = user("dealer@example.com", "dealer")
        buyer = user("buyer@example.com", "buyer")
        dealer = one(
            "INSERT INTO dealers (owner_id, name, city, state, zip, lat, lon, status) "
            "VALUES (%s, 'Fuzz Motors', 'Denver', 'CO', '80202', 39.75, -104.99, 'verified') RETURNING id",
            (owner,),
        )
        cars = [
            one(
                "INSERT INTO vehicles (dealer_id, vin, make, model, year, mileage, condition_grade, body_type, "
                "fuel, transmission, drivetrain, exterior_color, city, state, zip, lat, lon, asking_price, status) "
                "VALUES (%s, %s, 'Honda', 'Civic', 2020, 30000, 4.0, 'sedan', 'gasoline', 'automatic', 'fwd', "
                "'Red', 'Denver', 'CO', '80202', 39.75, -104.99, 18500, %s) RETURNING id",
                (dealer, make_vin(rng, "2HG", "FC2F5", 2020, next(serials)), status),
            )
            for status in ("in_auction", "in_auction", "active", "active")
        ]
        auction = one(
            "INSERT INTO auctions (dealer_id, title, starts_at, ends_at) VALUES (%s, 'Fuzz sale', %s, %s) RETURNING id",
            (dealer, now - timedelta(hours=1), now + timedelta(days=1)),
        )
        for number, car in enumerate(cars[:2], 1):
            lot = one(
                "INSERT INTO auction_lots (auction_id, vehicle_id, lot_number, starting_price, reserve_price) "
                "VALUES (%s, %s, %s, 10000, 12000) RETURNING id",
                (auction, car, number),
            )
            conn.execute("INSERT INTO bids (lot_id, user_id, amount) VALUES (%s, %s, 10100)", (lot, buyer))
    token = issue_access_token(admin, "admin", JWT_SECRET, timedelta(minutes=30))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def admin_headers(migrated_database_factory: Callable[[str], str]) -> tuple[str, dict[str, str]]:
    database_url = migrated_database_factory("fuzz")
    return database_url, seed(database_url)


@pytest.fixture(scope="module")
def api_schema(
    admin_headers: tuple[str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BaseSchema]:
    database_url, _ = admin_headers
    index_path: Path = tmp_path_factory.mktemp("fuzz") / "index"
    app = create_app(
        ApiSettings(index_path=index_path, database_url=database_url, jwt_secret=JWT_SECRET, bcrypt_rounds=4)
    )
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    shutdown_lifespans()  # closes the app's pool before the database is dropped


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def fuzz_operation(operation: APIOperation, headers: dict[str, str], statuses: Counter[int]) -> None:
    """Schema-valid and schema-breaking cases, plus valid cases aimed at the seeded rows."""
    strategies = [operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    names = [parameter.name for parameter in operation.path_parameters]
    if names:
        seeded = {name: SEEDED_IDS.get(name, 1) for name in names}
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=seeded))

    @FUZZ_SETTINGS
    @given(case=st.one_of(strategies))
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])
        statuses[response.status_code] += 1

    fuzz()


def test_no_server_errors_and_responses_match_the_schema(
    api_schema: BaseSchema, admin_headers: tuple[str, dict[str, str]]
) -> None:
    _, headers = admin_headers
    failures: list[str] = []
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    operations = []
    for result in api_schema.get_all_operations():
        if isinstance(result, Ok):
            operation = result.ok()
            if not operation.path.endswith("/stream"):
                operations.append(operation)
        else:
            failures.append(f"an operation's schema is invalid: {result.err()}")
    assert len(operations) > 10
    for operation in operations:
        try:
            fuzz_operation(operation, headers, statuses[operation.label])
        except Exception as exc:  # every operation runs; the report lists each failing one
            failures.append(f"{operation.label}: {exc}")
    print({label: dict(counts) for label, counts in statuses.items()})  # noqa: T201
    assert not failures, "\n\n".join(failures)
