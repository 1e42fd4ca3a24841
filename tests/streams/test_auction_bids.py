"""The indexer's live-bidding rule: an auction.bids record sets currentBid, bid count, auction status and end, once,
in position order across a vehicle's lots; malformed records are refused for the dead-letter topic."""

from __future__ import annotations

import pytest

from schemas.auction_bids import PHASES, STATE_PHASES, AuctionBidEvent, encode_event
from schemas.debezium import InvalidChangeEvent
from schemas.vehicle import VehicleDocument
from streams.auction_bids import AUCTION_BIDS_SOURCE, apply_auction_update, decode_auction_bid


def event(lot: int, seq: int, kind: str = "bid", status: str = "open", price: int | None = 150_000) -> bytes:
    phase = PHASES[kind]
    return encode_event(
        AuctionBidEvent(kind, lot, 3, 7, seq, phase, price, seq, 1_800_000_000_000, status, 1_799_999_000_000)  # type: ignore[arg-type]
    )


def test_a_bid_sets_the_auction_fields_and_an_older_one_is_skipped() -> None:
    document = VehicleDocument(id="7", status="in_auction")
    updated = apply_auction_update(document, decode_auction_bid(event(lot=5, seq=2)))
    assert updated is not None
    assert (updated.currentBid, updated.bid_count, updated.auction_id, updated.auction_status) == (1500.0, 2, 3, "live")
    assert updated.auction_ends_at == "2027-01-15T08:00:00+00:00"
    assert updated.version == 1
    assert apply_auction_update(updated, decode_auction_bid(event(lot=5, seq=1))) is None  # late
    assert apply_auction_update(updated, decode_auction_bid(event(lot=5, seq=2))) is None  # replayed
    closed = apply_auction_update(updated, decode_auction_bid(event(lot=5, seq=2, kind="closed", status="sold")))
    assert closed is not None
    assert closed.auction_status == "closed"
    newer_lot = apply_auction_update(closed, decode_auction_bid(event(lot=9, seq=1, status="scheduled", price=None)))
    assert newer_lot is not None
    assert (newer_lot.auction_status, newer_lot.currentBid) == ("upcoming", None)
    assert newer_lot.positions[AUCTION_BIDS_SOURCE] > closed.positions[AUCTION_BIDS_SOURCE]


def test_a_record_before_the_vehicle_makes_a_hidden_stub_and_deleted_cars_stay_deleted() -> None:
    stub = apply_auction_update(None, decode_auction_bid(event(lot=5, seq=1)))
    assert stub is not None
    assert stub.id == "7"
    assert not stub.searchable
    assert apply_auction_update(VehicleDocument(id="7", deleted=True), decode_auction_bid(event(5, 1))) is None


@pytest.mark.parametrize("value", [b"", b"{", b'{"type": "bid"}', b'{"type": "nope", "lotId": 1}'])
def test_malformed_records_are_refused(value: bytes) -> None:
    with pytest.raises(InvalidChangeEvent):
        decode_auction_bid(value)


def state(lot: int, seq: int, status: str, auction: int = 3) -> bytes:
    return encode_event(
        AuctionBidEvent(
            "state", lot, auction, 7, seq, STATE_PHASES[status], None, seq, 1_800_000_000_000, status, 0,
            startsAtMs=1_799_900_000_000,
        )
    )  # fmt: skip


def test_state_records_show_an_upcoming_then_live_lot_and_a_withdrawn_one_leaves_no_auction() -> None:
    document = VehicleDocument(id="7", status="in_auction")
    upcoming = apply_auction_update(document, decode_auction_bid(state(lot=5, seq=0, status="scheduled")))
    assert upcoming is not None
    assert (upcoming.auction_status, upcoming.auction_id, upcoming.currentBid) == ("upcoming", 3, None)
    assert upcoming.auction_ends_at == "2027-01-15T08:00:00+00:00"
    assert upcoming.auction_starts_at == "2027-01-14T04:13:20+00:00"
    bid = apply_auction_update(upcoming, decode_auction_bid(event(lot=5, seq=1, status="scheduled")))
    assert bid is not None
    assert bid.auction_starts_at == upcoming.auction_starts_at  # a bid record says nothing of the start: kept
    live = apply_auction_update(upcoming, decode_auction_bid(state(lot=5, seq=0, status="open")))
    assert live is not None
    assert live.auction_status == "live"
    assert apply_auction_update(live, decode_auction_bid(state(lot=5, seq=0, status="scheduled"))) is None  # late
    withdrawn = apply_auction_update(live, decode_auction_bid(state(lot=5, seq=0, status="withdrawn")))
    assert withdrawn is not None
    assert (withdrawn.auction_status, withdrawn.auction_id, withdrawn.auction_starts_at) == (None, None, None)
    relisted = apply_auction_update(withdrawn, decode_auction_bid(state(lot=6, seq=0, status="scheduled")))
    assert relisted is not None
    assert relisted.auction_status == "upcoming"
    next_auction = AuctionBidEvent("bid", 8, 4, 7, 1, 0, 150_000, 1, 1_800_000_000_000, "open", 0)
    moved_on = apply_auction_update(relisted, decode_auction_bid(encode_event(next_auction)))
    assert moved_on is not None
    assert (moved_on.auction_id, moved_on.auction_starts_at) == (4, None)  # not the start of auction 3
