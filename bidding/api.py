"""Bidding over HTTP: place bids, read a lot, and the SSE price feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from redis.asyncio import Redis

from bidding.engine import BidEngine
from bidding.feed import FeedConfig, FeedHub, event_stream
from bidding.lots import BidReply, LotView
from bidding.rate_limit import RateLimit
from bidding.redis_mux import RedisMux
from bidding.service import BiddingService
from bidding.settings import BiddingSettings
from hub.errors import InvalidParameter, ServiceUnavailable, described_pattern
from marketplace.api.deps import CurrentUserDep
from marketplace.db import Connection

router = APIRouter(tags=["bidding"])

RowId = Annotated[int, Path(ge=1, le=2**62)]
Amount = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2, description="Dollars, at most 2 decimals.")]
Currency = Annotated[
    str,
    Field(
        pattern=described_pattern(r"^[A-Z]{3}$", "a 3-letter ISO 4217 currency code, e.g. USD"),
        description="ISO 4217 (any case); must be the auction's (USD).",
    ),
    BeforeValidator(lambda value: value.strip().upper() if isinstance(value, str) else value),
]
Kind = Annotated[
    Literal["max", "live"],
    Field(description="`max`: a secret maximum the engine bids up to for you (default); `live`: exactly this bid."),
]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
MAX_WATCHED_LOTS = 200

# -- bodies -------------------------------------------------------------------------------------------------------


class AuctionBidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    userId: int = Field(ge=1, description="Must be the signed-in user.")  # noqa: N815 - the seed's wire format
    amount: Amount
    currency: Currency
    vehicleId: int | None = Field(default=None, ge=1, description="The lot's vehicle; required for multi-lot auctions.")  # noqa: N815
    kind: Kind = "max"


class LotBidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount
    currency: Currency
    kind: Kind = "max"


class BidOut(BaseModel):
    status: Literal["ACCEPTED", "REJECTED"]
    lotId: int  # noqa: N815
    currentPrice: float  # noqa: N815
    minNextBid: float  # noqa: N815
    bidCount: int  # noqa: N815
    reserveMet: bool  # noqa: N815
    isLeader: bool  # noqa: N815
    endsAt: datetime  # noqa: N815
    reason: str | None = None
    message: str | None = None


class LotOut(BaseModel):
    lotId: int  # noqa: N815
    status: str
    currentPrice: float  # noqa: N815
    minNextBid: float  # noqa: N815
    bidCount: int  # noqa: N815
    leader: int | None = Field(description="The leading bidder as an anonymous bidder number.")
    reserveMet: bool  # noqa: N815
    hasReserve: bool  # noqa: N815
    endsAt: datetime  # noqa: N815
    currency: str
    buyNowPrice: float | None  # noqa: N815


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def bid_response(lot_id: int, reply: BidReply) -> Response:
    """The reply serialized once by pydantic-core: a returned Response skips FastAPI's re-validation and encoding of
    the response model (the route still declares `BidOut` for the OpenAPI document)."""
    return Response(bid_out(lot_id, reply).model_dump_json(), media_type="application/json")


def bid_out(lot_id: int, reply: BidReply) -> BidOut:
    return BidOut(
        status=reply.status,
        lotId=lot_id,
        currentPrice=reply.current_price / 100,
        minNextBid=reply.min_next_bid / 100,
        bidCount=reply.bid_count,
        reserveMet=reply.reserve_met,
        isLeader=reply.is_leader,
        endsAt=_when(reply.ends_at_ms),
        reason=None if reply.reason is None else str(reply.reason),
        message=reply.message or None,
    )


def lot_out(view: LotView) -> LotOut:
    return LotOut(
        lotId=view.lot_id,
        status=str(view.status),
        currentPrice=view.current_price / 100,
        minNextBid=view.min_next_bid / 100,
        bidCount=view.bid_count,
        leader=view.leader_number,
        reserveMet=view.reserve_met,
        hasReserve=view.has_reserve,
        endsAt=_when(view.ends_at_ms),
        currency=view.currency,
        buyNowPrice=None if view.buy_now_price is None else view.buy_now_price / 100,
    )


# -- dependencies -------------------------------------------------------------------------------------------------


async def get_service(request: Request) -> BiddingService:  # async: FastAPI runs a sync dependency in a thread
    service: BiddingService | None = getattr(request.app.state, "bidding_service", None)
    if service is None:
        raise ServiceUnavailable("bidding is not configured: it needs the marketplace database and Redis")
    return service


async def get_feed(request: Request, _: Annotated[BiddingService, Depends(get_service)]) -> FeedHub:
    feed: FeedHub = request.app.state.feed_hub
    return feed


ServiceDep = Annotated[BiddingService, Depends(get_service)]
FeedDep = Annotated[FeedHub, Depends(get_feed)]


class BiddingHttpSettings(BiddingSettings):
    """The bidding service's settings plus what its HTTP edge needs (same `AUCTION_HUB_` prefix)."""

    bid_rate_limit: int = Field(default=10, ge=1, le=10_000, description="Bids a user may place per window.")
    bid_rate_window_s: int = Field(default=1, ge=1, le=3600)
    sse_heartbeat_s: float = Field(default=15.0, gt=0, le=300, description="Comment line sent on an idle stream.")
    sse_queue_size: int = Field(default=1000, ge=1, le=100_000, description="Events buffered per slow client.")
    sse_max_life_s: float = Field(default=600.0, gt=0, le=86_400, description="A connection ends after this.")
    sse_retry_ms: int = Field(default=3000, ge=0, le=600_000, description="The reconnect delay hinted to clients.")
    bid_lane: bool = Field(default=True, description="Serve well-formed bids in bidding.bid_lane, not the routes.")
    bid_redis_mux: bool = Field(
        default=True, description="Bids and the rate limit over one multiplexed Redis connection (bidding.redis_mux)."
    )


