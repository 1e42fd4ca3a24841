"""Auctions: dealers put their cars up as lots, schedule, reschedule, cancel or delete them.

Knows nothing of HTTP: it raises `hub.errors` exceptions that the API turns into responses. A car in an
auction has the status `in_auction` (search shows it so); deleting or cancelling the auction makes it
`active` again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg_pool import AsyncConnectionPool

from hub.errors import Conflict, Forbidden, InvalidParameter, NotFound
from marketplace import auction_store
from marketplace.accounts import CurrentUser
from marketplace.db import Connection, transaction

# Scheduling bounds: far enough for planning, near enough that a typo (year 2205) is caught.
MAX_LEAD_TIME = timedelta(days=365)
MAX_DURATION = timedelta(days=30)
DEFAULT_INCREMENTS: tuple[tuple[Decimal, Decimal], ...] = ((Decimal(0), Decimal(100)),)

# Told after a committed change of an auction (its id and the ids of lots that no longer exist), so live bidding
# can follow: new times, withdrawn or forgotten lots. The write path never waits on it to decide anything.
AuctionObserver = Callable[[int, Sequence[int]], Awaitable[None]]


@dataclass(frozen=True)
class LotDraft:
    vehicle_id: int
    starting_price: Decimal
    reserve_price: Decimal | None = None
    buy_now_price: Decimal | None = None
    bid_increments: tuple[tuple[Decimal, Decimal], ...] = field(default=DEFAULT_INCREMENTS)


@dataclass(frozen=True)
class AuctionDraft:
    title: str
    starts_at: datetime
    ends_at: datetime
    lots: tuple[LotDraft, ...]
    description: str | None = None
    dealer_id: int | None = None


@dataclass(frozen=True)
class AuctionView:
    """An auction as its reader may see it: emails of bidders only for its dealer and admins."""

    auction: dict[str, Any]
    lots: list[dict[str, Any]]
    total_bids: int


class Auctions:
    def __init__(self, pool: AsyncConnectionPool[Connection], observer: AuctionObserver | None = None) -> None:
        self.pool = pool
        self.observer = observer

    # -- reading --------------------------------------------------------------------------------------

    async def find(
        self, status: str, dealer_id: int | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        async with transaction(self.pool) as conn:
            return await auction_store.list_auctions(
                conn, auction_store.STATUS_FILTERS[status], dealer_id, limit, offset
            )

    async def get(self, auction_id: int) -> AuctionView:
        async with transaction(self.pool) as conn:
            auction = await self._auction(conn, auction_id)
            lots = await auction_store.lots_of(conn, auction_id)
        return AuctionView(auction, lots, sum(int(lot["bid_count"]) for lot in lots))

    async def participants(self, actor: CurrentUser, auction_id: int) -> tuple[list[dict[str, Any]], int, bool]:
        """Distinct bidders with their bid counts, the auction's total bids, and whether emails are shown."""
        async with transaction(self.pool) as conn:
            auction = await self._auction(conn, auction_id)
            bidders = await auction_store.participants(conn, auction_id)
        with_email = actor.is_admin or auction["dealer_owner_id"] == actor.id
        return bidders, sum(int(row["bid_count"]) for row in bidders), with_email

    async def bids(self, auction_id: int, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        async with transaction(self.pool) as conn:
            await self._auction(conn, auction_id)
            return await auction_store.bids_of(conn, auction_id, limit, offset)

    # -- writing --------------------------------------------------------------------------------------

    async def create(self, actor: CurrentUser, draft: AuctionDraft) -> int:
        now = datetime.now(UTC)
        _check_schedule(draft.starts_at, draft.ends_at, now)
        _check_lots(draft.lots)
        async with transaction(self.pool) as conn:
            dealer_id = await self._acting_dealer(conn, actor, draft.dealer_id)
            await self._claim_vehicles(conn, dealer_id, draft.lots, except_auction=None)
            auction_id = await auction_store.insert_auction(
                conn, dealer_id, draft.title, draft.description, draft.starts_at, draft.ends_at
            )
            await auction_store.insert_lots(conn, auction_id, [asdict(lot) for lot in draft.lots])
        return auction_id

    async def update(
        self, actor: CurrentUser, auction_id: int, changes: dict[str, Any], lots: tuple[LotDraft, ...] | None
    ) -> None:
        """Change title, description, schedule or the whole lot list while the auction has not started."""
        now = datetime.now(UTC)
        if lots is not None:
            _check_lots(lots)
        async with transaction(self.pool) as conn:
            auction = await self._owned_auction(conn, actor, auction_id)
            if auction["status"] != "upcoming":
                raise Conflict(f"auction {auction_id} is {auction['status']}; only scheduled auctions change")
            starts_at = changes.get("starts_at", auction["starts_at"])
            ends_at = changes.get("ends_at", auction["ends_at"])
            if "starts_at" in changes or "ends_at" in changes:
                _check_schedule(starts_at, ends_at, now, start_changed="starts_at" in changes)
            removed: list[int] = []
            if lots is not None:
                if await auction_store.bid_total(conn, auction_id):
                    raise Conflict(f"auction {auction_id} has bids; its lots can no longer change")
                removed = [int(lot["id"]) for lot in await auction_store.lots_of(conn, auction_id)]
                released = await auction_store.remove_lots(conn, auction_id)
                await auction_store.set_vehicles_status(conn, released, old="in_auction", new="active")
                await self._claim_vehicles(conn, int(auction["dealer_id"]), lots, except_auction=auction_id)
                await auction_store.insert_lots(conn, auction_id, [asdict(lot) for lot in lots])
            await auction_store.update_auction(conn, auction_id, changes)
        await self._notify(auction_id, removed)

    async def delete(self, actor: CurrentUser, auction_id: int) -> None:
        async with transaction(self.pool) as conn:
            await self._owned_auction(conn, actor, auction_id)
            bids = await auction_store.bid_total(conn, auction_id)
            if bids:
                raise Conflict(f"auction {auction_id} has {bids} bids and cannot be deleted; cancel it instead")
            removed = [int(lot["id"]) for lot in await auction_store.lots_of(conn, auction_id)]
            released = await auction_store.remove_lots(conn, auction_id)
            await auction_store.set_vehicles_status(conn, released, old="in_auction", new="active")
            await auction_store.delete_auction(conn, auction_id)
        await self._notify(auction_id, removed)

    async def cancel(self, actor: CurrentUser, auction_id: int) -> None:
        async with transaction(self.pool) as conn:
            auction = await self._owned_auction(conn, actor, auction_id)
            if auction["status"] not in ("upcoming", "live"):
                raise Conflict(f"auction {auction_id} is already {auction['status']}")
            released = await auction_store.withdraw_lots(conn, auction_id)
            await auction_store.set_vehicles_status(conn, released, old="in_auction", new="active")
            await auction_store.update_auction(conn, auction_id, {"status": "cancelled"})
        await self._notify(auction_id, ())

    # -- helpers --------------------------------------------------------------------------------------

    async def _notify(self, auction_id: int, removed_lot_ids: Sequence[int]) -> None:
        if self.observer is not None:
            await self.observer(auction_id, removed_lot_ids)

    @staticmethod
    async def _auction(conn: Connection, auction_id: int, *, for_update: bool = False) -> dict[str, Any]:
        auction = await auction_store.auction_by_id(conn, auction_id, for_update=for_update)
        if auction is None:
            raise NotFound(f"auction {auction_id} not found")
        return auction

    async def _owned_auction(self, conn: Connection, actor: CurrentUser, auction_id: int) -> dict[str, Any]:
        auction = await self._auction(conn, auction_id, for_update=True)
        if not actor.is_admin and auction["dealer_owner_id"] != actor.id:
            raise Forbidden(f"auction {auction_id} belongs to another dealer; only its dealer or an admin changes it")
        return auction

    @staticmethod
    async def _acting_dealer(conn: Connection, actor: CurrentUser, dealer_id: int | None) -> int:
        """The dealership an auction is created for: the caller's own, or any named one for an admin."""
        if actor.is_admin:
            if dealer_id is None:
                raise InvalidParameter("dealer_id", "an admin names the dealer the auction is created for")
            dealer = await auction_store.dealer_by_id(conn, dealer_id)
            if dealer is None:
                raise InvalidParameter("dealer_id", f"dealer {dealer_id} does not exist")
        else:
            if actor.role != "dealer":
                raise Forbidden(f"only dealers and admins create auctions; you are {actor.role}")
            dealer = await auction_store.dealer_of_owner(conn, actor.id)
            if dealer is None:
                raise Forbidden("register your dealership at POST /api/v1/dealers before creating auctions")
            if dealer_id is not None and dealer_id != dealer["id"]:
                raise Forbidden(f"dealer {dealer_id} is not yours; leave dealer_id out or send {dealer['id']}")
        if dealer["status"] == "suspended":
            raise Forbidden(f"dealer {dealer['id']} is suspended and cannot create auctions")
        return int(dealer["id"])

    @staticmethod
    async def _claim_vehicles(
        conn: Connection, dealer_id: int, lots: tuple[LotDraft, ...], except_auction: int | None
    ) -> None:
        ids = [lot.vehicle_id for lot in lots]
        vehicles = await auction_store.lock_vehicles(conn, ids)
        for index, vehicle_id in enumerate(ids):
            vehicle = vehicles.get(vehicle_id)
            if vehicle is None or vehicle["deleted_at"] is not None or vehicle["dealer_id"] != dealer_id:
                raise InvalidParameter(
                    f"lots[{index}].vehicle_id", f"car {vehicle_id} is not one of dealer {dealer_id}'s cars"
                )
        elsewhere = await auction_store.open_lots_of_vehicles(conn, ids, except_auction)
        for vehicle_id in ids:
            if vehicle_id in elsewhere:
                raise Conflict(f"car {vehicle_id} is already in auction {elsewhere[vehicle_id]}")
            status = vehicles[vehicle_id]["status"]
            if status != "active":
                raise Conflict(f"car {vehicle_id} is {status}; only active cars go to auction")
        await auction_store.set_vehicles_status(conn, ids, old="active", new="in_auction")


def _check_schedule(starts_at: datetime, ends_at: datetime, now: datetime, *, start_changed: bool = True) -> None:
    if start_changed and starts_at <= now:
        raise InvalidParameter("starts_at", "schedule the start in the future")
    if start_changed and starts_at > now + MAX_LEAD_TIME:
        raise InvalidParameter("starts_at", f"schedule the start within {MAX_LEAD_TIME.days} days")
    if ends_at <= starts_at:
        raise InvalidParameter("ends_at", "end the auction after it starts")
    if ends_at - starts_at > MAX_DURATION:
        raise InvalidParameter("ends_at", f"an auction lasts at most {MAX_DURATION.days} days")


def _check_lots(lots: tuple[LotDraft, ...]) -> None:
    if not lots:
        raise InvalidParameter("lots", "put at least one car up for auction")
    seen: set[int] = set()
    for index, lot in enumerate(lots):
        where = f"lots[{index}]"
        if lot.vehicle_id in seen:
            raise InvalidParameter(f"{where}.vehicle_id", f"car {lot.vehicle_id} is listed twice")
        seen.add(lot.vehicle_id)
        if lot.reserve_price is not None and lot.reserve_price < lot.starting_price:
            raise InvalidParameter(f"{where}.reserve_price", "the reserve must be at least the starting price")
        if lot.buy_now_price is not None and lot.buy_now_price <= lot.starting_price:
            raise InvalidParameter(f"{where}.buy_now_price", "the buy-now price must exceed the starting price")
        if lot.buy_now_price is not None and lot.reserve_price is not None and lot.buy_now_price < lot.reserve_price:
            raise InvalidParameter(f"{where}.buy_now_price", "the buy-now price must be at least the reserve")
        _check_increments(f"{where}.bid_increments", lot.bid_increments, lot.starting_price)


def _check_increments(where: str, table: tuple[tuple[Decimal, Decimal], ...], starting_price: Decimal) -> None:
    if not table:
        raise InvalidParameter(where, "give at least one [from_price, increment] row")
    if table[0][0] > starting_price:
        raise InvalidParameter(where, "the first row must start at or below the starting price")
    previous: Decimal | None = None
    for start, step in table:
        if start < 0 or step <= 0:
            raise InvalidParameter(where, "from_price must be >= 0 and every increment positive")
        if previous is not None and start <= previous:
            raise InvalidParameter(where, "from_price must be strictly ascending")
        previous = start
