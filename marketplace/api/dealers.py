"""/api/v1/dealers: stores, their verification, listings, auctions and statistics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from hub.errors import described_pattern
from marketplace.api.deps import CurrentUserDep, PoolDep
from marketplace.api.envelope import PHONE_PATTERN, Page, paginated, success
from marketplace.dealers import Dealers

router = APIRouter(prefix="/api/v1/dealers", tags=["dealers"])

DealerId = Annotated[int, Path(ge=1, le=2**62)]
Zip = Annotated[
    str,
    Field(
        pattern=described_pattern(r"^[0-9]{5}$", "a 5-digit US ZIP code, e.g. 10001"),
        description="5-digit US ZIP code; sets city, state and location",
    ),
]
Phone = Annotated[str, Field(pattern=PHONE_PATTERN)]
LICENCE_PATTERN = described_pattern(
    r"^\s*[A-Za-z0-9][A-Za-z0-9\-/ .]*\s*$", "letters and digits, with - / . or spaces after the first"
)
STATE_PATTERN = described_pattern(r"^[A-Za-z]{2}$", "a 2-letter US state, e.g. TX")
Licence = Annotated[str, Field(min_length=3, max_length=40, pattern=LICENCE_PATTERN)]
DealerStatus = Literal["pending", "verified", "suspended"]
CarStatus = Literal["draft", "active", "in_auction", "sold", "withdrawn"]
AuctionStatus = Literal["upcoming", "live", "closed", "cancelled"]


def get_dealers(pool: PoolDep) -> Dealers:
    return Dealers(pool)


DealersDep = Annotated[Dealers, Depends(get_dealers)]


class DealerRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="the store name buyers see")
    address: str = Field(min_length=1, max_length=300, description="street address")
    zip: Zip
    licence_number: Licence
    contact_email: EmailStr
    phone: Phone | None = None


class DealerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    address: str | None = Field(default=None, min_length=1, max_length=300)
    zip: Zip | None = None
    licence_number: Licence | None = None
    contact_email: EmailStr | None = None
    phone: Phone | None = None


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: DealerStatus


def dealer_body(dealer: dict[str, Any]) -> dict[str, Any]:
    """Public fields always; `owner_id`, `licence_number`, `contact_email` when the service left them in."""
    body = {
        "id": dealer["id"],
        "name": dealer["name"],
        "status": dealer["status"],
        "rating": float(dealer["rating"]) if dealer["rating"] is not None else None,
        "phone": dealer["phone"],
        "address": dealer["address"],
        "city": dealer["city"],
        "state": dealer["state"],
        "zip": dealer["zip"],
        "lat": dealer["lat"],
        "lon": dealer["lon"],
        "created_at": dealer["created_at"].isoformat(),
        "updated_at": dealer["updated_at"].isoformat(),
    }
    for private in ("owner_id", "licence_number", "contact_email"):
        if private in dealer:
            body[private] = dealer[private]
    return body


def car_body(car: dict[str, Any]) -> dict[str, Any]:
    return {
        **{name: value for name, value in car.items() if name not in ("created_at", "updated_at")},
        "condition_grade": float(car["condition_grade"]),
        "asking_price": float(car["asking_price"]),
        "created_at": car["created_at"].isoformat(),
        "updated_at": car["updated_at"].isoformat(),
    }


def auction_body(auction: dict[str, Any]) -> dict[str, Any]:
    return {
        **auction,
        "starts_at": auction["starts_at"].isoformat(),
        "ends_at": auction["ends_at"].isoformat(),
        "created_at": auction["created_at"].isoformat(),
    }


@router.post("", status_code=status.HTTP_201_CREATED)
async def register_dealer(body: DealerRegistration, user: CurrentUserDep, dealers: DealersDep) -> dict[str, Any]:
    """Register your store (one per account; it starts `pending` until an admin verifies it)."""
    dealer = await dealers.register(user, body.model_dump())
    return success(
        dealer_body(dealer),
        "store registered, pending verification; your account is now a dealer: "
        "POST /api/v1/auth/refresh for a token that says so",
    )


@router.get("")
async def list_dealers(
    user: CurrentUserDep,
    dealers: DealersDep,
    page: Annotated[Page, Query()],
    status: Annotated[DealerStatus | None, Query()] = None,
    state: Annotated[
        str | None,
        Query(pattern=STATE_PATTERN, description="2-letter US state"),
    ] = None,
) -> dict[str, Any]:
    """Stores, filtered by status and state."""
    rows, total = await dealers.list_dealers(user, page.limit, page.offset, status, state.upper() if state else None)
    return paginated([dealer_body(row) for row in rows], page, total)


@router.get("/me")
async def my_dealer(user: CurrentUserDep, dealers: DealersDep) -> dict[str, Any]:
    """The store the signed-in user owns, with its private fields."""
    return success(dealer_body(await dealers.owned_by(user)))


@router.get("/{dealer_id}")
async def get_dealer(dealer_id: DealerId, user: CurrentUserDep, dealers: DealersDep) -> dict[str, Any]:
    """One store (licence number and contact email for its owner and admins only)."""
    return success(dealer_body(await dealers.get(user, dealer_id)))


@router.patch("/{dealer_id}")
async def update_dealer(
    dealer_id: DealerId, body: DealerUpdate, user: CurrentUserDep, dealers: DealersDep
) -> dict[str, Any]:
    """Change your store (owner or admin); a new licence number needs verification again."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return success(dealer_body(await dealers.update(user, dealer_id, changes)))


@router.patch("/{dealer_id}/status")
async def change_dealer_status(
    dealer_id: DealerId, body: StatusChange, user: CurrentUserDep, dealers: DealersDep
) -> dict[str, Any]:
    """Verify or suspend a store (admins only)."""
    return success(dealer_body(await dealers.set_status(user, dealer_id, body.status)))


@router.get("/{dealer_id}/statistics")
async def dealer_statistics(dealer_id: DealerId, user: CurrentUserDep, dealers: DealersDep) -> dict[str, Any]:
    """Auctions, cars listed and sold, earnings, average sale vs asking price (owner or admin), from the data."""
    return success(await dealers.statistics(user, dealer_id))


@router.get("/{dealer_id}/cars")
async def dealer_cars(
    dealer_id: DealerId,
    user: CurrentUserDep,
    dealers: DealersDep,
    page: Annotated[Page, Query()],
    status: Annotated[CarStatus | None, Query()] = None,
) -> dict[str, Any]:
    """The store's cars: listed ones for everyone, drafts and withdrawn ones too for the owner and admins."""
    rows, total = await dealers.cars(user, dealer_id, page.limit, page.offset, status)
    return paginated([car_body(row) for row in rows], page, total)


@router.get("/{dealer_id}/auctions")
async def dealer_auctions(
    dealer_id: DealerId,
    user: CurrentUserDep,
    dealers: DealersDep,
    page: Annotated[Page, Query()],
    status: Annotated[AuctionStatus | None, Query()] = None,
) -> dict[str, Any]:
    """The store's auctions, newest start first, with their lot counts."""
    rows, total = await dealers.auctions(user, dealer_id, page.limit, page.offset, status)
    return paginated([auction_body(row) for row in rows], page, total)
