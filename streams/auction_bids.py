"""Live bidding in the vehicle document: `auction.bids` records -> currentBid, bid count, auction status and end.

Records are keyed like the vehicle change topic, so they arrive in the partition of the vehicle's changes and the
vehicle agent applies them in its batches (read-modify-write, position check, one commit). The position of a
record (schemas.auction_bids) only grows along a vehicle's lots and their lives, so a replayed or late record is
skipped. A record for a vehicle the index has not seen yet makes a stub document (not searchable) that the
vehicle's own change completes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.auction_bids import AuctionBidEvent, decode_event
from schemas.vehicle import VehicleDocument

AUCTION_BIDS_SOURCE = "auction.bids"

# The lot's state as the search API's `auction_status` facet knows it (upcoming | live | closed).
AUCTION_STATUS = {"scheduled": "upcoming", "open": "live"}
OPEN_AUCTION_STATUSES = frozenset(AUCTION_STATUS.values())
AUCTION_FIELDS = ("currentBid", "bid_count", "auction_id", "auction_status", "auction_starts_at", "auction_ends_at")


@dataclass(frozen=True)
class AuctionUpdate:
    vehicle_id: str
    event: AuctionBidEvent

    @property
    def position(self) -> int:
        return self.event.position


def decode_auction_bid(value: bytes | None) -> AuctionUpdate:
    """One `auction.bids` record; a malformed one raises `InvalidChangeEvent` (dead-lettered by the worker)."""
    event = decode_event(value)
    return AuctionUpdate(str(event.vehicleId), event)


def apply_auction_update(current: VehicleDocument | None, update: AuctionUpdate) -> VehicleDocument | None:
    """The document with the lot's price and status, or None when nothing changes (older record, deleted car)."""
    document = current or VehicleDocument(id=update.vehicle_id)
    if document.deleted or not document.is_newer(AUCTION_BIDS_SOURCE, update.position):
        return None
    event = update.event
    if event.lotStatus == "withdrawn":  # its auction was cancelled: the car is in no auction
        return document.model_copy(
            update={
                **dict.fromkeys(AUCTION_FIELDS),
                "positions": {**document.positions, AUCTION_BIDS_SOURCE: update.position},
                "version": document.version + 1,
            }
        )
    return document.model_copy(
        update={
            "currentBid": None if event.priceCents is None else event.priceCents / 100,
            "bid_count": event.bidCount,
            "auction_id": event.auctionId,
            "auction_status": AUCTION_STATUS.get(event.lotStatus, "closed"),
            "auction_starts_at": _iso(event.startsAtMs)
            if event.startsAtMs
            else (document.auction_starts_at if event.auctionId == document.auction_id else None),
            "auction_ends_at": _iso(event.endsAtMs) if event.endsAtMs else None,
            "positions": {**document.positions, AUCTION_BIDS_SOURCE: update.position},
            "version": document.version + 1,
        }
    )


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat()
