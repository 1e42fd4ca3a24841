"""Bidding's domain glue (no HTTP): who may bid, how fast, on which lot; lots armed from PostgreSQL on first use.

PostgreSQL holds money as numeric dollars; the engine holds integer cents. Conversion happens here and only here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bidding import bid_store
from bidding.engine import BidEngine
from bidding.lots import BidKind, BidReply, LotRules, LotStatus, LotView, Rejection
from bidding.rate_limit import BidRateLimiter, RateLimit
from bidding.rebuild import RebuildError, arm_or_rebuild
from hub.errors import AppError, Conflict, Forbidden, InvalidParameter, NotFound, ServiceUnavailable
from marketplace.accounts import CurrentUser
from marketplace.auction_store import EFFECTIVE_STATUS
from marketplace.db import Connection, transaction

log = logging.getLogger(__name__)

BIDDER_ROLES = ("buyer", "dealer")  # dealers buy from other dealers; never on their own lots (engine: OWN_LOT)
AUCTION_CURRENCY = "USD"  # the marketplace schema prices every auction in US dollars


class LotSettled(Conflict):
    def __init__(self, lot_id: int, status: str) -> None:
        super().__init__(f"lot {lot_id} has closed ({status.replace('_', ' ')}); it takes no more bids")


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)}, retry_after_s=retry_after_s)


def to_cents(dollars: Decimal | int | str) -> int:
    return int((Decimal(dollars) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


def rules_from_row(row: dict[str, Any]) -> LotRules:
    increments = tuple((to_cents(start), to_cents(step)) for start, step in row["bid_increments"] or [])
    if not increments:
        increments = ((0, to_cents(row["min_increment"])),)
    return LotRules(
        lot_id=int(row["id"]),
        auction_id=int(row["auction_id"]),
        seller_user_id=int(row["owner_id"]) if row["owner_id"] is not None else 0,
        currency=AUCTION_CURRENCY,
        starting_price=to_cents(row["starting_price"]),
        increments=increments,
        starts_at_ms=to_ms(row["starts_at"]),
        ends_at_ms=to_ms(row["ends_at"]),
        reserve_price=None if row["reserve_price"] is None else to_cents(row["reserve_price"]),
        buy_now_price=None if row["buy_now_price"] is None else to_cents(row["buy_now_price"]),
    )


LOT_RULES_SQL = (
    "SELECT l.id, l.auction_id, l.starting_price, l.reserve_price, l.buy_now_price, l.min_increment, "
    f"l.bid_increments, l.status AS lot_status, l.current_bid, a.starts_at, a.ends_at, "
    f"({EFFECTIVE_STATUS}) AS auction_status, "
    "d.owner_id FROM auction_lots l JOIN auctions a ON a.id = l.auction_id JOIN dealers d ON d.id = a.dealer_id "
    "WHERE l.id = %s"
)


async def lot_rules_row(conn: Connection, lot_id: int) -> dict[str, Any] | None:
    return await (await conn.execute(LOT_RULES_SQL, (lot_id,))).fetchone()


SETTLED_LOT_STATUSES = ("sold", "unsold", "if_bid")


def settled_outside_engine(row: dict[str, Any], history: Sequence[dict[str, Any]], closed_ms: int | None) -> bool:
    """A lot PostgreSQL holds as decided whose bids live bidding never took (imported history, the demo data's past
    auctions): there is nothing to replay, and arming it would show it as if its auction were still to come."""
    return row["lot_status"] in SETTLED_LOT_STATUSES and not history and closed_ms is None


def settled_view(row: dict[str, Any], bid_count: int) -> LotView:
    """What PostgreSQL records of such a lot, as buyers see any closed lot."""
    price = to_cents(row["current_bid"] if row["current_bid"] is not None else row["starting_price"])
    reserve = None if row["reserve_price"] is None else to_cents(row["reserve_price"])
    return LotView(
        lot_id=int(row["id"]),
        status=LotStatus.CLOSED,
        current_price=price,
        min_next_bid=price,
        bid_count=bid_count,
        leader_number=None,
        reserve_met=reserve is None or (row["current_bid"] is not None and price >= reserve),
        has_reserve=reserve is not None,
        ends_at_ms=to_ms(row["ends_at"]),
        currency=AUCTION_CURRENCY,
    )


async def auction_lot_rows(conn: Connection, auction_id: int) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT id, vehicle_id FROM auction_lots WHERE auction_id = %s ORDER BY lot_number", (auction_id,)
    )
    return list(await cursor.fetchall())


@asynccontextmanager
async def redis_available() -> AsyncIterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise ServiceUnavailable("live bidding is unreachable; retry shortly", headers={"Retry-After": "2"}) from exc


class BiddingService:
    def __init__(
        self, pool: AsyncConnectionPool[Connection], redis: Redis, engine: BidEngine, rate_limit: RateLimit
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.engine = engine
        self.rate_limit = rate_limit
        self.rate_limiter = BidRateLimiter(engine.bid_path, rate_limit)  # the bid's own connection (hot path)

    # -- lots ----------------------------------------------------------------------------------------------------

    async def lots_of_auction(self, auction_id: int) -> list[dict[str, Any]]:
        async with transaction(self.pool) as conn:
            rows = await auction_lot_rows(conn, auction_id)
        if not rows:
            raise NotFound(f"no auction {auction_id} (or it has no lots)")
        return rows

    async def lot_of_auction(self, auction_id: int, vehicle_id: int | None) -> int:
        rows = await self.lots_of_auction(auction_id)
        if vehicle_id is None:
            if len(rows) > 1:
                raise InvalidParameter("vehicleId", f"auction {auction_id} has {len(rows)} lots: name the vehicle")
            return int(rows[0]["id"])
        for row in rows:
            if int(row["vehicle_id"]) == vehicle_id:
                return int(row["id"])
        raise NotFound(f"vehicle {vehicle_id} is not a lot of auction {auction_id}")

    async def arm(self, lot_id: int) -> LotRules:
        """Load a lot from PostgreSQL into the engine: its rules, and its persisted bids replayed when Redis lost
        them (bidding.rebuild); idempotent in the engine."""
        async with transaction(self.pool) as conn:
            row = await lot_rules_row(conn, lot_id)
            history = await bid_store.lot_history(conn, lot_id) if row is not None else []
            closed_ms = await bid_store.closed_at_ms(conn, lot_id) if row is not None else None
            unreplayable = await bid_store.bids_outside_engine(conn, lot_id) if row is not None else 0
        if row is None:
            raise NotFound(f"no lot {lot_id}")
        if row["auction_status"] == "cancelled" or row["lot_status"] == "withdrawn":
            raise Conflict(f"lot {lot_id} is withdrawn: its auction was cancelled")
        if settled_outside_engine(row, history, closed_ms):
            raise LotSettled(lot_id, row["lot_status"])
        if unreplayable:
            # Opening the lot without them would restart its price below bids already taken.
            raise Conflict(
                f"lot {lot_id} holds {unreplayable} bid(s) recorded outside live bidding (no arrival number), which "
                "it cannot continue from; an operator must record them as engine bids (bid_ref, seq, kind) or "
                "settle the lot"
            )
        rules = rules_from_row(row)
        try:
            await arm_or_rebuild(self.engine, rules, history, closed_ms)
        except RebuildError as exc:
            raise ServiceUnavailable(f"lot {lot_id} is being recovered: {exc}", headers={"Retry-After": "30"}) from exc
        except ValueError as exc:
            raise Conflict(f"lot {lot_id} cannot take bids: {exc}") from exc
        return rules

    async def sync_auction(self, auction_id: int, removed_lot_ids: Sequence[int] = ()) -> None:
        """Bring the armed lots of an auction in line with PostgreSQL after its dealer changed it: new times for
        lots not yet open, a cancelled auction's lots withdrawn, lots that were replaced forgotten. Lots never
        armed need nothing: they are armed from PostgreSQL on first use."""
        now_ms = int(time.time() * 1000)
        for lot_id in removed_lot_ids:
            await self.engine.forget(lot_id)
        async with transaction(self.pool) as conn:
            rows = [await lot_rules_row(conn, int(row["id"])) for row in await auction_lot_rows(conn, auction_id)]
        for row in rows:
            if row is None or await self.engine.view(int(row["id"])) is None:
                continue
            if row["auction_status"] == "cancelled" or row["lot_status"] == "withdrawn":
                await self.engine.withdraw(int(row["id"]), now_ms=now_ms)
                await self.engine.announce(int(row["id"]), now_ms)  # search drops the car's auction
            else:
                rules = rules_from_row(row)
                if await self.engine.reschedule(rules.lot_id, rules.starts_at_ms, rules.ends_at_ms, now_ms=now_ms):
                    await self.engine.announce(rules.lot_id, now_ms)  # search learns the new end

    async def follow_auction(self, auction_id: int, removed_lot_ids: Sequence[int]) -> None:
        """`sync_auction` for the write path: the change is committed already, so an unreachable Redis is logged,
        not raised (a lot not armed yet is armed from PostgreSQL later anyway)."""
        try:
            await self.sync_auction(auction_id, removed_lot_ids)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("auction %d changed but live bidding could not follow (Redis: %s)", auction_id, exc)

    async def view(self, lot_id: int) -> LotView:
        view, _ = await self.view_and_leader(lot_id)
        return view

    async def view_and_leader(self, lot_id: int) -> tuple[LotView, int | None]:
        """The lot as any buyer sees it, and the user id leading it live (None: nobody, or the lot is settled)."""
        async with redis_available():
            found = await self.engine.view_and_leader(lot_id)
            if found is None:
                try:
                    await self.arm(lot_id)
                except LotSettled:
                    return await self.settled_view(lot_id), None
                found = await self.engine.view_and_leader(lot_id)
        if found is None:
            raise NotFound(f"no lot {lot_id}")
        return found

    async def lots_bid_on(
        self, user: CurrentUser, limit: int, offset: int
    ) -> tuple[list[tuple[dict[str, Any], LotView, bool]], int]:
        """The lots the buyer bid on (latest first), each as (their bids there, the lot now, whether they lead it or
        won it). A bid shows here once the persister recorded it in PostgreSQL, within a second of its reply."""
        async with transaction(self.pool) as conn:
            rows, total = await bid_store.lots_bid_on(conn, user.id, limit, offset)
        lots = []
        for row in rows:
            view, leader = await self.view_and_leader(int(row["lot_id"]))
            closed = row["result_status"] is not None
            lots.append((row, view, (row["high_bidder_id"] if closed else leader) == user.id))
        return lots, total

    async def settled_view(self, lot_id: int) -> LotView:
        async with transaction(self.pool) as conn:
            row = await lot_rules_row(conn, lot_id)
            bid_count = await bid_store.bid_count(conn, lot_id)
        if row is None:
            raise NotFound(f"no lot {lot_id}")
        return settled_view(row, bid_count)

    # -- bids ----------------------------------------------------------------------------------------------------

    async def _check_rate(self, user_id: int) -> None:
        wait_ms = await self.rate_limiter.admit(user_id, int(time.time() * 1000))
        if wait_ms:
            retry_after = max(1, -(-wait_ms // 1000))
            limit = self.rate_limit
            message = f"at most {limit.bids} bids per {limit.window_s} s; retry in {retry_after} s"
            raise TooManyRequests(message, retry_after)

    async def place_bid(
        self,
        user: CurrentUser,
        lot_id: int,
        amount: Decimal,
        currency: str,
        kind: BidKind,
        idempotency_key: str | None,
        claimed_user_id: int | None = None,
    ) -> BidReply:
        if claimed_user_id is not None and claimed_user_id != user.id:
            raise Forbidden(f"userId {claimed_user_id} is not you: bids are placed as the signed-in user ({user.id})")
        if user.role not in BIDDER_ROLES:
            raise Forbidden(f"only buyers bid; you are {user.role}")
        cents = to_cents(amount)
        async with redis_available():
            await self._check_rate(user.id)
            reply = await self._engine_bid(lot_id, user.id, cents, currency, kind, idempotency_key)
            if reply.reason == Rejection.UNKNOWN_LOT:  # armed lazily: the first bid or view loads it from PostgreSQL
                await self.arm(lot_id)
                reply = await self._engine_bid(lot_id, user.id, cents, currency, kind, idempotency_key)
        if reply.reason == Rejection.UNKNOWN_LOT:
            raise NotFound(f"no lot {lot_id}")
        return reply

    async def _engine_bid(
        self, lot_id: int, user_id: int, cents: int, currency: str, kind: BidKind, idempotency_key: str | None
    ) -> BidReply:
        now_ms = int(time.time() * 1000)
        return await self.engine.place_bid(
            lot_id, user_id, cents, kind=kind, now_ms=now_ms, currency=currency, idempotency_key=idempotency_key
        )
