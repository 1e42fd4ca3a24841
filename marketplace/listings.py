"""Car listings: the specification rules every listing obeys, and the service dealers use to keep inventory.

The same field types validate a car posted to `POST /cars`, a `PATCH`, and every row of an Excel bulk upload
(`marketplace.bulk_upload`), so a row is accepted by the file exactly when the API would accept it. The rules
mirror the SQL constraints of `vehicles` (migration 001) and add what the database cannot know: the VIN
check digit reason, a model year no later than next year, and the ZIP code's location.

Knows nothing of HTTP: it raises `hub.errors` exceptions that the API turns into responses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final, Literal

import psycopg
from psycopg_pool import AsyncConnectionPool
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from hub.errors import Conflict, Forbidden, InvalidParameter, NotFound
from marketplace import listing_store
from marketplace.accounts import CurrentUser
from marketplace.catalog import (
    BODY_TYPES,
    DRIVETRAINS,
    FUELS,
    TRANSMISSIONS,
    catalog_spelling,
    color_spelling,
    location_for_zip,
    pick_list_spelling,
)
from marketplace.db import Connection, single_statement, transaction
from marketplace.listing_batches import CarBatcher
from marketplace.vin import CHECK_DIGIT_INDEX, FIRST_MODEL_YEAR, VIN_LENGTH, is_valid_vin, vin_check_digit

MAX_MILEAGE: Final = 2_000_000
MAX_PRICE: Final = Decimal("99999999.99")  # numeric(12, 2) would take more; no car costs 100 million
DEALER_STATUSES: Final = ("draft", "active", "withdrawn")
# Statuses the auction service owns: a car in an auction or sold is frozen for its dealer.
LOCKED_STATUSES: Final = frozenset({"in_auction", "sold"})
MAX_IMAGES: Final = 30
BULK_BATCH_SIZE: Final = 1000

_VIN_CHARACTERS: Final = re.compile(r"[A-HJ-NPR-Z0-9]*")
_ZIP: Final = re.compile(r"[0-9]{5}")
_IMAGE_URL: Final = re.compile(r"https://[^\s|]{1,2000}")


# -- field rules (shared by the API models and the bulk upload) ------------------------------------------------


def check_vin(value: str) -> str:
    vin = value.strip().upper()
    if len(vin) != VIN_LENGTH:
        raise ValueError(f"a VIN has {VIN_LENGTH} characters, this one has {len(vin)}")
    if not _VIN_CHARACTERS.fullmatch(vin):
        bad = sorted({ch for ch in vin if not _VIN_CHARACTERS.fullmatch(ch)})
        raise ValueError(f"a VIN uses digits and letters except I, O and Q; found {''.join(bad)!r}")
    if not is_valid_vin(vin):
        expected = vin_check_digit(vin)
        raise ValueError(
            f"check digit (position 9) is {vin[CHECK_DIGIT_INDEX]!r} but the other characters give {expected!r}; "
            "check the VIN for a typo"
        )
    return vin


def last_model_year() -> int:
    """Next year's models are on sale from this summer; the schema stops at 2030."""
    return min(datetime.now(UTC).year + 1, 2030)


def check_year(value: int) -> int:
    if not FIRST_MODEL_YEAR <= value <= last_model_year():
        raise ValueError(f"model year must be between {FIRST_MODEL_YEAR} and {last_model_year()}")
    return value


def check_condition(value: Decimal) -> Decimal:
    if not Decimal(0) <= value <= Decimal(5):
        raise ValueError("condition grade goes from 0 (parts only) to 5 (like new)")
    if value != value.quantize(Decimal("0.1")):
        raise ValueError("condition grade has one decimal place, e.g. 4.5")
    return value


def check_price(value: Decimal) -> Decimal:
    if not value.is_finite() or value < 0:
        raise ValueError("asking price is a non-negative amount in USD")
    if value > MAX_PRICE:
        raise ValueError(f"asking price must be at most {MAX_PRICE}")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("asking price has at most two decimal places (cents)")
    return value


def check_zip(value: str) -> str:
    zip_code = value.strip()
    if not _ZIP.fullmatch(zip_code):
        raise ValueError("a US ZIP code has 5 digits, e.g. 80264")
    if location_for_zip(zip_code) is None:
        raise ValueError(f"unknown ZIP code {zip_code}: use the ZIP code of the car's lot")
    return zip_code


