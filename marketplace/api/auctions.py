"""/api/v1/auctions: dealers schedule auctions of their cars; everyone signed in reads them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from marketplace.accounts import CurrentUser
from marketplace.api.deps import CurrentUserDep, PoolDep, require_roles
from marketplace.api.envelope import Page, paginated, success
from marketplace.auctions import AuctionDraft, Auctions, AuctionView, LotDraft

router = APIRouter(prefix="/api/v1/auctions", tags=["auctions"])


def get_auctions(pool: PoolDep, request: Request) -> Auctions:
    # Live bidding (when the app runs it) follows every committed change of an auction.
    return Auctions(pool, getattr(request.app.state, "auction_observer", None))


AuctionsDep = Annotated[Auctions, Depends(get_auctions)]
DealerOrAdminDep = Annotated[CurrentUser, Depends(require_roles("dealer", "admin"))]
AuctionId = Annotated[int, Path(ge=1, le=2**62)]
RowId = Annotated[int, Field(ge=1, le=2**62)]
Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refusing it here keeps it a 422 instead of a database error.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_no_nul)]
Description = Annotated[str, StringConstraints(max_length=5000), AfterValidator(_no_nul)]
AuctionStatus = Literal["upcoming", "live", "closed", "cancelled"]

# -- requests ---------------------------------------------------------------------------------------


class LotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vehicle_id: RowId
    starting_price: Money
    reserve_price: Money | None = None
    buy_now_price: Money | None = Field(default=None, description="Optional; above the starting price.")
    bid_increments: list[tuple[Money, Money]] = Field(
        default_factory=lambda: [(Decimal(0), Decimal(100))],
        min_length=1,
        max_length=50,
        description="[[from_price, increment], ...]: from_price ascending, increments positive.",
    )

    def draft(self) -> LotDraft:
        return LotDraft(
            self.vehicle_id,
            self.starting_price,
            self.reserve_price,
            self.buy_now_price,
            tuple((start, step) for start, step in self.bid_increments),
        )


class AuctionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None
    starts_at: AwareDatetime = Field(description="In the future, with a UTC offset.")
    ends_at: AwareDatetime = Field(description="After starts_at.")
    lots: list[LotIn] = Field(min_length=1, max_length=100)
    dealer_id: RowId | None = Field(default=None, description="Admins only: the dealership the auction is for.")


class AuctionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    lots: list[LotIn] | None = Field(default=None, min_length=1, max_length=100, description="Replaces every lot.")


# -- responses --------------------------------------------------------------------------------------


class LotOut(BaseModel):
    id: int
    lot_number: int
    vehicle_id: int
    starting_price: float
    reserve_price: float | None = Field(description="Shown to the auction's dealer and admins only.")
    has_reserve: bool
    buy_now_price: float | None
    min_increment: float
    bid_increments: list[tuple[float, float]]
    current_bid: float | None
    status: Literal["open", "if_bid", "sold", "unsold", "withdrawn"] = Field(
        description="if_bid: closed below the reserve, waiting for the dealer's decision."
    )
    bid_count: int
    ends_at: datetime | None = Field(description="The lot's end: the auction's, or later once a late bid extended it.")


class AuctionSummary(BaseModel):
    id: int
    dealer_id: int
    title: str
    description: str | None
    starts_at: datetime
    ends_at: datetime
    status: AuctionStatus
    created_at: datetime
    updated_at: datetime
    lot_count: int
    total_bids: int


class AuctionDetail(AuctionSummary):
    lots: list[LotOut]


class Pagination(BaseModel):
    page: int
    limit: int
    total: int
    pages: int


class AuctionEnvelope(BaseModel):
    status: Literal["success"]
    data: AuctionDetail
    message: str | None = None


class AuctionListEnvelope(BaseModel):
    status: Literal["success"]
    data: list[AuctionSummary]
    pagination: Pagination


class Participant(BaseModel):
    user_id: int
    email: str | None = Field(description="Shown to the auction's dealer and admins only.")
    bid_count: int
    highest_bid: float
    last_bid_at: datetime


class Participants(BaseModel):
    auction_id: int
    participant_count: int
    total_bids: int
    participants: list[Participant]


class ParticipantsEnvelope(BaseModel):
    status: Literal["success"]
    data: Participants


class BidOut(BaseModel):
    id: int
    lot_id: int
    lot_number: int
    user_id: int
    amount: float
    currency: str
    placed_at: datetime


class BidListEnvelope(BaseModel):
    status: Literal["success"]
    data: list[BidOut]
    pagination: Pagination


class DoneEnvelope(BaseModel):
    status: Literal["success"]
    data: None
    message: str | None = None


def _money(value: Any) -> float | None:
    return None if value is None else float(value)


def auction_body(row: dict[str, Any], lot_count: int, total_bids: int) -> dict[str, Any]:
    return {
        "id": row["id"],
        "dealer_id": row["dealer_id"],
        "title": row["title"],
        "description": row["description"],
        "starts_at": row["starts_at"],
        "ends_at": row["ends_at"],
        "status": row["status"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "lot_count": lot_count,
        "total_bids": total_bids,
    }


def lot_body(lot: dict[str, Any], show_reserve: bool, auction_ends_at: datetime) -> dict[str, Any]:
    return {
        "id": lot["id"],
        "lot_number": lot["lot_number"],
        "vehicle_id": lot["vehicle_id"],
        "starting_price": float(lot["starting_price"]),
        "reserve_price": _money(lot["reserve_price"]) if show_reserve else None,
        "has_reserve": lot["reserve_price"] is not None,
        "buy_now_price": _money(lot["buy_now_price"]),
        "min_increment": float(lot["min_increment"]),
        "bid_increments": [(float(start), float(step)) for start, step in lot["bid_increments"]],
        "current_bid": _money(lot["current_bid"]),
        "status": lot["status"],
        "bid_count": lot["bid_count"],
        "ends_at": max(lot["ends_at"], auction_ends_at) if lot["ends_at"] else auction_ends_at,
    }


def detail_body(view: AuctionView, reader: CurrentUser) -> dict[str, Any]:
    show_reserve = reader.is_admin or view.auction["dealer_owner_id"] == reader.id
    body = auction_body(view.auction, len(view.lots), view.total_bids)
    body["lots"] = [lot_body(lot, show_reserve, view.auction["ends_at"]) for lot in view.lots]
    return body


# -- routes -----------------------------------------------------------------------------------------


@router.get("", response_model=AuctionListEnvelope)
async def list_auctions(
    _: CurrentUserDep,
    auctions: AuctionsDep,
    page: Annotated[Page, Query()],
    status_filter: Annotated[
        Literal["active", "upcoming", "live", "closed", "cancelled"],
        Query(alias="status", description="`active`: upcoming or live (the schedule decides, not only the row)."),
    ] = "active",
    dealer_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> dict[str, Any]:
    """Auctions by status (default: active), optionally of one dealer, soonest first."""
    rows, total = await auctions.find(status_filter, dealer_id, page.limit, page.offset)
    data = [auction_body(row, int(row["lot_count"]), int(row["bid_count"])) for row in rows]
    return paginated(data, page, total)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AuctionEnvelope)
async def create_auction(body: AuctionIn, user: DealerOrAdminDep, auctions: AuctionsDep) -> dict[str, Any]:
    """Schedule an auction of your active cars (one lot per car); the cars become `in_auction`."""
    draft = AuctionDraft(
        title=body.title,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        lots=tuple(lot.draft() for lot in body.lots),
        description=body.description,
        dealer_id=body.dealer_id,
    )
    auction_id = await auctions.create(user, draft)
    return success(detail_body(await auctions.get(auction_id), user), "auction scheduled")


@router.get("/{auction_id}", response_model=AuctionEnvelope)
async def get_auction(auction_id: AuctionId, user: CurrentUserDep, auctions: AuctionsDep) -> dict[str, Any]:
    """One auction with its lots (reserve prices for its dealer and admins only)."""
    return success(detail_body(await auctions.get(auction_id), user))


@router.patch("/{auction_id}", response_model=AuctionEnvelope)
async def update_auction(
    auction_id: AuctionId, body: AuctionPatch, user: DealerOrAdminDep, auctions: AuctionsDep
) -> dict[str, Any]:
    """Change a scheduled auction (not yet started): title, description, schedule, or replace its lots."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True, exclude={"lots"})
    lots = None if body.lots is None else tuple(lot.draft() for lot in body.lots)
    await auctions.update(user, auction_id, changes, lots)
    return success(detail_body(await auctions.get(auction_id), user))


