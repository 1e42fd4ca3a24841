"""SQL of live bidding's durable side: bids, retractions, lot progress, results (the caller owns the transaction).

Every write is idempotent: bids and retractions by the engine's bid id, results by lot, lot progress by the
lot's arrival number (an older write never overwrites a newer one), so a replayed or concurrent batch is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from marketplace.db import Connection


def cents_to_dollars(cents: int) -> Decimal:
    return Decimal(cents) / 100


def ms_to_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class LotRef:
    lot_id: int
    auction_id: int
    vehicle_id: int
    dealer_owner_id: int | None


async def lot_refs(conn: Connection, lot_ids: Iterable[int]) -> dict[int, LotRef]:
    cursor = await conn.execute(
        "SELECT l.id, l.auction_id, l.vehicle_id, d.owner_id FROM auction_lots l "
        "JOIN auctions a ON a.id = l.auction_id JOIN dealers d ON d.id = a.dealer_id WHERE l.id = ANY(%s)",
        (list(lot_ids),),
    )
    return {
        int(row["id"]): LotRef(int(row["id"]), int(row["auction_id"]), int(row["vehicle_id"]), row["owner_id"])
        for row in await cursor.fetchall()
    }


@dataclass(frozen=True)
class BidRow:
    bid_ref: str
    lot_id: int
    user_id: int
    max_cents: int
    kind: str
    seq: int
    price_cents: int
    accepted_at_ms: int
    ends_at_ms: int


@dataclass(frozen=True)
class RetractionRow:
    bid_ref: str
    lot_id: int
    user_id: int
    seq: int
    at_ms: int


async def insert_bids(conn: Connection, rows: Sequence[BidRow]) -> None:
    if not rows:
        return
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO bids (lot_id, user_id, amount, currency, placed_at, bid_ref, seq, kind, price_after, ends_at) "
            "VALUES (%s, %s, %s, 'USD', %s, %s, %s, %s, %s, %s) ON CONFLICT (bid_ref) DO NOTHING",
            [
                (
                    row.lot_id,
                    row.user_id,
                    cents_to_dollars(row.max_cents),
                    ms_to_time(row.accepted_at_ms),
                    row.bid_ref,
                    row.seq,
                    row.kind,
                    cents_to_dollars(row.price_cents),
                    ms_to_time(row.ends_at_ms),
                )
                for row in rows
            ],
        )


async def insert_retractions(conn: Connection, rows: Sequence[RetractionRow]) -> None:
    if not rows:
        return
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO bid_retractions (bid_ref, lot_id, user_id, seq, retracted_at) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (bid_ref) DO NOTHING",
            [(row.bid_ref, row.lot_id, row.user_id, row.seq, ms_to_time(row.at_ms)) for row in rows],
        )


async def advance_lot(conn: Connection, lot_id: int, *, seq: int, price_cents: int | None, ends_at_ms: int) -> None:
    """The lot's current bid and extended end, unless a newer arrival number was stored already."""
    await conn.execute(
        "UPDATE auction_lots SET current_bid = %s, bid_seq = %s, ends_at = %s WHERE id = %s AND bid_seq < %s",
        (
            None if price_cents is None else cents_to_dollars(price_cents),
            seq,
            ms_to_time(ends_at_ms),
            lot_id,
            seq,
        ),
    )


@dataclass(frozen=True)
class CloseRow:
    lot_id: int
    outcome: str  # sold | if_bid | no_bids
    price_cents: int
    high_bidder_id: int | None
    bid_count: int
    seq: int
    closed_at_ms: int
    ends_at_ms: int


LOT_STATUS_AT_CLOSE = {"sold": "sold", "if_bid": "if_bid", "no_bids": "unsold"}
RESULT_STATUS_AT_CLOSE = {"sold": "sold", "if_bid": "pending_seller", "no_bids": "unsold"}


