"""ERP inventory in the vehicle document: the block buyers see, availability, and which VIN a document follows.

ERP status drives availability: a car the ERP has `SOLD` or `ON_HOLD` leaves search (the document stays readable
with `inventory.available = false`). The dealer's cost never leaves the ERP.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.search.fields import vin_key
from schemas.vehicle import VehicleDocument
from streams.changes import VEHICLES_SOURCE, VehicleRemoval, VehicleUpsert
from streams.documents import Outcome
from streams.erp_changes import ERP_SOURCE, InventoryRefresh, VinLink

# ERP statuses under which a car cannot be sold on the marketplace.
UNAVAILABLE_STATUSES = frozenset({"sold", "on_hold"})


def _date(value: Any) -> str | None:
    """Debezium dates: epoch ms (io.debezium.time.Timestamp, Oracle DATE), epoch days (io.debezium.time.Date), ISO."""
    if value is None or isinstance(value, str):
        return value[:10] if isinstance(value, str) else None
    number = int(value)
    seconds = number * 86_400 if abs(number) < 1_000_000 else number / 1000
    return datetime.fromtimestamp(seconds, tz=UTC).date().isoformat()


def inventory_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The document's `inventory` block from an ERP stock record (upper-case Oracle column names)."""
    status = str(record.get("STATUS") or "").strip().lower() or None
    keys = record.get("KEYS_COUNT")
    return {
        "stock_number": record.get("STOCK_NO"),
        "status": status,
        "available": status not in UNAVAILABLE_STATUSES,
        "yard": record.get("YARD"),
        "location": record.get("LOCATION"),
        "title_status": (str(record["TITLE_STATUS"]).lower() if record.get("TITLE_STATUS") else None),
        "keys": None if keys is None else int(keys),
        "arrival_date": _date(record.get("ARRIVAL_DATE")),
    }


def apply_inventory_refresh(current: VehicleDocument | None, refresh: InventoryRefresh) -> VehicleDocument | None:
    """The document with the VIN's inventory, or None when nothing changes (gone, other VIN, not newer)."""
    if current is None or _vin(current) != refresh.vin:
        return None
    if not current.is_newer(ERP_SOURCE, refresh.position):
        return None
    return current.model_copy(
        update={
            "inventory": refresh.inventory,
            "positions": {**current.positions, ERP_SOURCE: refresh.position},
            "version": current.version + 1,
        }
    )


def _vin(document: VehicleDocument | None) -> str | None:
    if document is None or document.deleted:
        return None
    return vin_key(document.vin)


def follow_vin(
    before: VehicleDocument | None, after: VehicleDocument | None, replayed: VehicleDocument | None = None
) -> tuple[VehicleDocument | None, list[VinLink]]:
    """The VIN links a vehicle change causes, and the document without the inventory of a VIN it left.

    `after` is None when the change was not applied; `replayed` is then the stored document if the change was
    exactly the one that wrote it (a replay after a crash between index write and link): its link is sent again,
    which the directory takes as a no-op or answers with the inventory.
    """
    if after is None:
        vin = _vin(replayed)
        return None, [VinLink(vin, replayed.id, linked=True)] if replayed is not None and vin else []
    old_vin, new_vin = _vin(before), _vin(after)
    if old_vin == new_vin:
        return after, []
    links = []
    if old_vin:
        links.append(VinLink(old_vin, after.id, linked=False))
    if new_vin:
        links.append(VinLink(new_vin, after.id, linked=True))
    if after.inventory is None and ERP_SOURCE not in after.positions:
        return after, links  # nothing of another VIN to forget (a new vehicle, as in every snapshot record)
    positions = {source: position for source, position in after.positions.items() if source != ERP_SOURCE}
    return after.model_copy(update={"inventory": None, "positions": positions}), links


def follow_vehicle_vin(
    before: VehicleDocument | None, op: VehicleUpsert | VehicleRemoval, outcome: Outcome, links: list[VinLink]
) -> Outcome:
    """The indexer's hook after a vehicle change: adds the VIN links it causes to `links`, adjusts the document."""
    replayed = None
    if outcome.document is None and before is not None and before.positions.get(VEHICLES_SOURCE) == op.position:
        replayed = before
    document, vin_links = follow_vin(before, outcome.document, replayed)
    links.extend(vin_links)
    if document is not None:
        outcome.document = document
    return outcome
