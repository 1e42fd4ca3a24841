"""SQL of auctions, their lots and bids (parameterized; the caller owns the transaction).

An auction's effective status follows the clock: a stored `upcoming` auction is `live` once it starts and
`closed` once it and every lot a late bid extended have ended, without anyone writing the row. `cancelled` and
`closed` are final.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from marketplace.db import Connection

# An auction past its scheduled end stays live while a lot's soft close has pushed that lot's end later.
EFFECTIVE_STATUS = """CASE
    WHEN a.status IN ('cancelled', 'closed') THEN a.status
    WHEN a.ends_at <= now() AND NOT EXISTS (SELECT 1 FROM auction_lots extended WHERE extended.auction_id = a.id
        AND extended.status = 'open' AND extended.ends_at > now()) THEN 'closed'
    WHEN a.status = 'live' OR a.starts_at <= now() THEN 'live'
    ELSE 'upcoming' END"""

SHOWCASE_AUCTION_SQL = f"""SELECT a.id FROM auctions a
WHERE EXISTS (SELECT 1 FROM auction_lots l WHERE l.auction_id = a.id)
ORDER BY CASE ({EFFECTIVE_STATUS}) WHEN 'live' THEN 0 WHEN 'upcoming' THEN 1 WHEN 'closed' THEN 2 ELSE 3 END,
  CASE WHEN ({EFFECTIVE_STATUS}) = 'closed' THEN -extract(epoch FROM a.ends_at) ELSE extract(epoch FROM a.ends_at) END,
  a.id
LIMIT 1"""


def showcase_auction_id(database_url: str) -> int | None:
    """The auction a newcomer should watch first: one running now (ending soonest), else the next to start, else the
    latest to end; None when there is no auction with lots (or the database cannot be read)."""
    import psycopg

    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            row = conn.execute(SHOWCASE_AUCTION_SQL).fetchone()
    except psycopg.Error:
        return None
    return None if row is None else int(row[0])


AUCTION_COLUMNS = (
    f"a.id, a.dealer_id, a.title, a.description, a.starts_at, a.ends_at, a.created_at, a.updated_at, "
    f"({EFFECTIVE_STATUS}) AS status, d.owner_id AS dealer_owner_id"
)

# Which effective statuses a list filter selects; `active` is what buyers can still bid on or will soon.
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "active": ("upcoming", "live"),
    "upcoming": ("upcoming",),
    "live": ("live",),
    "closed": ("closed",),
    "cancelled": ("cancelled",),
}


async def dealer_of_owner(conn: Connection, user_id: int) -> dict[str, Any] | None:
    cursor = await conn.execute("SELECT id, owner_id, status FROM dealers WHERE owner_id = %s", (user_id,))
    return await cursor.fetchone()


async def dealer_by_id(conn: Connection, dealer_id: int) -> dict[str, Any] | None:
    cursor = await conn.execute("SELECT id, owner_id, status FROM dealers WHERE id = %s", (dealer_id,))
    return await cursor.fetchone()


async def lock_vehicles(conn: Connection, vehicle_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The vehicles, locked in id order (two auctions claiming the same cars cannot deadlock)."""
    cursor = await conn.execute(
        "SELECT id, dealer_id, status, deleted_at FROM vehicles WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        (list(vehicle_ids),),
    )
    return {int(row["id"]): row for row in await cursor.fetchall()}


async def open_lots_of_vehicles(
    conn: Connection, vehicle_ids: Sequence[int], except_auction: int | None
) -> dict[int, int]:
    """vehicle id -> id of another upcoming or live auction holding it in an open lot."""
    cursor = await conn.execute(
        f"SELECT l.vehicle_id, a.id AS auction_id FROM auction_lots l JOIN auctions a ON a.id = l.auction_id "
        f"WHERE l.vehicle_id = ANY(%s) AND l.status = 'open' AND a.id IS DISTINCT FROM %s "
        f"AND ({EFFECTIVE_STATUS}) IN ('upcoming', 'live')",
        (list(vehicle_ids), except_auction),
    )
    return {int(row["vehicle_id"]): int(row["auction_id"]) for row in await cursor.fetchall()}


async def set_vehicles_status(conn: Connection, vehicle_ids: Sequence[int], *, old: str, new: str) -> None:
    await conn.execute(
        "UPDATE vehicles SET status = %s, updated_at = now() WHERE id = ANY(%s) AND status = %s",
        (new, list(vehicle_ids), old),
    )


async def insert_auction(
    conn: Connection, dealer_id: int, title: str, description: str | None, starts_at: datetime, ends_at: datetime
) -> int:
    cursor = await conn.execute(
        "INSERT INTO auctions (dealer_id, title, description, starts_at, ends_at) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (dealer_id, title, description, starts_at, ends_at),
    )
    row = await cursor.fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
    return int(row["id"])


async def insert_lots(conn: Connection, auction_id: int, lots: Sequence[dict[str, Any]]) -> None:
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO auction_lots (auction_id, vehicle_id, lot_number, starting_price, reserve_price, "
            "min_increment, buy_now_price, bid_increments) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    auction_id,
                    lot["vehicle_id"],
                    number,
                    lot["starting_price"],
                    lot["reserve_price"],
                    lot["bid_increments"][0][1],
                    lot["buy_now_price"],
                    Jsonb([[str(start), str(step)] for start, step in lot["bid_increments"]]),
                )
                for number, lot in enumerate(lots, 1)
            ],
        )