@router.delete("/{auction_id}", response_model=DoneEnvelope)
async def delete_auction(auction_id: AuctionId, user: DealerOrAdminDep, auctions: AuctionsDep) -> dict[str, Any]:
    """Delete an auction without bids; its cars become `active` again."""
    await auctions.delete(user, auction_id)
    return success(None, "auction deleted")


@router.post("/{auction_id}/cancel", response_model=AuctionEnvelope)
async def cancel_auction(auction_id: AuctionId, user: DealerOrAdminDep, auctions: AuctionsDep) -> dict[str, Any]:
    """Cancel an upcoming or live auction: open lots are withdrawn, their cars become `active` again."""
    await auctions.cancel(user, auction_id)
    return success(detail_body(await auctions.get(auction_id), user), "auction cancelled")


@router.get("/{auction_id}/participants", response_model=ParticipantsEnvelope)
async def auction_participants(auction_id: AuctionId, user: CurrentUserDep, auctions: AuctionsDep) -> dict[str, Any]:
    """Distinct bidders with their bid counts, and the total bids (emails for its dealer and admins only)."""
    bidders, total_bids, with_email = await auctions.participants(user, auction_id)
    people = [
        {
            "user_id": row["user_id"],
            "email": row["email"] if with_email and row["deleted_at"] is None else None,
            "bid_count": row["bid_count"],
            "highest_bid": float(row["highest_bid"]),
            "last_bid_at": row["last_bid_at"],
        }
        for row in bidders
    ]
    data = {
        "auction_id": auction_id,
        "participant_count": len(people),
        "total_bids": total_bids,
        "participants": people,
    }
    return success(data)


@router.get("/{auction_id}/bids", response_model=BidListEnvelope)
async def auction_bids(
    auction_id: AuctionId, _: CurrentUserDep, auctions: AuctionsDep, page: Annotated[Page, Query()]
) -> dict[str, Any]:
    """The auction's bids, newest first (bidders by id only)."""
    rows, total = await auctions.bids(auction_id, page.limit, page.offset)
    data = [{**row, "amount": float(row["amount"]), "currency": str(row["currency"])} for row in rows]
    return paginated(data, page, total)
