"""SQL of car listings (`vehicles`): parameterized only; the caller owns the transaction.

Soft-deleted cars (`deleted_at` set) are invisible here: the row stays so the deletion streams to search
through CDC, and the partial unique index `vehicles_dealer_vin_key` lets the dealer list that VIN again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from marketplace.db import Connection

if TYPE_CHECKING:
    from marketplace.listings import CarFilters

CAR_COLUMNS: Final = (
    "id, dealer_id, vin, make, model, trim, year, mileage, condition_grade, body_type, fuel, transmission, "
    "drivetrain, exterior_color, city, state, zip, lat, lon, images, description, asking_price, status, "
    "created_at, updated_at"
)
WRITABLE_COLUMNS: Final = (
    "vin", "make", "model", "trim", "year", "mileage", "condition_grade", "body_type", "fuel", "transmission",
    "drivetrain", "exterior_color", "city", "state", "zip", "lat", "lon", "images", "description", "asking_price",
    "status",
)  # fmt: skip
# unnest() needs one typed array per column; the values are cast on insert to the table's own types.
_ARRAY_TYPES: Final[dict[str, str]] = {
    "vin": "text", "make": "text", "model": "text", "trim": "text", "year": "int", "mileage": "int",
    "condition_grade": "numeric", "body_type": "text", "fuel": "text", "transmission": "text", "drivetrain": "text",
    "exterior_color": "text", "city": "text", "state": "text", "zip": "text", "lat": "float8", "lon": "float8",
    "images": "text", "description": "text", "asking_price": "numeric", "status": "text",
}  # fmt: skip
# A car listed without a ZIP stands at its dealership: these columns fall back to the dealer's (`d`).
LOCATION_COLUMNS: Final = frozenset({"zip", "city", "state", "lat", "lon"})
SORTS: Final[dict[str, str]] = {
    "-created": "id DESC", "created": "id", "price": "asking_price, id", "-price": "asking_price DESC, id DESC",
    "year": "year, id", "-year": "year DESC, id DESC", "mileage": "mileage, id", "-mileage": "mileage DESC, id DESC",
}  # fmt: skip


async def dealer_owned_by(conn: Connection, user_id: int) -> dict[str, Any] | None:
    cursor = await conn.execute("SELECT id, status FROM dealers WHERE owner_id = %s", (user_id,))
    return await cursor.fetchone()


def _value_or_dealers(column: str, value: str) -> str:
    """A select-list item: the car's value, or for a location column left empty the dealership's."""
    return f"coalesce({value}, d.{column})" if column in LOCATION_COLUMNS else value


def _selected_values(columns: Sequence[str]) -> str:
    return ", ".join(_value_or_dealers(column, f"%({column})s") for column in columns)


async def insert_car(conn: Connection, dealer_id: int, values: dict[str, Any]) -> dict[str, Any] | None:
    """Insert a car for the dealership `dealer_id` (None if it does not exist)."""
    columns = [column for column in WRITABLE_COLUMNS if column in values]
    cursor = await conn.execute(
        f"INSERT INTO vehicles (dealer_id, {', '.join(columns)}) "
        f"SELECT d.id, {_selected_values(columns)} FROM dealers d WHERE d.id = %(dealer_id)s "
        f"RETURNING {CAR_COLUMNS}",
        {**values, "dealer_id": dealer_id},
    )
    return await cursor.fetchone()


async def insert_car_for_owner(conn: Connection, owner_id: int, values: dict[str, Any]) -> dict[str, Any] | None:
    """Insert a car for the dealership `owner_id` owns, unless it has none or is suspended (then None).

    One statement: the dealer lookup is folded into the insert, so in autocommit it is one round trip.
    """
    columns = [column for column in WRITABLE_COLUMNS if column in values]
    cursor = await conn.execute(
        f"INSERT INTO vehicles (dealer_id, {', '.join(columns)}) "
        f"SELECT d.id, {_selected_values(columns)} FROM dealers d "
        f"WHERE d.owner_id = %(owner_id)s AND d.status <> 'suspended' RETURNING {CAR_COLUMNS}",
        {**values, "owner_id": owner_id},
    )
    return await cursor.fetchone()


def _unnested(rows: Sequence[dict[str, Any]]) -> tuple[str, str, dict[str, Any]]:
    """Rows as one typed array per writable column: (select list over `u`, unnest arguments, parameters)."""
    columns = list(WRITABLE_COLUMNS)
    arrays = {column: [row.get(column) for row in rows] for column in columns}
    # Image lists differ in length, which a 2-D array cannot hold: each travels as one '\n'-joined text.
    arrays["images"] = ["\n".join(row.get("images") or []) for row in rows]
    selected = [
        "coalesce(string_to_array(nullif(u.images, ''), E'\\n'), '{}')"
        if column == "images"
        else _value_or_dealers(column, f"u.{column}")
        for column in columns
    ]
    unnest_args = ", ".join(f"%({column})s::{_ARRAY_TYPES[column]}[]" for column in columns)
    return ", ".join(selected), unnest_args, arrays


async def insert_cars(conn: Connection, dealer_id: int, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert many cars in one statement; a VIN the dealer already lists is skipped. Returns VIN -> new id.

    The rows' VINs must be distinct (the caller reports repeats within a file itself).
    """
    if not rows:
        return {}
    selected, unnest_args, arrays = _unnested(rows)
    cursor = await conn.execute(
        f"INSERT INTO vehicles (dealer_id, {', '.join(WRITABLE_COLUMNS)}) "
        f"SELECT d.id, {selected} FROM unnest({unnest_args}) AS u({', '.join(WRITABLE_COLUMNS)}) "
        "JOIN dealers d ON d.id = %(dealer_id)s "
        "ON CONFLICT (dealer_id, vin) WHERE deleted_at IS NULL DO NOTHING RETURNING id, vin",
        {**arrays, "dealer_id": dealer_id},
    )
    return {row["vin"]: int(row["id"]) for row in await cursor.fetchall()}


