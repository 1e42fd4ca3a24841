"""SQL of dealers, their listings, auctions and statistics (parameterized; the caller owns the transaction)."""

from __future__ import annotations

from typing import Any

from marketplace.db import Connection

DEALER_COLUMNS = (
    "id, owner_id, name, rating, phone, address, city, state, zip, lat, lon, licence_number, contact_email, "
    "status, created_at, updated_at"
)
VEHICLE_COLUMNS = (
    "id, dealer_id, vin, make, model, trim, year, mileage, condition_grade, body_type, fuel, transmission, "
    "drivetrain, exterior_color, city, state, zip, asking_price, status, created_at, updated_at"
)
# Columns an owner may change through `update_dealer` (status and owner change elsewhere).
UPDATABLE = frozenset({"name", "phone", "address", "city", "state", "zip", "lat", "lon", "licence_number",
                       "contact_email", "status"})  # fmt: skip


async def user_for_update(conn: Connection, user_id: int) -> dict[str, Any] | None:
    cursor = await conn.execute("SELECT id, role, deleted_at FROM users WHERE id = %s FOR UPDATE", (user_id,))
    return await cursor.fetchone()


async def set_user_role(conn: Connection, user_id: int, role: str) -> None:
    await conn.execute("UPDATE users SET role = %s, updated_at = now() WHERE id = %s", (role, user_id))


async def dealer_by_owner(conn: Connection, owner_id: int) -> dict[str, Any] | None:
    cursor = await conn.execute(f"SELECT {DEALER_COLUMNS} FROM dealers WHERE owner_id = %s", (owner_id,))
    return await cursor.fetchone()


async def dealer_by_id(conn: Connection, dealer_id: int, *, for_update: bool = False) -> dict[str, Any] | None:
    lock = " FOR UPDATE" if for_update else ""
    cursor = await conn.execute(f"SELECT {DEALER_COLUMNS} FROM dealers WHERE id = %s{lock}", (dealer_id,))
    return await cursor.fetchone()


async def insert_dealer(conn: Connection, fields: dict[str, Any]) -> dict[str, Any]:
    cursor = await conn.execute(
        "INSERT INTO dealers (owner_id, name, phone, address, city, state, zip, lat, lon, licence_number, "
        "contact_email, status) VALUES (%(owner_id)s, %(name)s, %(phone)s, %(address)s, %(city)s, %(state)s, "
        "%(zip)s, %(lat)s, %(lon)s, %(licence_number)s, %(contact_email)s, 'pending') "
        f"RETURNING {DEALER_COLUMNS}",
        fields,
    )
    row = await cursor.fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
    return row


async def update_dealer(conn: Connection, dealer_id: int, changes: dict[str, Any]) -> dict[str, Any] | None:
    fields = {name: value for name, value in changes.items() if name in UPDATABLE}
    if not fields:
        return await dealer_by_id(conn, dealer_id)
    # Column names come from the UPDATABLE allow-list; values are parameters.
    assignments = ", ".join(f"{name} = %({name})s" for name in sorted(fields))
    cursor = await conn.execute(
        f"UPDATE dealers SET {assignments}, updated_at = now() WHERE id = %(id)s RETURNING {DEALER_COLUMNS}",
        {**fields, "id": dealer_id},
    )
    return await cursor.fetchone()


