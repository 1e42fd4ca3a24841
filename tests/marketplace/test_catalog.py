from __future__ import annotations

import pytest

from marketplace.catalog import (
    US_BOUNDS,
    estimate_used_price,
    load_catalog,
    load_locations,
    location_for_zip,
)

STATES_AND_DC = set(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY".split()
)


def trim_names(make: str, model: str) -> set[str]:
    return {trim.name for trim in load_catalog().model(make, model).trims}


def test_catalog_has_real_makes_models_and_trims() -> None:
    catalog = load_catalog()
    assert len(catalog.makes) >= 25
    assert {"LE", "SE", "XLE", "XSE"} <= trim_names("Toyota", "Camry")
    assert {"XL", "XLT", "Lariat", "Platinum"} <= trim_names("Ford", "F-150")
    assert {"330i", "M340i"} <= trim_names("BMW", "3 Series")
    assert trim_names("Tesla", "Model 3")
    assert trim_names("Honda", "Civic")
    assert trim_names("Chevrolet", "Silverado 1500")


def test_catalog_is_consistent() -> None:
    catalog = load_catalog()
    for make in catalog.makes:
        for model in make.models:
            assert model.make == make.name
            assert 1981 <= model.first_year <= model.last_year <= 2030
            low, high = model.new_price_range
            assert 10_000 <= low <= high <= 200_000
            for trim in model.trims:
                assert (trim.make, trim.model) == (make.name, model.name)
                assert model.first_year <= trim.first_year <= trim.last_year <= model.last_year
    assert load_catalog().model("Tesla", "Model Y").trims[0].fuel == "electric"
    assert load_catalog().model("Ford", "F-150").body_types == {"truck"}


def test_locations_cover_every_state_with_real_zips() -> None:
    locations = load_locations()
    assert len(locations) >= 300
    assert {location.state for location in locations} == STATES_AND_DC
    zips = [location.zip for location in locations]
    assert len(set(zips)) == len(zips)
    assert all(len(zip_code) == 5 and zip_code.isdigit() for zip_code in zips)
    south, west, north, east = US_BOUNDS
    assert all(south <= loc.lat <= north and west <= loc.lon <= east for loc in locations)


@pytest.mark.parametrize(
    ("zip_code", "city", "lat", "lon"),
    [
        ("10009", "New York", 40.726, -73.980),
        ("60608", "Chicago", 41.852, -87.669),
        ("02133", "Boston", 42.358, -71.060),
        ("98164", "Seattle", 47.606, -122.332),
        ("99513", "Anchorage", 61.214, -149.885),
        ("82001", "Cheyenne", 41.144, -104.796),
        ("85003", "Phoenix", 33.451, -112.077),
    ],
)
def test_known_zip_coordinates(zip_code: str, city: str, lat: float, lon: float) -> None:
    location = location_for_zip(zip_code)
    assert location is not None
    assert location.city == city
    assert abs(location.lat - lat) < 0.05
    assert abs(location.lon - lon) < 0.05


def test_unknown_zip() -> None:
    assert location_for_zip("00000") is None
    assert location_for_zip("99999") is None


def test_every_us_zip_is_known_beyond_the_demo_table() -> None:
    denver = location_for_zip("80202")  # not among the demo locations
    assert denver is not None
    assert (denver.city, denver.state) == ("Denver", "CO")
    assert abs(denver.lat - 39.75) < 0.05
    assert abs(denver.lon + 104.99) < 0.05


def test_used_prices_follow_age_mileage_and_condition() -> None:
    trim = next(t for t in load_catalog().model("Honda", "Accord").trims if t.name == "Sport")

    def price(year: int, miles: int, grade: float) -> float:
        return float(estimate_used_price(trim, year, miles, grade, as_of_year=2026, residual=1.07))

    assert price(2026, 10, 4.9) <= trim.msrp
    assert price(2024, 24_000, 4.0) > price(2020, 72_000, 4.0) > price(2014, 144_000, 4.0) > 0
    assert price(2020, 40_000, 4.0) > price(2020, 120_000, 4.0)
    assert price(2020, 72_000, 4.8) > price(2020, 72_000, 2.0)
    assert str(estimate_used_price(trim, 2020, 72_000, 4.0, as_of_year=2026)).endswith("95.00")
