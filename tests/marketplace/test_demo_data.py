from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from marketplace.catalog import US_BOUNDS, load_catalog, location_for_zip
from marketplace.demo_data import DemoDataSummary, bulk_load_vehicles, load_demo_data
from marketplace.demo_vehicles import NEARBY_KM
from marketplace.vin import is_valid_vin, model_year_code
from schemas.geo import haversine_km

AS_OF = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(migrated_database_factory: Callable[[str], str]) -> tuple[str, DemoDataSummary]:
    url = migrated_database_factory("demo")
    return url, load_demo_data(url, as_of=AS_OF)


def fetch(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def count(url: str, table: str) -> int:
    return int(fetch(url, f"SELECT count(*) FROM {table}")[0][0])


def test_summary_matches_the_tables(demo: tuple[str, DemoDataSummary]) -> None:
    url, summary = demo
    assert summary.loaded
    assert (summary.dealers, summary.vehicles) == (200, 5_000)
    assert summary.users == count(url, "users")
    assert summary.dealers == count(url, "dealers")
    assert summary.vehicles == count(url, "vehicles")
    assert summary.auctions == count(url, "auctions") > 0
    assert summary.lots == count(url, "auction_lots") > 0
    assert summary.bids == count(url, "bids") > 0
    assert summary.questions == count(url, "questions") > 0
    assert summary.answers == count(url, "answers")


def test_loads_only_into_an_empty_marketplace(demo: tuple[str, DemoDataSummary]) -> None:
    url, _ = demo
    again = load_demo_data(url, as_of=AS_OF)
    assert again == DemoDataSummary(loaded=False, seconds=again.seconds)
    assert count(url, "vehicles") == 5_000


def test_vehicles_match_the_catalog(demo: tuple[str, DemoDataSummary]) -> None:
    url, _ = demo
    catalog = load_catalog()
    rows = fetch(
        url,
        "SELECT make, model, trim, year, body_type, fuel, transmission, drivetrain, vin, asking_price FROM vehicles",
    )
    for make, model_name, trim_name, year, body_type, fuel, transmission, drivetrain, vin, price in rows:
        model = catalog.model(make, model_name)  # raises if the model does not belong to the make
        trim = next(t for t in model.trims if t.name == trim_name)
        assert trim.offered_in(year)
        assert AS_OF.year - 20 <= year <= AS_OF.year
        assert (body_type, fuel) == (trim.body_type, trim.fuel)
        assert transmission in trim.transmissions
        assert drivetrain in trim.drivetrains
        assert is_valid_vin(vin)
        assert vin[:3] == trim.wmi
        assert vin[9] == model_year_code(year)
        assert 500 <= price <= 150_000


def test_vehicles_are_located_near_their_dealer(demo: tuple[str, DemoDataSummary]) -> None:
    url, _ = demo
    rows = fetch(
        url,
        "SELECT v.zip, v.city, v.state, v.lat, v.lon, d.lat, d.lon "
        "FROM vehicles v JOIN dealers d ON d.id = v.dealer_id",
    )
    south, west, north, east = US_BOUNDS
    for zip_code, city, state, lat, lon, dealer_lat, dealer_lon in rows:
        location = location_for_zip(zip_code)
        assert location is not None
        assert (location.city, location.state, location.lat, location.lon) == (city, state, lat, lon)
        assert south <= lat <= north
        assert west <= lon <= east
        assert haversine_km(lat, lon, dealer_lat, dealer_lon) <= NEARBY_KM


def test_mileage_condition_and_price_are_plausible(demo: tuple[str, DemoDataSummary]) -> None:
    url, _ = demo
    rows = fetch(url, "SELECT year, mileage, condition_grade, asking_price FROM vehicles")
    by_age: dict[int, list[tuple[int, float, float]]] = {}
    for year, mileage, grade, price in rows:
        assert mileage >= 0
        assert 1.0 <= grade <= 5.0
        by_age.setdefault(AS_OF.year - year, []).append((mileage, float(grade), float(price)))
    for age in (3, 5, 8):
        miles_per_year = statistics.median(m for m, _, _ in by_age[age]) / age
        assert 9_000 <= miles_per_year <= 15_000
    young = [v for age in (0, 1, 2) for v in by_age[age]]
    old = [v for age in range(10, 21) for v in by_age.get(age, [])]
    assert statistics.mean(g for _, g, _ in young) > statistics.mean(g for _, g, _ in old) + 0.8
    assert statistics.median(p for _, _, p in young) > 2 * statistics.median(p for _, _, p in old)


def test_colours_images_and_descriptions(demo: tuple[str, DemoDataSummary]) -> None:
    url, _ = demo
    rows = fetch(url, "SELECT vin, exterior_color, images, description, year, make FROM vehicles")
    colours = Counter(row[1] for row in rows)
    assert {colour for colour, _ in colours.most_common(3)} == {"White", "Black", "Gray"}
    for vin, _, images, description, year, make in rows:
        assert 1 <= len(images) <= 3
        assert images[0] == f"https://images.auction-hub.example/vehicles/{vin}/1.jpg"
        assert description.startswith(f"{year} {make} ")


def test_dealers_are_plausible(demo: tuple[str, DemoDataSummary]) -> None:
    url, _ = demo
    rows = fetch(url, "SELECT name, rating, zip, city, owner_id FROM dealers")
    assert all(2.5 <= rating <= 5.0 for _, rating, _, _, _ in rows)
    assert all(location_for_zip(zip_code) is not None for _, _, zip_code, _, _ in rows)
    assert all(owner is not None for *_, owner in rows)
    assert len({name for name, *_ in rows}) > len(rows) * 0.8


def test_auction_lots_are_coherent(demo: tuple[str, DemoDataSummary]) -> None:
    url, _ = demo
    rows = fetch(
        url,
        "SELECT a.status, a.dealer_id, v.dealer_id, v.status, l.status, l.current_bid, l.reserve_price, "
        "(SELECT max(amount) FROM bids b WHERE b.lot_id = l.id), l.starting_price "
        "FROM auction_lots l JOIN auctions a ON a.id = l.auction_id JOIN vehicles v ON v.id = l.vehicle_id",
    )
    for auction_status, host, owner, vehicle_status, lot_status, current, reserve, top_bid, starting in rows:
        assert host == owner
        assert current == top_bid
        assert starting % 100 == 0
        assert reserve is None or (reserve % 100 == 0 and reserve >= starting)
        if auction_status == "closed":
            assert lot_status in ("sold", "unsold")
            if lot_status == "sold":
                assert vehicle_status == "sold"
                assert reserve is None or current >= reserve
        else:
            assert (lot_status, vehicle_status) == ("open", "in_auction")
        if auction_status == "upcoming":
            assert top_bid is None


def test_same_seed_same_data(migrated_database_factory: Callable[[str], str]) -> None:
    first, second = migrated_database_factory("seed_a"), migrated_database_factory("seed_b")
    for url in (first, second):
        load_demo_data(url, dealers=20, vehicles=300, seed=42, as_of=AS_OF)
    query = "SELECT vin, dealer_id, year, mileage, asking_price, description FROM vehicles ORDER BY id"
    assert fetch(first, query) == fetch(second, query)


def test_bulk_load_adds_valid_vehicles(demo: tuple[str, DemoDataSummary]) -> None:
    url, _ = demo
    summary = bulk_load_vehicles(url, 20_000, dealers=300, seed=5, batch_rows=7_000, as_of=AS_OF)
    assert summary.vehicles == 20_000
    assert summary.dealers == 100  # the demo had 200; the bulk load tops them up to 300
    assert count(url, "vehicles") == 25_000
    assert count(url, "dealers") == 300
    invalid = fetch(url, "SELECT count(*) FROM vehicles WHERE NOT vin_is_valid(vin)")
    assert invalid == [(0,)]