async def record_close(conn: Connection, ref: LotRef, close: CloseRow) -> bool:
    """The lot's result, its status, its car's and its auction's; False when this close was recorded before."""
    has_bid = close.outcome != "no_bids"
    price = cents_to_dollars(close.price_cents) if has_bid else None
    cursor = await conn.execute(
        "INSERT INTO lot_results (lot_id, auction_id, outcome, high_bid, high_bidder_id, bid_count, closed_at, "
        "status, final_price, decided_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (lot_id) DO NOTHING RETURNING lot_id",
        (
            close.lot_id,
            ref.auction_id,
            close.outcome,
            price,
            close.high_bidder_id,
            close.bid_count,
            ms_to_time(close.closed_at_ms),
            RESULT_STATUS_AT_CLOSE[close.outcome],
            price if close.outcome == "sold" else None,
            ms_to_time(close.closed_at_ms) if close.outcome != "if_bid" else None,
        ),
    )
    if await cursor.fetchone() is None:
        return False
    await conn.execute(
        "UPDATE auction_lots SET status = %s, current_bid = %s, bid_seq = greatest(bid_seq, %s), ends_at = %s "
        "WHERE id = %s AND status = 'open'",
        (LOT_STATUS_AT_CLOSE[close.outcome], price, close.seq, ms_to_time(close.ends_at_ms), close.lot_id),
    )
    if close.outcome == "sold":
        await set_vehicle_status(conn, ref.vehicle_id, "sold")
    elif close.outcome == "no_bids":
        await set_vehicle_status(conn, ref.vehicle_id, "active")
    await close_auction_if_done(conn, ref.auction_id)
    return True


async def set_vehicle_status(conn: Connection, vehicle_id: int, status: str) -> None:
    """A car leaves its auction: sold, or back on sale (only from `in_auction`, never a withdrawn or deleted car)."""
    await conn.execute(
        "UPDATE vehicles SET status = %s, updated_at = now() WHERE id = %s AND status = 'in_auction'",
        (status, vehicle_id),
    )


async def close_auction_if_done(conn: Connection, auction_id: int) -> None:
    await conn.execute(
        "UPDATE auctions a SET status = 'closed', updated_at = now() WHERE a.id = %s "
        "AND a.status IN ('upcoming', 'live') "
        "AND NOT EXISTS (SELECT 1 FROM auction_lots l WHERE l.auction_id = a.id AND l.status = 'open')",
        (auction_id,),
    )


async def mark_auctions_live(conn: Connection, auction_ids: Sequence[int]) -> None:
    if auction_ids:
        await conn.execute(
            "UPDATE auctions SET status = 'live', updated_at = now() WHERE id = ANY(%s) AND status = 'upcoming'",
            (list(auction_ids),),
        )


# -- what the engine is rebuilt from ------------------------------------------------------------------------------


async def lot_history(conn: Connection, lot_id: int) -> list[dict[str, Any]]:
    """Every engine bid and retraction of a lot in arrival order (bids from before live bidding are left out)."""
    cursor = await conn.execute(
        "SELECT 'bid' AS type, bid_ref, seq, user_id, (amount * 100)::bigint AS amount_cents, kind, placed_at AS at "
        "FROM bids "
        "WHERE lot_id = %(lot)s AND seq IS NOT NULL "
        "UNION ALL SELECT 'retract', bid_ref, seq, user_id, NULL, NULL, retracted_at FROM bid_retractions "
        "WHERE lot_id = %(lot)s ORDER BY seq",
        {"lot": lot_id},
    )
    return list(await cursor.fetchall())


