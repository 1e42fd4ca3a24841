"""Reference data of the marketplace: real makes, models and trims with used-price estimates, and US locations.

Both tables ship as CSV in `marketplace/data` (see its README for provenance) and are loaded once per
process. The vehicle catalog drives the demo data; the location table also serves zip -> coordinates
lookups for radius search.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib.resources import files
from typing import Final

BODY_TYPES: Final = frozenset({"sedan", "suv", "truck", "coupe", "hatchback", "convertible", "wagon", "van", "minivan"})
FUELS: Final = frozenset({"gasoline", "diesel", "hybrid", "plug_in_hybrid", "electric"})
TRANSMISSIONS: Final = frozenset({"automatic", "manual", "cvt", "dct"})
DRIVETRAINS: Final = frozenset({"fwd", "rwd", "awd", "4wd"})

# The contiguous 48 states plus Alaska and Hawaii, as (south, west, north, east) bounds in degrees.
US_BOUNDS: Final = (18.5, -179.5, 71.6, -66.8)

MILES_PER_YEAR: Final = 12_000

# How well a brand holds its value relative to the market, from auction price guides: >1 depreciates
# slower (Toyota trucks, Porsche), <1 faster (European luxury, early EVs).
_RESIDUAL_BY_MAKE: Final[dict[str, float]] = {
    "Toyota": 1.10, "Honda": 1.07, "Lexus": 1.06, "Porsche": 1.10, "Subaru": 1.05, "Jeep": 1.03,
    "Ram": 1.01, "Ford": 1.00, "Chevrolet": 0.99, "GMC": 1.01, "Mazda": 1.01, "Acura": 0.98,
    "Kia": 0.97, "Hyundai": 0.96, "Dodge": 0.98, "Tesla": 0.93, "Rivian": 0.90, "Volkswagen": 0.94,
    "Nissan": 0.93, "Mitsubishi": 0.90, "Chrysler": 0.90, "Buick": 0.93, "Genesis": 0.90,
    "Cadillac": 0.88, "Lincoln": 0.88, "Infiniti": 0.87, "Volvo": 0.90, "Mini": 0.92, "BMW": 0.88,
    "Mercedes-Benz": 0.87, "Audi": 0.88, "Land Rover": 0.85,
}  # fmt: skip
_BODY_RESIDUAL: Final[dict[str, float]] = {"truck": 1.05, "van": 1.02, "convertible": 0.97}
_FUEL_RESIDUAL: Final[dict[str, float]] = {"electric": 0.88, "plug_in_hybrid": 0.95, "hybrid": 1.02}


class CatalogError(RuntimeError):
    """The packaged reference data is malformed; the message names the file and row."""


@dataclass(frozen=True, slots=True)
class Trim:
    make: str
    model: str
    name: str
    body_type: str
    first_year: int
    last_year: int
    fuel: str
    transmissions: tuple[str, ...]
    drivetrains: tuple[str, ...]
    msrp: int
    wmi: str
    vds: str
    weight: int

    def offered_in(self, year: int) -> bool:
        return self.first_year <= year <= self.last_year


@dataclass(frozen=True, slots=True)
class Model:
    make: str
    name: str
    trims: tuple[Trim, ...]

    @property
    def first_year(self) -> int:
        return min(trim.first_year for trim in self.trims)

    @property
    def last_year(self) -> int:
        return max(trim.last_year for trim in self.trims)

    @property
    def body_types(self) -> frozenset[str]:
        return frozenset(trim.body_type for trim in self.trims)

    @property
    def new_price_range(self) -> tuple[int, int]:
        return min(trim.msrp for trim in self.trims), max(trim.msrp for trim in self.trims)


@dataclass(frozen=True, slots=True)
class Make:
    name: str
    models: tuple[Model, ...]
    residual: float


@dataclass(frozen=True, slots=True)
class Catalog:
    makes: tuple[Make, ...]
    _models: dict[tuple[str, str], Model] = field(repr=False)

    @property
    def trims(self) -> tuple[Trim, ...]:
        return tuple(trim for make in self.makes for model in make.models for trim in model.trims)

    def make(self, name: str) -> Make:
        for make in self.makes:
            if make.name == name:
                return make
        raise KeyError(name)

    def model(self, make: str, model: str) -> Model:
        return self._models[(make, model)]


@dataclass(frozen=True, slots=True)
class Location:
    zip: str
    city: str
    state: str
    lat: float
    lon: float


def _data_text(name: str) -> str:
    return (files("marketplace") / "data" / name).read_text(encoding="utf-8")


def _rows(name: str) -> Iterator[tuple[int, dict[str, str]]]:
    for line_number, row in enumerate(csv.DictReader(io.StringIO(_data_text(name))), start=2):
        # Demo rows are streamed with COPY's text format unescaped, so these characters must never occur.
        if any(ch in value for value in row.values() for ch in "\t\n\\"):
            raise CatalogError(f"{name}:{line_number}: tab, newline or backslash in {row}")
        yield line_number, row


def _parse_trim(line_number: int, row: dict[str, str]) -> Trim:
    where = f"vehicle_catalog.csv:{line_number}"
    trim = Trim(
        make=row["make"],
        model=row["model"],
        name=row["trim"],
        body_type=row["body_type"],
        first_year=int(row["first_year"]),
        last_year=int(row["last_year"]),
        fuel=row["fuel"],
        transmissions=tuple(row["transmission"].split("|")),
        drivetrains=tuple(row["drivetrains"].split("|")),
        msrp=int(row["msrp"]),
        wmi=row["wmi"],
        vds=row["vds"],
        weight=int(row["weight"]),
    )
    problems = [
        trim.body_type not in BODY_TYPES and f"body type {trim.body_type!r}",
        trim.fuel not in FUELS and f"fuel {trim.fuel!r}",
        not set(trim.transmissions) <= TRANSMISSIONS and f"transmission {trim.transmissions}",
        not set(trim.drivetrains) <= DRIVETRAINS and f"drivetrain {trim.drivetrains}",
        not 1981 <= trim.first_year <= trim.last_year <= 2030 and "model years",
        (len(trim.wmi), len(trim.vds)) != (3, 3) and "WMI/VDS length",
        bool(set(trim.wmi + trim.vds) & set("IOQ")) and "I, O or Q in WMI/VDS",
        (trim.msrp <= 0 or trim.weight <= 0) and "price or weight",
        trim.make not in _RESIDUAL_BY_MAKE and f"make {trim.make!r} has no residual factor",
    ]
    bad = [problem for problem in problems if problem]
    if bad:
        raise CatalogError(f"{where}: bad {', '.join(bad)}")
    return trim


@cache
def load_catalog() -> Catalog:
    """The packaged vehicle catalog (cached)."""
    trims = [_parse_trim(line_number, row) for line_number, row in _rows("vehicle_catalog.csv")]
    by_model: dict[tuple[str, str], list[Trim]] = {}
    for trim in trims:
        by_model.setdefault((trim.make, trim.model), []).append(trim)
    models = {key: Model(key[0], key[1], tuple(model_trims)) for key, model_trims in by_model.items()}
    make_names = list(dict.fromkeys(trim.make for trim in trims))
    makes = tuple(
        Make(name, tuple(model for key, model in models.items() if key[0] == name), _RESIDUAL_BY_MAKE[name])
        for name in make_names
    )
    return Catalog(makes, models)


@cache
def _spellings() -> dict[str, str]:
    makes = load_catalog().makes
    names = [make.name for make in makes] + [model.name for make in makes for model in make.models]
    return {name.lower(): name for name in names}


def _known_spelling(spellings: dict[str, str], name: str) -> str:
    name = " ".join(name.split())
    return spellings.get(name.lower(), name)


def catalog_spelling(name: str) -> str:
    """A known make or model as the catalog spells it ("toyota" -> "Toyota", "f-150" -> "F-150"), so one car is
    not filed under two spellings; anything else as given, whitespace collapsed."""
    return _known_spelling(_spellings(), name)


def pick_list_spelling(value: str) -> str:
    """A pick-list value as stored: lower case, spaces and hyphens as `_` ("Plug-in hybrid" -> "plug_in_hybrid")."""
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def color_spelling(name: str) -> str:
    """A colour with each word capitalised ("dark blue", "DARK BLUE" -> "Dark Blue"): one facet value per colour."""
    return " ".join(word.capitalize() for word in name.split())


@cache
def load_locations() -> tuple[Location, ...]:
    """The packaged US locations: real ZIP codes with their centroid coordinates (cached)."""
    locations = []
    south, west, north, east = US_BOUNDS
    for line_number, row in _rows("us_locations.csv"):
        location = Location(row["zip"], row["city"], row["state"], float(row["lat"]), float(row["lon"]))
        if not (south <= location.lat <= north and west <= location.lon <= east):
            raise CatalogError(f"us_locations.csv:{line_number}: {location} is outside the US")
        locations.append(location)
    return tuple(locations)


@cache
def _locations_by_zip() -> dict[str, Location]:
    return {location.zip: location for location in load_locations()}


def location_for_zip(zip_code: str) -> Location | None:
    """The location of a US ZIP code: the demo table first, then every ZIP the `zipcodes` package knows
    (42,000+, with centroids); None for a code that does not exist."""
    known = _locations_by_zip().get(zip_code)
    if known is not None:
        return known
    return _all_us_zips().get(zip_code)


@cache
def _city_spellings() -> dict[str, str]:
    spellings = {location.city.lower(): location.city for location in _all_us_zips().values()}
    spellings.update({location.city.lower(): location.city for location in load_locations()})
    return spellings


def city_spelling(name: str) -> str:
    """A US city as listings spell it (they take it from the ZIP table: "new york" -> "New York")."""
    return _known_spelling(_city_spellings(), name)


@cache
def _all_us_zips() -> dict[str, Location]:
    import zipcodes  # loads its table (~0.3 s) on first use only

    locations: dict[str, Location] = {}
    for entry in zipcodes.list_all():
        try:
            lat, lon = float(entry["lat"]), float(entry["long"])
        except (KeyError, TypeError, ValueError):
            continue
        locations[entry["zip_code"]] = Location(entry["zip_code"], entry["city"].title(), entry["state"], lat, lon)
    return locations


def estimate_used_price(
    trim: Trim,
    year: int,
    mileage: int,
    condition_grade: float,
    *,
    as_of_year: int,
    residual: float = 1.0,
    market_factor: float = 1.0,
) -> Decimal:
    """A plausible dealer asking price (USD) for a used `trim` of model `year`.

    Starts from the trim's new price deflated to that model year (~2.5 %/yr), depreciates ~18 % in the
    first year and ~10 %/yr after, adjusted for the brand's and body's residual value, for miles above or
    below 12k/yr, and for condition (grade 3 is average). `market_factor` is the caller's noise (local
    demand, the dealer's margin). Rounded the way dealers price: ...95.
    """
    age = max(as_of_year - year, 0)
    new_price_then = trim.msrp * 0.975**age
    retention = 0.94 if age == 0 else max(0.82 * 0.90 ** (age - 1), 0.05)
    brand = residual * _BODY_RESIDUAL.get(trim.body_type, 1.0) * _FUEL_RESIDUAL.get(trim.fuel, 1.0)
    retention *= brand ** (min(age, 10) / 3)
    expected_miles = MILES_PER_YEAR * max(age, 0.5)
    mileage_factor = min(max(math.exp(-0.0000045 * (mileage - expected_miles)), 0.55), 1.25)
    condition_factor = 0.75 + 0.055 * condition_grade
    price = max(new_price_then * retention * mileage_factor * condition_factor * market_factor, 900.0)
    if price >= 5_000:
        price = round(price / 100) * 100 - 5
    else:
        price = round(price / 50) * 50
    return Decimal(int(price)).quantize(Decimal("0.01"))