def check_images(value: list[str]) -> list[str]:
    if len(value) > MAX_IMAGES:
        raise ValueError(f"at most {MAX_IMAGES} images")
    for url in value:
        if not _IMAGE_URL.fullmatch(url):
            raise ValueError(f"images are https:// URLs without spaces or '|'; got {url[:80]!r}")
    return value


def _choice(allowed: frozenset[str], what: str) -> Any:
    """Accepts any case and spaces/hyphens for underscores ("Plug-in hybrid" -> plug_in_hybrid)."""

    def check(value: str) -> str:
        normalized = pick_list_spelling(value)
        if normalized not in allowed:
            raise ValueError(f"{what} must be one of {', '.join(sorted(allowed))}")
        return normalized

    return AfterValidator(check)


def parse_decimal(value: Any) -> Any:
    """Spreadsheet-friendly amounts: "$23,900" and 23900.0 both mean 23900 (anything else is left to the model)."""
    if isinstance(value, str):
        cleaned = value.strip().lstrip("$").replace(",", "").replace(" ", "")
        try:
            return Decimal(cleaned)
        except InvalidOperation:
            return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def without_separators(value: Any) -> Any:
    """ "45,000" miles is 45000 (anything else is left to the model)."""
    return value.strip().replace(",", "").replace(" ", "") if isinstance(value, str) else value


def _strip(value: Any) -> Any:
    return " ".join(value.split()) if isinstance(value, str) else value


Text = Annotated[str, BeforeValidator(_strip)]
Vin = Annotated[str, Field(examples=["4T1BF1FK5CU123456"]), AfterValidator(check_vin)]
# Known makes and models take the catalog's spelling ("toyota" -> "Toyota"), so search facets do not split.
Make = Annotated[Text, Field(min_length=1, max_length=60), AfterValidator(catalog_spelling)]
ModelName = Annotated[Text, Field(min_length=1, max_length=60), AfterValidator(catalog_spelling)]
TrimName = Annotated[Text, Field(max_length=60)]
Year = Annotated[int, AfterValidator(check_year)]
Mileage = Annotated[
    int, Field(ge=0, le=MAX_MILEAGE, description="miles on the odometer"), BeforeValidator(without_separators)
]
ConditionGrade = Annotated[Decimal, Field(description="0 to 5, one decimal"), AfterValidator(check_condition)]
BodyType = Annotated[str, _choice(BODY_TYPES, "body type")]
Fuel = Annotated[str, _choice(FUELS, "fuel")]
Transmission = Annotated[str, _choice(TRANSMISSIONS, "transmission")]
Drivetrain = Annotated[str, _choice(DRIVETRAINS, "drivetrain")]
Color = Annotated[Text, Field(min_length=1, max_length=40), AfterValidator(color_spelling)]
Zip = Annotated[str, Field(description="5-digit US ZIP of the car's lot"), AfterValidator(check_zip)]
Price = Annotated[Decimal, Field(description="USD"), BeforeValidator(parse_decimal), AfterValidator(check_price)]
Status = Literal["draft", "active", "withdrawn"]
Description = Annotated[str, Field(max_length=5000)]
Images = Annotated[list[str], AfterValidator(check_images)]


class CarSpec(BaseModel):
    """A car's specification as a dealer lists it (POST /cars, one bulk-upload row)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    vin: Vin
    make: Make
    model: ModelName
    trim: TrimName | None = None
    year: Year
    mileage: Mileage
    condition_grade: ConditionGrade
    body_type: BodyType
    fuel: Fuel
    transmission: Transmission
    drivetrain: Drivetrain
    exterior_color: Color
    zip: Zip | None = Field(default=None, description="5-digit US ZIP of the car's lot; omitted: the dealership's")
    asking_price: Price
    status: Status = "active"
    description: Description | None = None
    images: Images = Field(default_factory=list)


class CarChanges(BaseModel):
    """A partial update (PATCH /cars/{id}): the same rules, every field optional; null clears trim/description."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    vin: Vin | None = None
    make: Make | None = None
    model: ModelName | None = None
    trim: TrimName | None = None
    year: Year | None = None
    mileage: Mileage | None = None
    condition_grade: ConditionGrade | None = None
    body_type: BodyType | None = None
    fuel: Fuel | None = None
    transmission: Transmission | None = None
    drivetrain: Drivetrain | None = None
    exterior_color: Color | None = None
    zip: Zip | None = None
    asking_price: Price | None = None
    status: Status | None = None
    description: Description | None = None
    images: Images | None = None