async def lots_bid_on(conn: Connection, user_id: int, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The lots `user_id` bid on, latest bid first: their highest amount and bid count there, and the lot's result
    if it closed. Returns (rows, total)."""
    cursor = await conn.execute(
        "WITH mine AS (SELECT lot_id, max(amount) AS your_highest, count(*) AS your_bids, "
        "max(placed_at) AS last_bid_at FROM bids WHERE user_id = %(user)s GROUP BY lot_id) "
        "SELECT m.*, l.auction_id, l.vehicle_id, r.status AS result_status, r.high_bidder_id, r.final_price, "
        "count(*) OVER () AS total FROM mine m JOIN auction_lots l ON l.id = m.lot_id "
        "LEFT JOIN lot_results r ON r.lot_id = m.lot_id "
        "ORDER BY m.last_bid_at DESC, m.lot_id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {"user": user_id, "limit": limit, "offset": offset},
    )
    rows = list(await cursor.fetchall())
    if rows:
        return rows, int(rows[0]["total"])
    if offset == 0:
        return [], 0
    total = await conn.execute("SELECT count(DISTINCT lot_id) AS n FROM bids WHERE user_id = %s", (user_id,))
    counted = await total.fetchone()
    return [], int(counted["n"]) if counted is not None else 0


async def bids_outside_engine(conn: Connection, lot_id: int) -> int:
    """Bids of the lot recorded without an arrival number (imported, or written by hand): the engine cannot
    replay them."""
    cursor = await conn.execute("SELECT count(*) AS n FROM bids WHERE lot_id = %s AND seq IS NULL", (lot_id,))
    row = await cursor.fetchone()
    return int(row["n"]) if row is not None else 0


async def bid_count(conn: Connection, lot_id: int) -> int:
    """Every bid PostgreSQL holds for the lot, live bidding's and those from before it."""
    row = await (await conn.execute("SELECT count(*) AS n FROM bids WHERE lot_id = %s", (lot_id,))).fetchone()
    return int(row["n"]) if row is not None else 0


async def lot_result(conn: Connection, lot_id: int, *, for_update: bool = False) -> dict[str, Any] | None:
    lock = " FOR UPDATE OF r" if for_update else ""
    cursor = await conn.execute(
        "SELECT r.*, l.vehicle_id, l.reserve_price, l.bid_seq, d.owner_id AS dealer_owner_id FROM lot_results r "
        "JOIN auction_lots l ON l.id = r.lot_id JOIN auctions a ON a.id = l.auction_id "
        f"JOIN dealers d ON d.id = a.dealer_id WHERE r.lot_id = %s{lock}",
        (lot_id,),
    )
    return await cursor.fetchone()


async def update_result(conn: Connection, lot_id: int, fields: dict[str, Any]) -> None:
    allowed = {"status", "final_price", "counter_amount", "decided_at"}
    fields = {name: value for name, value in fields.items() if name in allowed}
    assignments = "".join(f"{name} = %({name})s, " for name in fields)
    await conn.execute(
        f"UPDATE lot_results SET {assignments}updated_at = now() WHERE lot_id = %(lot)s", {**fields, "lot": lot_id}
    )


async def settle_lot(conn: Connection, lot_id: int, vehicle_id: int, *, sold: bool, price: Decimal | None) -> None:
    """An if-bid lot decided: sold at `price`, or unsold (its car goes back on sale)."""
    await conn.execute(
        "UPDATE auction_lots SET status = %s, current_bid = coalesce(%s, current_bid) WHERE id = %s",
        ("sold" if sold else "unsold", price, lot_id),
    )
    await set_vehicle_status(conn, vehicle_id, "sold" if sold else "active")


# -- the scheduler's view ----------------------------------------------------------------------------------------


async def lots_to_schedule(conn: Connection, horizon: datetime, limit: int) -> list[dict[str, Any]]:
    """Open lots of auctions (not cancelled) that start before `horizon`: to arm, open and close on time."""
    cursor = await conn.execute(
        "SELECT l.id, l.auction_id, a.starts_at, a.ends_at, a.status AS auction_status FROM auction_lots l "
        "JOIN auctions a ON a.id = l.auction_id WHERE l.status = 'open' AND a.status <> 'cancelled' "
        "AND a.starts_at <= %s ORDER BY a.ends_at, l.id LIMIT %s",
        (horizon, limit),
    )
    return list(await cursor.fetchall())


async def closed_at_ms(conn: Connection, lot_id: int) -> int | None:
    """When the lot's close was persisted (None: not closed as far as PostgreSQL knows)."""
    row = await (await conn.execute("SELECT closed_at FROM lot_results WHERE lot_id = %s", (lot_id,))).fetchone()
    return None if row is None else int(row["closed_at"].timestamp() * 1000)
