"""Applying operations to a vehicle document: the indexer's business rules, free of Kafka and engines.

Every rule is idempotent and order-safe: an operation carries its source position, and a document
ignores a position it has already passed, so replays and out-of-order deliveries change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.debezium import UNAVAILABLE_VALUE
from schemas.vehicle import DealerSummary, VehicleDocument
from streams.auction_bids import AUCTION_FIELDS, OPEN_AUCTION_STATUSES
from streams.changes import (
    DEALERS_SOURCE,
    VEHICLES_SOURCE,
    DealerLink,
    DealerRefresh,
    VehicleRemoval,
    VehicleUpsert,
)

# Vehicle columns copied as they are into the document.
VEHICLE_COLUMNS = (
    "vin", "make", "model", "trim", "year", "mileage", "condition_grade", "body_type", "fuel",
    "transmission", "drivetrain", "exterior_color", "city", "state", "zip", "lat", "lon", "images",
    "description", "asking_price", "status", "dealer_id",
)  # fmt: skip


@dataclass
class Outcome:
    """The document to write (None: nothing changes) and the dealer links that changed."""

    document: VehicleDocument | None
    links: list[DealerLink] = field(default_factory=list)


# Read-only stand-in for a vehicle not indexed yet (its rules only read it; writes build a new document).
_NEW_DOCUMENT = VehicleDocument(id="")


def _timestamp(value: Any) -> str | None:
    """Debezium timestamps arrive as ISO strings (timestamptz) or epoch microseconds (timestamp)."""
    if value is None or isinstance(value, str):
        return value
    return datetime.fromtimestamp(int(value) / 1_000_000, tz=UTC).isoformat()


def _vehicle_fields(row: dict[str, Any]) -> dict[str, Any]:
    fields = {column: row[column] for column in VEHICLE_COLUMNS if column in row and row[column] != UNAVAILABLE_VALUE}
    for column, target in (("created_at", "listed_at"), ("updated_at", "updated_at")):
        if column in row and row[column] != UNAVAILABLE_VALUE:
            fields[target] = _timestamp(row[column])
    if fields.get("state"):
        fields["state"] = str(fields["state"]).strip()
    if "images" in fields and fields["images"] is None:
        fields["images"] = []
    return fields


def apply_vehicle_upsert(
    current: VehicleDocument | None, change: VehicleUpsert, known_dealer: DealerRefresh | None = None
) -> Outcome:
    """`known_dealer`: a profile of the row's dealer seen earlier, to fill a new dealer block at once."""
    document = current or _NEW_DOCUMENT
    if not document.is_newer(VEHICLES_SOURCE, change.position):
        return Outcome(None, _replayed_link(document, change.vehicle_id, change.position))
    fields = _vehicle_fields(change.row)
    deleted_at = change.row.get("deleted_at")
    soft_deleted = deleted_at not in (None, UNAVAILABLE_VALUE)
    positions = {**document.positions, VEHICLES_SOURCE: change.position}
    links: list[DealerLink] = []
    new_dealer = fields.get("dealer_id", document.dealer_id)
    dealer_changed = new_dealer != document.dealer_id or document.deleted
    if dealer_changed:
        # The dealer block now belongs to another dealer: forget the old one and its position.
        fields["dealer"] = None
        positions.pop(DEALERS_SOURCE, None)
        if document.dealer_id is not None and not document.deleted:
            links.append(DealerLink(document.dealer_id, change.vehicle_id, linked=False))
    if new_dealer is not None and dealer_changed and not soft_deleted:
        known_position = None
        if known_dealer is not None and known_dealer.dealer_id == new_dealer and known_dealer.summary:
            fields["dealer"] = known_dealer.summary
            positions[DEALERS_SOURCE] = known_position = known_dealer.position
        links.append(DealerLink(int(new_dealer), change.vehicle_id, linked=True, known_position=known_position))
    if soft_deleted and not document.deleted and document.dealer_id is not None and not dealer_changed:
        links.append(DealerLink(document.dealer_id, change.vehicle_id, linked=False))
    if document.auction_status in OPEN_AUCTION_STATUSES and fields.get("status", document.status) != "in_auction":
        # Taken out of its auction (lots replaced, auction cancelled): live bidding sends nothing for a lot that no
        # longer exists. A later record of a lot still applies: the auction position is kept.
        fields.update(dict.fromkeys(AUCTION_FIELDS))
    # A new document starts from the model's defaults: no dump of an empty one (a snapshot is all new documents).
    base = {"id": change.vehicle_id} if current is None else current.model_dump()
    updated = VehicleDocument.model_validate(
        {
            **base,
            **fields,
            "positions": positions,
            "version": document.version + 1,
            "deleted": soft_deleted,
        }
    )
    return Outcome(updated, links)