REQUIRED_FIELDS: Final = tuple(name for name, field in CarSpec.model_fields.items() if field.is_required())
NULLABLE_FIELDS: Final = frozenset({"trim", "description"})


def columns_of(spec: CarSpec) -> dict[str, Any]:
    """The `vehicles` columns of a validated car: the ZIP expanded to city, state and coordinates.

    Without a ZIP the location columns are None, and the insert takes the dealership's location.
    """
    values = spec.model_dump()
    if spec.zip is None:
        values.update(dict.fromkeys(listing_store.LOCATION_COLUMNS))
    else:
        values.update(location_columns(spec.zip))
    return values


def location_columns(zip_code: str) -> dict[str, Any]:
    location = location_for_zip(zip_code)
    if location is None:  # validated already; a ZIP table without it is a packaging bug
        raise InvalidParameter("zip", f"unknown ZIP code {zip_code}")
    return {"zip": location.zip, "city": location.city, "state": location.state, "lat": location.lat,
            "lon": location.lon}  # fmt: skip


# -- the service ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarFilters:
    status: str | None = None
    make: str | None = None
    model: str | None = None
    vin: str | None = None
    year_min: int | None = None
    year_max: int | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    mileage_max: int | None = None
    condition_min: Decimal | None = None
    dealer_id: int | None = None
    sort: str = "-created"


@dataclass(frozen=True)
class BulkResult:
    created: list[tuple[int, int, str]]  # (row number, car id, VIN)
    duplicates: list[tuple[int, int, str]]  # (row number, id of the car already listed, VIN)