async def insert_cars_for_owners(
    conn: Connection, cars: Sequence[tuple[int, dict[str, Any]]]
) -> dict[tuple[int, str], dict[str, Any]]:
    """Insert cars of several dealers in one statement, each for the dealership its owner (user id) runs.

    A car whose owner has no dealership or a suspended one, or whose VIN that dealer lists already, is skipped.
    Returns (owner id, VIN) -> the new car. The (owner, VIN) pairs must be distinct.
    """
    if not cars:
        return {}
    selected, unnest_args, arrays = _unnested([values for _, values in cars])
    cursor = await conn.execute(
        f"WITH inserted AS (INSERT INTO vehicles (dealer_id, {', '.join(WRITABLE_COLUMNS)}) "
        f"SELECT d.id, {selected} "
        f"FROM unnest(%(owner_id)s::int8[], {unnest_args}) WITH ORDINALITY "
        f"AS u(owner_id, {', '.join(WRITABLE_COLUMNS)}, n) "
        "JOIN dealers d ON d.owner_id = u.owner_id AND d.status <> 'suspended' ORDER BY u.n "
        f"ON CONFLICT (dealer_id, vin) WHERE deleted_at IS NULL DO NOTHING RETURNING {CAR_COLUMNS}) "
        "SELECT d.owner_id, inserted.* FROM inserted JOIN dealers d ON d.id = inserted.dealer_id",
        {**arrays, "owner_id": [owner_id for owner_id, _ in cars]},
    )
    created: dict[tuple[int, str], dict[str, Any]] = {}
    for row in await cursor.fetchall():
        owner_id = row.pop("owner_id")
        created[(int(owner_id), row["vin"])] = row
    return created


async def listed_vins(conn: Connection, dealer_id: int, vins: Sequence[str]) -> dict[str, int]:
    """VIN -> car id of the given VINs the dealer lists now."""
    if not vins:
        return {}
    cursor = await conn.execute(
        "SELECT id, vin FROM vehicles WHERE dealer_id = %s AND vin = ANY(%s::bpchar[]) AND deleted_at IS NULL",
        (dealer_id, list(vins)),
    )
    return {row["vin"]: int(row["id"]) for row in await cursor.fetchall()}


async def car_by_id(conn: Connection, car_id: int) -> dict[str, Any] | None:
    cursor = await conn.execute(f"SELECT {CAR_COLUMNS} FROM vehicles WHERE id = %s AND deleted_at IS NULL", (car_id,))
    return await cursor.fetchone()


async def car_for_update(conn: Connection, car_id: int) -> dict[str, Any] | None:
    cursor = await conn.execute(
        f"SELECT {CAR_COLUMNS} FROM vehicles WHERE id = %s AND deleted_at IS NULL FOR UPDATE", (car_id,)
    )
    return await cursor.fetchone()


async def update_car(conn: Connection, car_id: int, values: dict[str, Any]) -> dict[str, Any] | None:
    fields: dict[str, Any] = {column: values[column] for column in WRITABLE_COLUMNS if column in values}
    assignments = "".join(f"{column} = %({column})s, " for column in fields)
    cursor = await conn.execute(
        f"UPDATE vehicles SET {assignments}updated_at = now() WHERE id = %(id)s AND deleted_at IS NULL "
        f"RETURNING {CAR_COLUMNS}",
        {**fields, "id": car_id},
    )
    return await cursor.fetchone()


async def soft_delete_car(conn: Connection, car_id: int) -> bool:
    cursor = await conn.execute(
        "UPDATE vehicles SET deleted_at = now(), updated_at = now() WHERE id = %s AND deleted_at IS NULL", (car_id,)
    )
    return cursor.rowcount == 1


def _where(filters: CarFilters) -> tuple[str, dict[str, Any]]:
    conditions = ["deleted_at IS NULL"]
    params: dict[str, Any] = {}
    checks = (
        ("dealer_id", "dealer_id = %(dealer_id)s"),
        ("status", "status = %(status)s"),
        ("make", "lower(make) = lower(%(make)s)"),
        ("model", "lower(model) = lower(%(model)s)"),
        ("vin", "vin = %(vin)s"),
        ("year_min", "year >= %(year_min)s"),
        ("year_max", "year <= %(year_max)s"),
        ("price_min", "asking_price >= %(price_min)s"),
        ("price_max", "asking_price <= %(price_max)s"),
        ("mileage_max", "mileage <= %(mileage_max)s"),
        ("condition_min", "condition_grade >= %(condition_min)s"),
    )
    for name, condition in checks:
        value = getattr(filters, name)
        if value is not None:
            conditions.append(condition)
            params[name] = value
    return " AND ".join(conditions), params


async def list_cars(conn: Connection, filters: CarFilters, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    where, params = _where(filters)
    order = SORTS[filters.sort]
    cursor = await conn.execute(
        f"SELECT {CAR_COLUMNS} FROM vehicles WHERE {where} ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s",
        {**params, "limit": limit, "offset": offset},
    )
    rows = await cursor.fetchall()
    count = await (await conn.execute(f"SELECT count(*) AS total FROM vehicles WHERE {where}", params)).fetchone()
    return rows, int(count["total"]) if count else 0