def _page(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    total = int(rows[0]["total"]) if rows else 0
    return [{k: v for k, v in row.items() if k != "total"} for row in rows], total


async def _count(conn: Connection, sql: str, params: dict[str, Any]) -> int:
    row = await (await conn.execute(sql, params)).fetchone()
    return int(row["total"]) if row else 0


async def list_dealers(
    conn: Connection, limit: int, offset: int, status: str | None, state: str | None
) -> tuple[list[dict[str, Any]], int]:
    conditions = ["TRUE"]
    if status:
        conditions.append("status = %(status)s")
    if state:
        conditions.append("state = %(state)s")
    where = " AND ".join(conditions)
    params = {"status": status, "state": state, "limit": limit, "offset": offset}
    cursor = await conn.execute(
        f"SELECT {DEALER_COLUMNS}, count(*) OVER () AS total FROM dealers WHERE {where} "
        "ORDER BY id LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    rows, total = _page(await cursor.fetchall())
    if not rows and offset:
        total = await _count(conn, f"SELECT count(*) AS total FROM dealers WHERE {where}", params)
    return rows, total


async def dealer_vehicles(
    conn: Connection, dealer_id: int, limit: int, offset: int, statuses: tuple[str, ...]
) -> tuple[list[dict[str, Any]], int]:
    where = "dealer_id = %(dealer_id)s AND deleted_at IS NULL AND status = ANY(%(statuses)s)"
    params = {"dealer_id": dealer_id, "statuses": list(statuses), "limit": limit, "offset": offset}
    cursor = await conn.execute(
        f"SELECT {VEHICLE_COLUMNS}, count(*) OVER () AS total FROM vehicles WHERE {where} "
        "ORDER BY id LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    rows, total = _page(await cursor.fetchall())
    if not rows and offset:
        total = await _count(conn, f"SELECT count(*) AS total FROM vehicles WHERE {where}", params)
    return rows, total


async def dealer_auctions(
    conn: Connection, dealer_id: int, limit: int, offset: int, status: str | None
) -> tuple[list[dict[str, Any]], int]:
    where = "a.dealer_id = %(dealer_id)s" + (" AND a.status = %(status)s" if status else "")
    params = {"dealer_id": dealer_id, "status": status, "limit": limit, "offset": offset}
    cursor = await conn.execute(
        "SELECT a.id, a.dealer_id, a.title, a.description, a.starts_at, a.ends_at, a.status, a.created_at, "
        "(SELECT count(*) FROM auction_lots l WHERE l.auction_id = a.id) AS lot_count, "
        "count(*) OVER () AS total "
        f"FROM auctions a WHERE {where} ORDER BY a.starts_at DESC, a.id DESC LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    rows, total = _page(await cursor.fetchall())
    if not rows and offset:
        total = await _count(conn, f"SELECT count(*) AS total FROM auctions a WHERE {where}", params)
    return rows, total


# One query over the data of record: nothing is a stored counter. A lot's sale price is what its result says it
# sold for (the seller may have accepted an "if bid" or a counter-offer), else its winning (current) bid once the
# lot is `sold`; a car is sold when its row says so or one of its lots sold.
STATISTICS_SQL = """
WITH dealer_lots AS (
    SELECT l.id, l.vehicle_id, l.status, l.current_bid
    FROM auction_lots l JOIN auctions a ON a.id = l.auction_id
    WHERE a.dealer_id = %(dealer_id)s
), sold_lots AS (
    SELECT l.vehicle_id, coalesce(r.final_price, l.current_bid) AS sale_price, v.asking_price
    FROM dealer_lots l
    JOIN vehicles v ON v.id = l.vehicle_id
    LEFT JOIN lot_results r ON r.lot_id = l.id
    WHERE l.status = 'sold' AND coalesce(r.final_price, l.current_bid) IS NOT NULL
)
SELECT
    (SELECT count(*) FROM auctions WHERE dealer_id = %(dealer_id)s) AS total_auctions,
    (SELECT count(*) FROM auctions WHERE dealer_id = %(dealer_id)s AND status = 'live') AS live_auctions,
    (SELECT count(*) FROM vehicles WHERE dealer_id = %(dealer_id)s AND deleted_at IS NULL) AS cars_listed,
    (SELECT count(*) FROM vehicles v WHERE v.dealer_id = %(dealer_id)s
        AND (v.status = 'sold' OR v.id IN (SELECT vehicle_id FROM sold_lots))) AS cars_sold,
    (SELECT count(*) FROM sold_lots) AS lots_sold,
    (SELECT count(*) FROM dealer_lots WHERE status = 'unsold') AS lots_unsold,
    (SELECT count(*) FROM lot_results r JOIN dealer_lots l ON l.id = r.lot_id
        WHERE r.status IN ('pending_seller', 'countered')) AS lots_awaiting_decision,
    (SELECT count(*) FROM bids b JOIN dealer_lots l ON l.id = b.lot_id) AS total_bids,
    (SELECT coalesce(sum(sale_price), 0) FROM sold_lots) AS earnings,
    (SELECT round(avg(sale_price), 2) FROM sold_lots) AS average_sale_price,
    (SELECT round(avg(asking_price), 2) FROM sold_lots) AS average_asking_price,
    (SELECT round(sum(sale_price) / nullif(sum(asking_price), 0), 4) FROM sold_lots) AS sale_to_asking_ratio
"""


async def dealer_statistics(conn: Connection, dealer_id: int) -> dict[str, Any]:
    row = await (await conn.execute(STATISTICS_SQL, {"dealer_id": dealer_id})).fetchone()
    assert row is not None  # noqa: S101 - an aggregate SELECT always returns one row
    return row