async def start_bidding(app: FastAPI, pool: AsyncConnectionPool[Connection], settings: BiddingHttpSettings) -> None:
    """Redis client, engine, service and the feed's reader task; nothing connects before the app starts."""
    redis: Redis = settings.redis_client()
    feed = FeedConfig(
        heartbeat_s=settings.sse_heartbeat_s,
        queue_size=settings.sse_queue_size,
        max_life_s=settings.sse_max_life_s,
        retry_ms=settings.sse_retry_ms,
        block_ms=settings.stream_block_ms(FeedConfig.block_ms),
    )
    hub = FeedHub(redis, feed)
    rate_limit = RateLimit(settings.bid_rate_limit, settings.bid_rate_window_s)
    bid_path = RedisMux(settings.redis_url) if settings.bid_redis_mux else None
    app.state.bidding_service = BiddingService(pool, redis, BidEngine(redis, bid_path), rate_limit)
    app.state.auction_observer = app.state.bidding_service.follow_auction  # marketplace.auctions tells us changes
    app.state.feed_hub = hub
    app.state.bid_lane = settings.bid_lane
    await hub.start()


async def stop_bidding(app: FastAPI) -> None:
    hub: FeedHub | None = getattr(app.state, "feed_hub", None)
    if hub is None:
        return
    notices = getattr(app.state, "notice_hub", None)  # bidding.lifecycle_api's per-user stream reader
    if notices is not None:
        await notices.stop()
    await hub.stop()
    await hub.redis.aclose()
    bid_path = app.state.bidding_service.engine.bid_path
    if isinstance(bid_path, RedisMux):
        await bid_path.aclose()
    app.state.feed_hub = app.state.bidding_service = None


# -- bids ---------------------------------------------------------------------------------------------------------


@router.post("/api/v1/auctions/{auctionId}/bid", response_model=BidOut)
async def bid_on_auction(
    auctionId: RowId,  # noqa: N803 - the seed's path
    body: AuctionBidIn,
    user: CurrentUserDep,
    service: ServiceDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Bid on an auction's lot (the lot of `vehicleId` in a multi-lot auction); REJECTED replies say why."""
    lot_id = await service.lot_of_auction(auctionId, body.vehicleId)
    reply = await service.place_bid(
        user, lot_id, body.amount, body.currency, body.kind, idempotency_key, claimed_user_id=body.userId
    )
    return bid_response(lot_id, reply)


@router.post("/api/v1/lots/{lotId}/bids", response_model=BidOut)
async def bid_on_lot(
    lotId: RowId,  # noqa: N803
    body: LotBidIn,
    user: CurrentUserDep,
    service: ServiceDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Bid on a lot; a retry with the same Idempotency-Key gets the original reply."""
    reply = await service.place_bid(user, lotId, body.amount, body.currency, body.kind, idempotency_key)
    return bid_response(lotId, reply)


@router.get("/api/v1/lots/{lotId}", response_model=LotOut)
async def lot_view(lotId: RowId, service: ServiceDep) -> LotOut:  # noqa: N803
    """A lot's public state: price, minimum next bid, bids, leader number, reserve met (never the reserve)."""
    return lot_out(await service.view(lotId))


# -- SSE ----------------------------------------------------------------------------------------------------------

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _sse(request: Request, hub: FeedHub, service: BiddingService, lots: frozenset[int], last: str | None) -> Any:
    async def view(lot_id: int) -> dict[str, Any] | None:
        try:
            return lot_out(await service.view(lot_id)).model_dump(mode="json", exclude={"lotId"})
        except Exception:  # noqa: BLE001 - a lot that cannot be viewed still streams its events
            return None

    stream = event_stream(hub, lots, last, view, request.is_disconnected)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/api/v1/auctions/{auctionId}/stream", response_class=StreamingResponse)
async def auction_stream(
    request: Request,
    auctionId: RowId,  # noqa: N803
    hub: FeedDep,
    service: ServiceDep,
    lastEventId: str | None = None,  # noqa: N803
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Any:
    """SSE of every lot of an auction: snapshot, price, extended, closed; ids `lotId:streamId` resume."""
    lots = frozenset(int(row["id"]) for row in await service.lots_of_auction(auctionId))
    return _sse(request, hub, service, lots, last_event_id or lastEventId)


@router.get("/api/v1/stream", response_class=StreamingResponse)
async def watchlist_stream(
    request: Request,
    hub: FeedDep,
    service: ServiceDep,
    lots: Annotated[str, Query(description="Comma-separated lot ids, e.g. `1,2,3`.")],
    lastEventId: str | None = None,  # noqa: N803
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Any:
    """SSE of a watchlist of lots in one connection."""
    try:
        ids = frozenset(int(part) for part in lots.split(",") if part.strip())
    except ValueError:
        raise InvalidParameter("lots", "comma-separated lot ids, e.g. 1,2,3") from None
    if not ids or len(ids) > MAX_WATCHED_LOTS or min(ids) < 1:
        raise InvalidParameter("lots", f"between 1 and {MAX_WATCHED_LOTS} positive lot ids")
    return _sse(request, hub, service, ids, last_event_id or lastEventId)
