"""Lot results and the seller's "if bid" decision (no HTTP).

A lot that closed below its reserve waits for its seller (the dealer who owns the auction):
    pending_seller --accept--> sold at the high bid
    pending_seller --decline-> unsold (the car goes back on sale)
    pending_seller --counter(amount > high bid)--> countered
    countered --the high bidder accepts--> sold at the counter amount
    countered --the high bidder declines--> unsold
Each decision is one PostgreSQL transaction holding the result row's lock, so two clicks cannot both win. Then it
is published like the bids: a `decision` record in the lot's bids stream (the persister sends it to Kafka
`auction.bids` for search), a public `result` event on the lot's SSE feed (the counter amount stays private), and
a notice on the high bidder's stream (`/api/v1/me/bids/stream`).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from bidding import bid_store
from bidding.engine import LOTS_KEY, NOTICES_MAXLEN, bids_key, events_key, notices_key
from bidding.scripts import EVENTS_MAXLEN
from hub.errors import Conflict, Forbidden, InvalidParameter, NotFound
from marketplace.accounts import CurrentUser
from marketplace.db import Connection, transaction

log = logging.getLogger(__name__)

SellerAction = Literal["accept", "counter", "decline"]
BuyerAction = Literal["accept", "decline"]


def _cents(amount: Decimal | None) -> int | None:
    return None if amount is None else int(amount * 100)


def result_view(row: dict[str, Any], actor: CurrentUser | None) -> dict[str, Any]:
    """A result as `actor` may see it: the parties (seller, high bidder, admins) see the bids and the counter."""
    party = actor is not None and (actor.is_admin or actor.id in (row["dealer_owner_id"], row["high_bidder_id"]))
    view: dict[str, Any] = {
        "lotId": row["lot_id"],
        "auctionId": row["auction_id"],
        "vehicleId": row["vehicle_id"],
        "outcome": row["outcome"],
        "status": row["status"],
        "bidCount": row["bid_count"],
        "closedAt": row["closed_at"],
        "finalPrice": None if row["final_price"] is None else float(row["final_price"]),
        "decidedAt": row["decided_at"],
    }
    if party:
        view["highBid"] = None if row["high_bid"] is None else float(row["high_bid"])
        view["highBidderId"] = row["high_bidder_id"]
        view["counterAmount"] = None if row["counter_amount"] is None else float(row["counter_amount"])
        view["youAreHighBidder"] = actor is not None and actor.id == row["high_bidder_id"]
    return view


class LotResults:
    def __init__(self, pool: AsyncConnectionPool[Connection], redis: Redis) -> None:
        self.pool = pool
        self.redis = redis

    async def get(self, actor: CurrentUser | None, lot_id: int) -> dict[str, Any]:
        async with transaction(self.pool) as conn:
            row = await bid_store.lot_result(conn, lot_id)
        if row is None:
            raise NotFound(f"lot {lot_id} has no result yet (not closed, or its close is being recorded)")
        return result_view(row, actor)

    async def seller_decides(
        self, actor: CurrentUser, lot_id: int, action: SellerAction, amount: Decimal | None
    ) -> dict[str, Any]:
        async with transaction(self.pool) as conn:
            row = await self._locked(conn, lot_id)
            if actor.id != row["dealer_owner_id"]:
                raise Forbidden(f"only the dealer selling lot {lot_id} decides on its if-bid")
            if row["status"] != "pending_seller":
                raise Conflict(f"lot {lot_id} is {row['status']}: there is no if-bid waiting for the seller")
            high_bid: Decimal = row["high_bid"]
            if action == "counter":
                if amount is None or amount <= high_bid:
                    raise InvalidParameter("amount", f"a counter-offer must be above the high bid ({high_bid})")
                changes: dict[str, Any] = {"status": "countered", "counter_amount": amount}
            elif action == "accept":
                changes = {"status": "sold", "final_price": high_bid, "decided_at": datetime.now(UTC)}
            else:
                changes = {"status": "unsold", "decided_at": datetime.now(UTC)}
            row = await self._apply(conn, row, changes)
        await self._publish(row)
        return result_view(row, actor)

    async def buyer_answers(self, actor: CurrentUser, lot_id: int, action: BuyerAction) -> dict[str, Any]:
        async with transaction(self.pool) as conn:
            row = await self._locked(conn, lot_id)
            if actor.id != row["high_bidder_id"]:
                raise Forbidden(f"only the high bidder of lot {lot_id} answers its counter-offer")
            if row["status"] != "countered":
                raise Conflict(f"lot {lot_id} is {row['status']}: there is no counter-offer to answer")
            if action == "accept":
                changes: dict[str, Any] = {
                    "status": "sold",
                    "final_price": row["counter_amount"],
                    "decided_at": datetime.now(UTC),
                }
            else:
                changes = {"status": "unsold", "decided_at": datetime.now(UTC)}
            row = await self._apply(conn, row, changes)
        await self._publish(row)
        return result_view(row, actor)

    # -- steps ---------------------------------------------------------------------------------------------------

    @staticmethod
    async def _locked(conn: Connection, lot_id: int) -> dict[str, Any]:
        row = await bid_store.lot_result(conn, lot_id, for_update=True)
        if row is None:
            raise NotFound(f"lot {lot_id} has no result yet (not closed, or its close is being recorded)")
        return row

    @staticmethod
    async def _apply(conn: Connection, row: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        await bid_store.update_result(conn, row["lot_id"], changes)
        if changes["status"] in ("sold", "unsold"):
            sold = changes["status"] == "sold"
            await bid_store.settle_lot(
                conn, row["lot_id"], row["vehicle_id"], sold=sold, price=changes.get("final_price")
            )
        return {**row, **changes}

    async def _publish(self, row: dict[str, Any]) -> None:
        """Best effort after the commit (PostgreSQL is the record): Kafka via the persister, SSE, the buyer."""
        lot_id = int(row["lot_id"])
        status = str(row["status"])
        now_ms = int(time.time() * 1000)
        price = _cents(row["final_price"]) if status == "sold" else _cents(row["high_bid"])
        record: dict[Any, Any] = {
            "type": "decision",
            "status": status,
            "amount": str(price or 0),
            "user_id": str(row["high_bidder_id"] or ""),
            "accepted_at_ms": str(now_ms),
            "bid_count": str(row["bid_count"]),
            "seq": str(row["bid_seq"]),
        }
        try:
            await self.redis.sadd(LOTS_KEY, str(lot_id))  # the persister reads the lot's stream again
            await self.redis.xadd(bids_key(lot_id), record)
            if status in ("sold", "unsold"):
                public: dict[Any, Any] = {
                    "type": "result",
                    "lot_id": str(lot_id),
                    "outcome": status,
                    "accepted_at_ms": str(now_ms),
                }
                if status == "sold":
                    public["price"] = str(price)
                await self.redis.xadd(events_key(lot_id), public, maxlen=EVENTS_MAXLEN, approximate=True)
            if row["high_bidder_id"] is not None:
                offered = _cents(row["counter_amount"]) if status == "countered" else price
                notice: dict[Any, Any] = {
                    "type": "counter_offer" if status == "countered" else "result",
                    "lot_id": str(lot_id),
                    "status": status,
                    "price": str(offered),
                    "at_ms": str(now_ms),
                }
                await self.redis.xadd(
                    notices_key(int(row["high_bidder_id"])), notice, maxlen=NOTICES_MAXLEN, approximate=True
                )
        except Exception:  # noqa: BLE001 - the decision is committed; search catches up on the next lot event
            log.exception("lot %d: decision %s committed but not published", lot_id, status)
