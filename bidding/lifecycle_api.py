"""Lot results, the seller's if-bid decision, the high bidder's answer, and a buyer's own notice stream."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from bidding.api import SSE_HEADERS, RowId, ServiceDep, lot_out
from bidding.feed import FeedHub
from bidding.notices import NoticeHub, notice_stream
from bidding.results import LotResults
from hub.errors import Unauthorized
from marketplace.accounts import CurrentUser
from marketplace.api.deps import AccountsDep, CurrentUserDep, oauth2_scheme
from marketplace.api.envelope import Page, paginated, success

router = APIRouter(tags=["bidding"])


class SellerDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["accept", "counter", "decline"] = Field(
        description="`accept` the high bid, `counter` with `amount`, or `decline` (the car goes back on sale)."
    )
    amount: Decimal | None = Field(
        default=None, gt=0, max_digits=12, decimal_places=2, description="Counter-offer in dollars, above the high bid."
    )


class BuyerAnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["accept", "decline"]


def get_results(service: ServiceDep) -> LotResults:
    return LotResults(service.pool, service.redis)


ResultsDep = Annotated[LotResults, Depends(get_results)]


def optional_user(accounts: AccountsDep, token: Annotated[str | None, Depends(oauth2_scheme)]) -> CurrentUser | None:
    return accounts.authenticate(token) if token else None


def stream_user(
    accounts: AccountsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    access_token: Annotated[
        str | None, Query(description="For EventSource, which cannot send headers: the access token.")
    ] = None,
) -> CurrentUser:
    bearer = token or access_token
    if not bearer:
        raise Unauthorized("sign in first: `Authorization: Bearer <access token>` or `?access_token=`")
    return accounts.authenticate(bearer)


@router.get("/api/v1/lots/{lotId}/result")
async def lot_result(
    lotId: RowId,  # noqa: N803
    results: ResultsDep,
    user: Annotated[CurrentUser | None, Depends(optional_user)],
) -> dict[str, Any]:
    """A closed lot's result; the seller, the high bidder and admins also see the high bid and any counter-offer."""
    return success(await results.get(user, lotId))


@router.post("/api/v1/lots/{lotId}/decision")
async def seller_decision(
    lotId: RowId,  # noqa: N803
    body: SellerDecisionIn,
    user: CurrentUserDep,
    results: ResultsDep,
) -> dict[str, Any]:
    """The seller's answer to an if-bid (closed below the reserve): accept, counter or decline."""
    return success(await results.seller_decides(user, lotId, body.action, body.amount))


@router.post("/api/v1/lots/{lotId}/counter-offer")
async def buyer_answer(
    lotId: RowId,  # noqa: N803
    body: BuyerAnswerIn,
    user: CurrentUserDep,
    results: ResultsDep,
) -> dict[str, Any]:
    """The high bidder accepts or declines the seller's counter-offer."""
    return success(await results.buyer_answers(user, lotId, body.action))


def notice_hub(request: Request, service: ServiceDep) -> NoticeHub:
    hub: NoticeHub | None = getattr(request.app.state, "notice_hub", None)
    if hub is None or hub.redis is not service.redis:
        hub = request.app.state.notice_hub = NoticeHub(service.redis)
    return hub


@router.get("/api/v1/me/bids")
async def my_bids(user: CurrentUserDep, service: ServiceDep, page: Annotated[Page, Query()]) -> dict[str, Any]:
    """The lots the signed-in buyer bid on, latest bid first: their highest bid and bid count, the lot now (as
    `GET /lots/{id}` shows it), whether they lead it (or won it), and the result once it closed."""
    lots, total = await service.lots_bid_on(user, page.limit, page.offset)
    items = [
        {
            **lot_out(view).model_dump(mode="json"),
            "auctionId": int(row["auction_id"]),
            "vehicleId": int(row["vehicle_id"]),
            "yourHighestBid": float(row["your_highest"]),
            "yourBids": int(row["your_bids"]),
            "lastBidAt": row["last_bid_at"].isoformat(),
            "youLead": leading,
            "result": row["result_status"],
            "finalPrice": None if row["final_price"] is None else float(row["final_price"]),
        }
        for row, view, leading in lots
    ]
    return paginated(items, page, total)


@router.get("/api/v1/me/bids/stream", response_class=StreamingResponse)
async def my_notices(
    request: Request,
    user: Annotated[CurrentUser, Depends(stream_user)],
    hub: Annotated[NoticeHub, Depends(notice_hub)],
    lastEventId: str | None = None,  # noqa: N803
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Any:
    """SSE of the signed-in buyer's notices: `outbid` (lot, new price), `counter_offer`, `result`."""
    feed: FeedHub = request.app.state.feed_hub
    stream = notice_stream(hub, feed.config, user.id, last_event_id or lastEventId, request.is_disconnected)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
