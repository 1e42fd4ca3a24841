"""The indexer's rules: ordering by source position, tombstones, dealer links and refreshes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas.debezium import UNAVAILABLE_VALUE
from streams.changes import DEALERS_SOURCE, VEHICLES_SOURCE, DealerLink, DealerRefresh, VehicleRemoval, VehicleUpsert
from streams.documents import apply_dealer_refresh, apply_vehicle_removal, apply_vehicle_upsert


def row(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": 7, "dealer_id": 3, "vin": "1HGCM82633A004352", "make": "Honda", "model": "Accord", "trim": "EX",
        "year": 2003, "mileage": 151000, "condition_grade": "3.5", "body_type": "sedan", "fuel": "gasoline",
        "transmission": "automatic", "drivetrain": "fwd", "exterior_color": "Silver", "city": "Austin",
        "state": "TX", "zip": "78701", "lat": 30.27, "lon": -97.74, "images": [], "description": "Clean title",
        "asking_price": "4500.00", "status": "active", "deleted_at": None,
        "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:00:00Z",
    }  # fmt: skip
    return {**base, **overrides}


def test_insert_builds_document_and_links_dealer() -> None:
    outcome = apply_vehicle_upsert(None, VehicleUpsert("7", row(), 100))
    document = outcome.document
    assert document is not None
    assert (document.make, document.model, document.condition_grade, document.asking_price) == (
        "Honda", "Accord", 3.5, 4500.0,
    )  # fmt: skip
    assert document.positions == {VEHICLES_SOURCE: 100}
    assert document.version == 1
    assert document.searchable
    assert outcome.links == [DealerLink(3, "7", linked=True)]


def test_an_update_takes_the_changed_fields_and_keeps_the_other_blocks() -> None:
    first = apply_vehicle_upsert(None, VehicleUpsert("7", row(), 100)).document
    assert first is not None
    refresh = DealerRefresh(
        "7", 3, {"id": 3, "name": "Lone Star Autos", "rating": 4.6, "city": "Austin", "state": "TX"}, 50
    )
    with_dealer = apply_dealer_refresh(first, refresh).document
    assert with_dealer is not None
    assert with_dealer.dealer is not None

    updated = apply_vehicle_upsert(with_dealer, VehicleUpsert("7", row(asking_price="4250.50", state=" TX "), 101))

    document = updated.document
    assert document is not None
    assert (document.asking_price, document.state, document.version) == (4250.5, "TX", with_dealer.version + 1)
    assert document.dealer == with_dealer.dealer
    assert document.positions == {**with_dealer.positions, VEHICLES_SOURCE: 101}
    assert document == type(document).model_validate(document.model_dump())


def test_a_car_taken_out_of_an_upcoming_or_live_auction_loses_its_auction_fields() -> None:
    in_auction = apply_vehicle_upsert(None, VehicleUpsert("7", row(status="in_auction"), 100)).document
    assert in_auction is not None
    announced = in_auction.model_copy(
        update={"auction_id": 4, "auction_status": "upcoming", "auction_ends_at": "2027-01-15T08:00:00+00:00",
                "bid_count": 0, "positions": {**in_auction.positions, "auction.bids": 9}}
    )  # fmt: skip
    still = apply_vehicle_upsert(announced, VehicleUpsert("7", row(status="in_auction", mileage=151_010), 101))
    assert still.document is not None
    assert (still.document.auction_status, still.document.auction_id) == ("upcoming", 4)
    removed = apply_vehicle_upsert(announced, VehicleUpsert("7", row(status="active"), 102)).document
    assert removed is not None
    assert (removed.auction_status, removed.auction_id, removed.auction_ends_at) == (None, None, None)
    assert removed.positions["auction.bids"] == 9
    closed = announced.model_copy(update={"auction_status": "closed", "currentBid": 5000.0})
    unsold = apply_vehicle_upsert(closed, VehicleUpsert("7", row(status="active"), 102)).document
    assert unsold is not None
    assert (unsold.auction_status, unsold.currentBid) == ("closed", 5000.0)  # a past auction stays on record


def test_older_or_replayed_change_is_ignored() -> None:
    document = apply_vehicle_upsert(None, VehicleUpsert("7", row(mileage=2), 200)).document
    assert apply_vehicle_upsert(document, VehicleUpsert("7", row(mileage=1), 150)).document is None
    assert apply_vehicle_upsert(document, VehicleUpsert("7", row(mileage=2), 200)).document is None


def test_replay_of_the_change_that_wrote_the_document_sends_its_link_again() -> None:
    """A worker killed after the index write but before its dealer link reached Kafka must not strand the
    vehicle without a dealer: the replay re-sends the link (older changes stay silent)."""
    document = apply_vehicle_upsert(None, VehicleUpsert("7", row(), 200)).document
    assert document is not None
    replay = apply_vehicle_upsert(document, VehicleUpsert("7", row(), 200))
    assert replay.document is None
    assert replay.links == [DealerLink(3, "7", linked=True, known_position=None)]
    assert apply_vehicle_upsert(document, VehicleUpsert("7", row(), 150)).links == []

    tombstone = apply_vehicle_removal(document, VehicleRemoval("7", 300)).document
    assert tombstone is not None
    assert apply_vehicle_removal(tombstone, VehicleRemoval("7", 300)).links == [DealerLink(3, "7", linked=False)]


def test_unchanged_toast_value_keeps_stored_value() -> None:
    document = apply_vehicle_upsert(None, VehicleUpsert("7", row(description="long text"), 1)).document
    updated = apply_vehicle_upsert(document, VehicleUpsert("7", row(description=UNAVAILABLE_VALUE, mileage=9), 2))
    assert updated.document is not None
    assert updated.document.description == "long text"
    assert updated.document.mileage == 9


def test_delete_leaves_tombstone_that_blocks_late_replays() -> None:
    document = apply_vehicle_upsert(None, VehicleUpsert("7", row(), 10)).document
    removal = apply_vehicle_removal(document, VehicleRemoval("7", 20))
    assert removal.document is not None
    assert removal.document.deleted
    assert removal.links == [DealerLink(3, "7", linked=False)]
    assert apply_vehicle_upsert(removal.document, VehicleUpsert("7", row(), 15)).document is None


def test_sold_and_soft_deleted_vehicles_leave_search() -> None:
    sold = apply_vehicle_upsert(None, VehicleUpsert("7", row(status="sold"), 1)).document
    assert sold is not None
    assert not sold.searchable
    assert not sold.deleted
    soft = apply_vehicle_upsert(sold, VehicleUpsert("7", row(deleted_at="2026-11-02T00:00:00Z"), 2))
    assert soft.document is not None
    assert soft.document.deleted
    assert soft.links == [DealerLink(3, "7", linked=False)]


def test_dealer_change_relinks_and_forgets_old_dealer_block() -> None:
    document = apply_vehicle_upsert(None, VehicleUpsert("7", row(), 1)).document
    refreshed = apply_dealer_refresh(document, DealerRefresh("7", 3, {"id": 3, "name": "Old Motors"}, 50)).document
    assert refreshed is not None
    assert refreshed.dealer is not None
    moved = apply_vehicle_upsert(refreshed, VehicleUpsert("7", row(dealer_id=4), 60))
    assert moved.links == [DealerLink(3, "7", linked=False), DealerLink(4, "7", linked=True)]
    assert moved.document is not None
    assert moved.document.dealer is None
    assert DEALERS_SOURCE not in moved.document.positions
    # A late refresh from the old dealer does not apply; the new dealer's (older LSN) does.
    assert apply_dealer_refresh(moved.document, DealerRefresh("7", 3, {"id": 3, "name": "x"}, 70)).document is None
    new = apply_dealer_refresh(moved.document, DealerRefresh("7", 4, {"id": 4, "name": "New Cars"}, 40)).document
    assert new is not None
    assert new.dealer is not None
    assert new.dealer.name == "New Cars"


def test_refresh_for_missing_or_deleted_vehicle_is_dropped() -> None:
    assert apply_dealer_refresh(None, DealerRefresh("7", 3, {"id": 3}, 1)).document is None


@given(st.permutations(list(range(1, 8))))
def test_any_delivery_order_converges_to_the_newest_change(order: list[int]) -> None:
    document = None
    for position in order:
        outcome = apply_vehicle_upsert(document, VehicleUpsert("7", row(mileage=position * 1000), position))
        document = outcome.document or document
    assert document is not None
    assert document.mileage == 7000
    assert document.positions[VEHICLES_SOURCE] == 7


def test_known_dealer_profile_fills_the_first_write() -> None:
    known = DealerRefresh("other", 3, {"id": 3, "name": "Known Motors"}, 77)
    outcome = apply_vehicle_upsert(None, VehicleUpsert("7", row(), 100), known)
    assert outcome.document is not None
    assert outcome.document.dealer is not None
    assert outcome.document.dealer.name == "Known Motors"
    assert outcome.document.positions[DEALERS_SOURCE] == 77
    assert outcome.links == [DealerLink(3, "7", linked=True, known_position=77)]


def test_known_profile_of_another_dealer_is_not_used() -> None:
    known = DealerRefresh("other", 4, {"id": 4, "name": "Elsewhere"}, 77)
    outcome = apply_vehicle_upsert(None, VehicleUpsert("7", row(), 100), known)
    assert outcome.document is not None
    assert outcome.document.dealer is None
    assert outcome.links == [DealerLink(3, "7", linked=True)]