async def auction_by_id(conn: Connection, auction_id: int, *, for_update: bool = False) -> dict[str, Any] | None:
    lock = " FOR UPDATE OF a" if for_update else ""
    cursor = await conn.execute(
        f"SELECT {AUCTION_COLUMNS} FROM auctions a JOIN dealers d ON d.id = a.dealer_id WHERE a.id = %s{lock}",
        (auction_id,),
    )
    return await cursor.fetchone()


async def lots_of(conn: Connection, auction_id: int) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT l.id, l.lot_number, l.vehicle_id, l.starting_price, l.reserve_price, l.min_increment, "
        "l.buy_now_price, l.bid_increments, l.current_bid, l.status, l.ends_at, "
        "(SELECT count(*) FROM bids b WHERE b.lot_id = l.id) AS bid_count "
        "FROM auction_lots l WHERE l.auction_id = %s ORDER BY l.lot_number",
        (auction_id,),
    )
    return list(await cursor.fetchall())


async def list_auctions(
    conn: Connection, statuses: Sequence[str], dealer_id: int | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    where = f"({EFFECTIVE_STATUS}) = ANY(%(statuses)s)" + (" AND a.dealer_id = %(dealer)s" if dealer_id else "")
    params = {"statuses": list(statuses), "dealer": dealer_id, "limit": limit, "offset": offset}
    cursor = await conn.execute(
        f"SELECT {AUCTION_COLUMNS}, "
        "(SELECT count(*) FROM auction_lots l WHERE l.auction_id = a.id) AS lot_count, "
        "(SELECT count(*) FROM bids b JOIN auction_lots l ON l.id = b.lot_id WHERE l.auction_id = a.id) AS bid_count "
        f"FROM auctions a JOIN dealers d ON d.id = a.dealer_id WHERE {where} "
        "ORDER BY a.starts_at, a.id LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    rows = list(await cursor.fetchall())
    count = await (await conn.execute(f"SELECT count(*) AS total FROM auctions a WHERE {where}", params)).fetchone()
    return rows, int(count["total"]) if count else 0


async def bid_total(conn: Connection, auction_id: int) -> int:
    cursor = await conn.execute(
        "SELECT count(*) AS total FROM bids b JOIN auction_lots l ON l.id = b.lot_id WHERE l.auction_id = %s",
        (auction_id,),
    )
    row = await cursor.fetchone()
    return int(row["total"]) if row else 0


async def update_auction(conn: Connection, auction_id: int, fields: dict[str, Any]) -> None:
    allowed = {"title", "description", "starts_at", "ends_at", "status"}
    fields = {name: value for name, value in fields.items() if name in allowed}
    assignments = "".join(f"{name} = %({name})s, " for name in fields)
    await conn.execute(
        f"UPDATE auctions SET {assignments}updated_at = now() WHERE id = %(id)s", {**fields, "id": auction_id}
    )
    if "ends_at" in fields:  # the lots' end as pre-bids recorded it follows the new schedule
        await conn.execute(
            "UPDATE auction_lots SET ends_at = NULL WHERE auction_id = %s AND status = 'open'", (auction_id,)
        )


async def remove_lots(conn: Connection, auction_id: int) -> list[int]:
    """Delete the lots of an auction without bids; returns their vehicles."""
    cursor = await conn.execute("DELETE FROM auction_lots WHERE auction_id = %s RETURNING vehicle_id", (auction_id,))
    return [int(row["vehicle_id"]) for row in await cursor.fetchall()]


async def withdraw_lots(conn: Connection, auction_id: int) -> list[int]:
    """Withdraw the open lots of a cancelled auction; returns their vehicles."""
    cursor = await conn.execute(
        "UPDATE auction_lots SET status = 'withdrawn' WHERE auction_id = %s AND status = 'open' RETURNING vehicle_id",
        (auction_id,),
    )
    return [int(row["vehicle_id"]) for row in await cursor.fetchall()]


async def delete_auction(conn: Connection, auction_id: int) -> None:
    await conn.execute("DELETE FROM auctions WHERE id = %s", (auction_id,))


async def participants(conn: Connection, auction_id: int) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT b.user_id, u.email, u.deleted_at, count(*) AS bid_count, max(b.amount) AS highest_bid, "
        "max(b.placed_at) AS last_bid_at "
        "FROM bids b JOIN auction_lots l ON l.id = b.lot_id JOIN users u ON u.id = b.user_id "
        "WHERE l.auction_id = %s GROUP BY b.user_id, u.email, u.deleted_at ORDER BY count(*) DESC, b.user_id",
        (auction_id,),
    )
    return list(await cursor.fetchall())


async def bids_of(conn: Connection, auction_id: int, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    cursor = await conn.execute(
        "SELECT b.id, b.lot_id, l.lot_number, b.user_id, b.amount, b.currency, b.placed_at "
        "FROM bids b JOIN auction_lots l ON l.id = b.lot_id WHERE l.auction_id = %s "
        "ORDER BY b.placed_at DESC, b.id DESC LIMIT %s OFFSET %s",
        (auction_id, limit, offset),
    )
    return list(await cursor.fetchall()), await bid_total(conn, auction_id)
