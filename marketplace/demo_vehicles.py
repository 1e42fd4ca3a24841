"""Seeded, realistic vehicle rows for demo and load-test data: pure Python, no database access."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from typing import Any, Final

from marketplace.catalog import Location, Trim, estimate_used_price, load_catalog, load_locations
from marketplace.vin import make_vin
from schemas.geo import haversine_km

IMAGE_BASE_URL: Final = "https://images.auction-hub.example/vehicles"
MAX_VEHICLE_AGE: Final = 20
NEARBY_KM: Final = 80.0
# Rows per COPY write; a few MB per round trip keeps the server busy while Python formats the next chunk.
COPY_CHUNK_ROWS: Final = 5_000
# US new-car colour shares (PPG/Axalta surveys, rounded).
_COLORS: Final = (
    ("White", 24), ("Black", 21), ("Gray", 19), ("Silver", 10), ("Blue", 9), ("Red", 8), ("Green", 2),
    ("Brown", 2), ("Beige", 2), ("Orange", 1), ("Yellow", 1), ("Gold", 1),
)  # fmt: skip
_STATUSES: Final = (("active", 88), ("sold", 6), ("draft", 3), ("withdrawn", 3))
_HIGHLIGHTS: Final = (
    "One owner, clean history report.",
    "Non-smoker vehicle.",
    "Recent service: fresh oil, new brakes and tires.",
    "Backup camera, Bluetooth and Apple CarPlay.",
    "Heated seats and remote start.",
    "Both keys and owner's manual included.",
    "Factory warranty remaining.",
    "Dealer-maintained with full service records.",
    "Tow package and bed liner.",
    "Panoramic sunroof and leather interior.",
    "Adaptive cruise control and lane keeping assist.",
    "Minor cosmetic wear consistent with age.",
)
_CONDITION_WORDS: Final = (
    (4.5, "Excellent condition inside and out."),
    (3.5, "Good condition with light wear."),
    (2.5, "Fair condition; some dents and scratches."),
    (0.0, "Rough condition; sold as-is, needs work."),
)
_FUEL_WORDS: Final = {
    "gasoline": "Gas engine",
    "diesel": "Diesel engine",
    "hybrid": "Hybrid powertrain",
    "plug_in_hybrid": "Plug-in hybrid",
    "electric": "All-electric",
}
_VDS_CHARS: Final = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


@dataclass(frozen=True, slots=True)
class DealerSite:
    """The part of a dealer row the vehicle generator needs: who, where, and the brand it franchises."""

    id: int
    location: Location
    brand: str | None = None


class VehicleGenerator:
    """Produces vehicle rows for a set of dealers; pure Python, seeded, no database access."""

    def __init__(self, rng: random.Random, dealers: Sequence[DealerSite], *, as_of_year: int) -> None:
        if not dealers:
            raise ValueError("vehicles need at least one dealer")
        self.rng = rng
        self.dealers = dealers
        self.as_of_year = as_of_year
        catalog = load_catalog()
        self._residual = {make.name: make.residual for make in catalog.makes}
        self._trims = [trim for trim in catalog.trims if trim.last_year >= as_of_year - MAX_VEHICLE_AGE]
        self._trim_weights = list(accumulate(trim.weight for trim in self._trims))
        self._by_make: dict[str, tuple[list[Trim], list[int]]] = {}
        for make in catalog.makes:
            trims = [trim for trim in self._trims if trim.make == make.name]
            self._by_make[make.name] = (trims, list(accumulate(trim.weight for trim in trims)))
        self._colors = [name for name, _ in _COLORS]
        self._color_weights = list(accumulate(share for _, share in _COLORS))
        self._statuses = [name for name, _ in _STATUSES]
        self._status_weights = list(accumulate(share for _, share in _STATUSES))
        self._nearby = _nearby_locations(dealers)

    def pick_trim(self, brand: str | None) -> Trim:
        # A franchise dealer's lot is half its own brand (new and certified), half trade-ins of any make.
        if brand is not None and brand in self._by_make and self.rng.random() < 0.5:
            trims, weights = self._by_make[brand]
            return self.rng.choices(trims, cum_weights=weights)[0]
        return self.rng.choices(self._trims, cum_weights=self._trim_weights)[0]

    def pick_year(self, trim: Trim) -> int:
        newest = min(trim.last_year, self.as_of_year)
        oldest = max(trim.first_year, self.as_of_year - MAX_VEHICLE_AGE)
        if newest <= oldest:
            return newest
        # Used inventory peaks at 3-6 years old (lease returns, trade-ins) with a long tail.
        for _ in range(8):
            year = self.as_of_year - int(self.rng.gammavariate(2.2, 2.4))
            if oldest <= year <= newest:
                return year
        return self.rng.randint(oldest, newest)

    def _pick(self, options: Sequence[str]) -> str:
        # rng.choice's rejection sampling costs more than the rest of a row's draws put together.
        return options[int(self.rng.random() * len(options))]

    def row(self, serial: int) -> tuple[Any, ...]:
        """One vehicle row, in the order of `_VEHICLE_COLUMNS`."""
        rng = self.rng
        dealer = self.dealers[int(rng.random() * len(self.dealers))]
        trim = self.pick_trim(dealer.brand)
        year = self.pick_year(trim)
        age = self.as_of_year - year
        years_driven = max(age + rng.random() - 0.5, 0.05)
        mileage = max(int(years_driven * 12_000 * rng.lognormvariate(0, 0.35)), 3 + int(rng.random() * 60))
        grade = 4.9 - 0.075 * age - mileage / 200_000 + rng.gauss(0, 0.35)
        grade = round(min(max(grade, 1.0), 5.0), 1)
        color = rng.choices(self._colors, cum_weights=self._color_weights)[0]
        transmission = self._pick(trim.transmissions)
        drivetrain = self._pick(trim.drivetrains)
        location = dealer.location
        nearby = self._nearby.get(dealer.id)
        if nearby and rng.random() < 0.15:
            location = nearby[int(rng.random() * len(nearby))]
        vds = trim.vds + self._pick(_VDS_CHARS) + self._pick(_VDS_CHARS)
        # A bijection of 0..999999 (the multiplier is coprime to 10**6): unique, but not a visible counter.
        vin = make_vin(rng, trim.wmi, vds, year, serial * 386_431 % 1_000_000)
        price = estimate_used_price(
            trim,
            year,
            mileage,
            grade,
            as_of_year=self.as_of_year,
            residual=self._residual[trim.make],
            market_factor=rng.lognormvariate(0, 0.06),
        )
        images = [f"{IMAGE_BASE_URL}/{vin}/{n}.jpg" for n in range(1, 2 + int(rng.random() * 3))]
        status = rng.choices(self._statuses, cum_weights=self._status_weights)[0]
        return (
            dealer.id, vin, trim.make, trim.model, trim.name, year, mileage, Decimal(f"{grade:.1f}"),
            trim.body_type, trim.fuel, transmission, drivetrain, color, location.city, location.state,
            location.zip, location.lat, location.lon, images,
            self.description(trim, year, mileage, grade, color, transmission, drivetrain),
            price, status,
        )  # fmt: skip

    def description(
        self, trim: Trim, year: int, mileage: int, grade: float, color: str, transmission: str, drivetrain: str
    ) -> str:
        condition = next(words for floor, words in _CONDITION_WORDS if grade >= floor)
        highlights = self._pick(_HIGHLIGHTS)
        if self.rng.random() < 0.5:
            second = self._pick(_HIGHLIGHTS)
            if second != highlights:
                highlights = f"{highlights} {second}"
        gearbox = transmission.upper() if transmission in ("cvt", "dct") else transmission
        return (
            f"{year} {trim.make} {trim.model} {trim.name} in {color.lower()}, {mileage:,} miles. "
            f"{_FUEL_WORDS[trim.fuel]}, {gearbox} transmission, {drivetrain.upper()}. {condition} {highlights}"
        )

    def copy_chunks(self, count: int, first_serial: int) -> Iterator[bytes]:
        """`count` rows in COPY text format, in chunks of `COPY_CHUNK_ROWS`.

        Formatting here rather than adapting each value with `Copy.write_row` keeps the generator the
        only real client cost; it is safe because no generated value contains a tab, newline or
        backslash (the catalog loader checks its CSVs for those).
        """
        seen: set[str] = set()
        serial = first_serial
        for start in range(0, count, COPY_CHUNK_ROWS):
            lines = []
            for _ in range(min(COPY_CHUNK_ROWS, count - start)):
                row = self.row(serial)
                serial += 1
                # Serials repeat only past a million rows; the random VDS characters make a clash
                # unlikely there, and this makes it impossible within one call.
                while row[1] in seen:
                    row = self.row(serial)
                    serial += 1
                seen.add(row[1])
                lines.append(_copy_line(row))
            yield "".join(lines).encode()


def _copy_line(row: tuple[Any, ...]) -> str:
    head = "\t".join(map(str, row[:18]))
    tail = "\t".join(map(str, row[19:]))
    return f"{head}\t{{{','.join(row[18])}}}\t{tail}\n"


def _nearby_locations(dealers: Sequence[DealerSite]) -> dict[int, list[Location]]:
    """Other packaged locations within `NEARBY_KM` of each dealer: satellite lots and partner yards."""
    locations = load_locations()
    by_zip: dict[str, list[Location]] = {}
    nearby: dict[int, list[Location]] = {}
    for dealer in dealers:
        here = dealer.location
        if here.zip not in by_zip:
            by_zip[here.zip] = [
                other
                for other in locations
                if other.zip != here.zip
                and abs(other.lat - here.lat) < 1.0
                and haversine_km(here.lat, here.lon, other.lat, other.lon) <= NEARBY_KM
            ]
        nearby[dealer.id] = by_zip[here.zip]
    return nearby