class Listings:
    """Dealers' inventory: create, read, change, withdraw and delete cars; bulk inserts for uploads."""

    def __init__(self, pool: AsyncConnectionPool[Connection], batcher: CarBatcher | None = None) -> None:
        """`batcher`: coalesces concurrent creates into multi-row inserts (one per app); without it, one by one."""
        self.pool = pool
        self.batcher = batcher

    async def dealer_of(self, actor: CurrentUser) -> int:
        """The dealer the signed-in user owns; refuses users without one and suspended dealers."""
        async with transaction(self.pool) as conn:
            dealer = await listing_store.dealer_owned_by(conn, actor.id)
        if dealer is None:
            raise Forbidden("register your dealership first (POST /api/v1/dealers), then list cars")
        if dealer["status"] == "suspended":
            raise Forbidden("your dealership is suspended; contact support to list cars again")
        return int(dealer["id"])

    async def create(self, actor: CurrentUser, spec: CarSpec) -> dict[str, Any]:
        """One statement on the hot path (shared with concurrent creates if batched): it finds the dealership."""
        values = columns_of(spec)
        if self.batcher is not None:
            batched = await self.batcher.insert(actor.id, values)
            if batched is not None:
                return batched
        try:  # alone: the batch's leftovers get their own answer here
            async with single_statement(self.pool) as conn:
                car = await listing_store.insert_car_for_owner(conn, actor.id, values)
            if car is not None:
                return car
            # No dealership, or a suspended one: dealer_of says which. Should it pass (the dealership was
            # registered or reinstated in between), insert for the dealer it found.
            dealer_id = await self.dealer_of(actor)
            async with transaction(self.pool) as conn:
                car = await listing_store.insert_car(conn, dealer_id, values)
            if car is None:  # the dealership was removed in between
                raise Forbidden("register your dealership first (POST /api/v1/dealers), then list cars")
            return car
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(
                f"you already list VIN {spec.vin}; change that car instead", problems=[
                    {"parameter": "vin", "message": "already listed by this dealer"}]
            ) from exc  # fmt: skip

    async def create_many(
        self, dealer_id: int, rows: Sequence[tuple[int, CarSpec]], batch_size: int = BULK_BATCH_SIZE
    ) -> BulkResult:
        """Insert validated cars (with their row numbers, distinct VINs), one transaction per batch.

        A VIN the dealer already lists is reported as a duplicate with that car's id and left unchanged, so
        uploading the same file again creates nothing.
        """
        created: list[tuple[int, int, str]] = []
        duplicates: list[tuple[int, int, str]] = []
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            async with transaction(self.pool) as conn:
                new_ids = await listing_store.insert_cars(conn, dealer_id, [columns_of(spec) for _, spec in batch])
                skipped = [spec.vin for _, spec in batch if spec.vin not in new_ids]
                existing = await listing_store.listed_vins(conn, dealer_id, skipped)
            for row_number, spec in batch:
                if spec.vin in new_ids:
                    created.append((row_number, new_ids[spec.vin], spec.vin))
                else:
                    duplicates.append((row_number, existing.get(spec.vin, 0), spec.vin))
        return BulkResult(created, duplicates)

    async def get(self, actor: CurrentUser, car_id: int) -> dict[str, Any]:
        """Any signed-in user reads listed cars; drafts and withdrawn cars only their dealer (or an admin)."""
        async with transaction(self.pool) as conn:
            car = await listing_store.car_by_id(conn, car_id)
            owner = await listing_store.dealer_owned_by(conn, actor.id)
        is_owner = car is not None and owner is not None and owner["id"] == car["dealer_id"]
        if car is None or (car["status"] in ("draft", "withdrawn") and not (is_owner or actor.is_admin)):
            raise NotFound(f"car {car_id} not found")
        return car

    async def update(self, actor: CurrentUser, car_id: int, changes: CarChanges) -> dict[str, Any]:
        values = changes.model_dump(exclude_unset=True)
        for name, value in values.items():
            if value is None and name not in NULLABLE_FIELDS:
                raise InvalidParameter(name, "cannot be null; leave it out to keep the current value")
        if "zip" in values:
            values.update(location_columns(values["zip"]))
        if "images" in values:
            values["images"] = list(values["images"])
        try:
            async with transaction(self.pool) as conn:
                await self._owned_car_for_update(conn, actor, car_id)
                car = await listing_store.update_car(conn, car_id, values)
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"you already list VIN {values.get('vin')}; each VIN once per dealer") from exc
        if car is None:  # pragma: no cover - locked FOR UPDATE just above
            raise NotFound(f"car {car_id} not found")
        return car

    async def delete(self, actor: CurrentUser, car_id: int) -> None:
        """Soft delete (`deleted_at`), so the change streams to search and the VIN may be listed again."""
        async with transaction(self.pool) as conn:
            await self._owned_car_for_update(conn, actor, car_id)
            await listing_store.soft_delete_car(conn, car_id)

    async def inventory(
        self, actor: CurrentUser, filters: CarFilters, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A dealer's own inventory; admins see every dealer's (optionally one, `dealer_id`)."""
        if actor.is_admin:
            scoped = filters
        else:
            own = await self.dealer_of(actor)
            if filters.dealer_id not in (None, own):
                raise Forbidden("you can list only your own inventory; buyers search at /api/v1/vehicles")
            scoped = CarFilters(**{**filters.__dict__, "dealer_id": own})
        async with transaction(self.pool) as conn:
            return await listing_store.list_cars(conn, scoped, limit, offset)

    async def _owned_car_for_update(self, conn: Connection, actor: CurrentUser, car_id: int) -> dict[str, Any]:
        car = await listing_store.car_for_update(conn, car_id)
        if car is None:
            raise NotFound(f"car {car_id} not found")
        if not actor.is_admin:
            dealer = await listing_store.dealer_owned_by(conn, actor.id)
            if dealer is None or dealer["id"] != car["dealer_id"]:
                if car["status"] in ("draft", "withdrawn"):
                    raise NotFound(f"car {car_id} not found")
                raise Forbidden("only the dealer who lists this car (or an admin) can change it")
        if car["status"] in LOCKED_STATUSES:
            raise Conflict(f"car {car_id} is {car['status'].replace('_', ' ')}; it can no longer be changed here")
        return car