def _replayed_link(document: VehicleDocument, vehicle_id: str, position: int) -> list[DealerLink]:
    """The link of the change that wrote `document`, sent again when that very change is replayed.

    The index write of a change is durable before its dealer link reaches Kafka; a worker killed in
    between leaves the link unsent, and the replay finds the document already at this position. Sending the
    link again is harmless (the directory ignores links it already has) and lets the dealer block arrive.
    """
    if document.positions.get(VEHICLES_SOURCE) != position or document.dealer_id is None:
        return []
    if document.deleted:
        return [DealerLink(document.dealer_id, vehicle_id, linked=False)]
    return [
        DealerLink(document.dealer_id, vehicle_id, linked=True, known_position=document.positions.get(DEALERS_SOURCE))
    ]


def apply_vehicle_removal(current: VehicleDocument | None, removal: VehicleRemoval) -> Outcome:
    document = current or VehicleDocument(id=removal.vehicle_id)
    if not document.is_newer(VEHICLES_SOURCE, removal.position):
        return Outcome(None, _replayed_link(document, removal.vehicle_id, removal.position))
    links = []
    if document.dealer_id is not None and not document.deleted:
        links.append(DealerLink(document.dealer_id, removal.vehicle_id, linked=False))
    tombstone = document.model_copy(
        update={
            "deleted": True,
            "positions": {**document.positions, VEHICLES_SOURCE: removal.position},
            "version": document.version + 1,
        }
    )
    return Outcome(tombstone, links)


def apply_dealer_refresh(current: VehicleDocument | None, refresh: DealerRefresh) -> Outcome:
    if current is None or current.deleted or current.dealer_id != refresh.dealer_id:
        return Outcome(None)  # the vehicle left this dealer, or is gone
    if not current.is_newer(DEALERS_SOURCE, refresh.position):
        return Outcome(None)
    dealer = DealerSummary.model_validate(refresh.summary) if refresh.summary else None
    updated = current.model_copy(
        update={
            "dealer": dealer,
            "positions": {**current.positions, DEALERS_SOURCE: refresh.position},
            "version": current.version + 1,
        }
    )
    return Outcome(updated)


# What sources other than the marketplace's vehicles and dealers tables put into a document: live bidding,
# moderated Q&A and ERP inventory (with their positions). A rebuild from PostgreSQL keeps them.
OTHER_SOURCE_FIELDS = (
    "currentBid",
    "auction_id",
    "auction_status",
    "auction_starts_at",
    "auction_ends_at",
    "bid_count",
    "questions",
    "qna",
    "inventory",
)
REBUILT_SOURCES = (VEHICLES_SOURCE, DEALERS_SOURCE)


def carry_other_sources(rebuilt: VehicleDocument, current: VehicleDocument | None) -> VehicleDocument:
    """`rebuilt` (from a snapshot of vehicles and dealers) with what the other sources had put into `current`."""
    if current is None:
        return rebuilt
    carried = {name: getattr(current, name) for name in OTHER_SOURCE_FIELDS}
    positions = {**rebuilt.positions}
    positions.update({source: at for source, at in current.positions.items() if source not in REBUILT_SOURCES})
    return rebuilt.model_copy(update={**carried, "positions": positions})
