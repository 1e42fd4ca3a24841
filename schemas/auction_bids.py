"""The `auction.bids` Kafka record: one per accepted bid, retraction, close and seller decision of a lot.

Key: the vehicle's key exactly as the change topics write it (`{"id": N}`), so a lot's records land in the
partition of its vehicle's changes and the vehicle indexer reads both in one consumer. Value: JSON, camelCase,
money in cents. The secret maximum of a bid is never in it: only the price the lot settled at.

`position` orders the records of one vehicle across its lots and a lot's life: a later lot (a larger id) wins
over an earlier one, and within a lot bids (by arrival number) come before the close, the close before a counter
offer, a counter offer before the final result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

from schemas.debezium import InvalidChangeEvent

EventType = Literal["bid", "retract", "state", "closed", "result"]
EVENT_TYPES: frozenset[str] = frozenset({"bid", "retract", "state", "closed", "result"})
# Within one lot and arrival number: bid < state (announced, then opened) < closed or withdrawn < countered < result.
PHASES: dict[str, int] = {"bid": 0, "retract": 0, "state": 1, "closed": 3, "countered": 4, "result": 5}
STATE_PHASES: dict[str, int] = {"scheduled": 1, "open": 2, "withdrawn": 3}


@dataclass(frozen=True)
class AuctionBidEvent:
    type: EventType
    lotId: int  # noqa: N815 - wire format
    auctionId: int  # noqa: N815
    vehicleId: int  # noqa: N815
    seq: int  # the lot's arrival number of the last bid this record reflects
    phase: int
    priceCents: int | None  # noqa: N815 - the lot's current price; None while no bid stands
    bidCount: int  # noqa: N815
    endsAtMs: int  # noqa: N815 - after soft-close extensions
    lotStatus: str  # noqa: N815 - scheduled | open | if_bid | countered | sold | unsold | withdrawn
    atMs: int  # noqa: N815 - when the engine accepted the bid or closed the lot, or when the decision was made
    bidId: str | None = None  # noqa: N815
    userId: int | None = None  # noqa: N815 - the bidder (bid, retract) or the buyer (sold)
    outcome: str | None = None  # the engine's outcome at the close: sold | if_bid | no_bids
    startsAtMs: int | None = None  # noqa: N815 - the lot's start, in state records (bids and closes leave it out)

    @property
    def position(self) -> int:
        return (self.lotId << 32) | (self.seq << 3) | self.phase


def encode_event(event: AuctionBidEvent) -> bytes:
    return orjson.dumps(asdict(event))


def decode_event(value: bytes | None) -> AuctionBidEvent:
    """Parse one record's value; a malformed one raises `InvalidChangeEvent` (the worker dead-letters it)."""
    if not value:
        raise InvalidChangeEvent("an auction.bids record needs a value")
    try:
        data: Any = orjson.loads(value)
        if not isinstance(data, dict) or data.get("type") not in EVENT_TYPES:
            raise InvalidChangeEvent(f"not an auction.bids event: {str(data)[:200]}")
        return AuctionBidEvent(
            type=data["type"],
            lotId=int(data["lotId"]),
            auctionId=int(data["auctionId"]),
            vehicleId=int(data["vehicleId"]),
            seq=int(data["seq"]),
            phase=int(data["phase"]),
            priceCents=None if data.get("priceCents") is None else int(data["priceCents"]),
            bidCount=int(data["bidCount"]),
            endsAtMs=int(data["endsAtMs"]),
            lotStatus=str(data["lotStatus"]),
            atMs=int(data["atMs"]),
            bidId=data.get("bidId"),
            userId=None if data.get("userId") is None else int(data["userId"]),
            outcome=data.get("outcome"),
            startsAtMs=None if data.get("startsAtMs") is None else int(data["startsAtMs"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidChangeEvent):
            raise
        raise InvalidChangeEvent(f"malformed auction.bids event: {exc}") from exc
