"""The bidding service's vocabulary: a lot's rules, a bid's reply, what buyers may see of a lot.

Money is integer cents everywhere inside the engine (Redis scripts have no decimals); times are Unix milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

TiePolicy = Literal["earliest_max", "live_beats_proxy"]
BidKind = Literal["max", "live"]


class LotStatus(StrEnum):
    SCHEDULED = "scheduled"  # pre-bidding: maxes may be placed, raised, lowered or retracted
    OPEN = "open"
    CLOSED = "closed"


class Rejection(StrEnum):
    TOO_LOW = "too_low"  # below the minimum next bid (the reply carries it)
    NOT_STARTED = "not_started"
    CLOSED = "closed"
    CURRENCY = "currency"
    OWN_LOT = "own_lot"
    LOWER_MAX = "lower_max"  # lowering a max once bidding is open, or below the current price
    RATE_LIMITED = "rate_limited"
    UNKNOWN_LOT = "unknown_lot"


@dataclass(frozen=True)
class LotRules:
    """Everything the engine needs to decide bids on one lot, loaded from PostgreSQL when the lot is armed."""

    lot_id: int
    auction_id: int
    seller_user_id: int
    currency: str
    starting_price: int
    increments: tuple[tuple[int, int], ...]  # ((from_price, increment), ...) ascending price bands
    starts_at_ms: int
    ends_at_ms: int
    reserve_price: int | None = None  # never leaves the server
    buy_now_price: int | None = None
    soft_close_s: int = 120  # a bid in the last N seconds extends the end to now + N
    soft_close_cap_s: int = 1800  # extensions never push the end more than this past the scheduled end
    tie_policy: TiePolicy = "earliest_max"


@dataclass(frozen=True)
class BidReply:
    status: Literal["ACCEPTED", "REJECTED"]
    current_price: int
    min_next_bid: int
    bid_count: int
    ends_at_ms: int
    reserve_met: bool
    is_leader: bool = False
    reason: Rejection | None = None
    message: str = ""
    bid_id: str | None = None  # unique per accepted bid; PostgreSQL persistence is idempotent by it
    event_id: str | None = None  # the Redis stream id of the price event this bid produced
    ended_by_buy_now: bool = False


@dataclass(frozen=True)
class LotView:
    """What any buyer may see of a lot (no reserve price, no maxes, the leader only as a bidder number)."""

    lot_id: int
    status: LotStatus
    current_price: int
    min_next_bid: int
    bid_count: int
    leader_number: int | None
    reserve_met: bool
    has_reserve: bool
    ends_at_ms: int
    currency: str
    buy_now_price: int | None = None


@dataclass(frozen=True)
class LotResult:
    """A closed lot: sold to the leader at the settled price, or below reserve (the seller decides: "if bid")."""

    lot_id: int
    outcome: Literal["sold", "if_bid", "no_bids"]
    price: int
    winner_user_id: int | None
    bid_count: int
    closed_at_ms: int
    events: list[str] = field(default_factory=list)
