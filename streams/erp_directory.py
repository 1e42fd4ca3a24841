"""The inventory directory: ERP stock records per VIN over a Faust table, and the fan-out of a stock change.

An ERP record may arrive before any marketplace vehicle has its VIN (a car in transit is in the ERP for days before
a dealer lists it): it is kept here until a vehicle links to the VIN, which then receives it at once. A stock
change is fanned out to every vehicle of its VIN (a VIN may be listed by more than one dealer). Which vehicles carry
a VIN is the search index's to say (`SearchIndex.live_ids_by("vin", ...)`), looked up once per batch, for the same
reason and with the same argument as the dealer directory (streams/dealers.py): a vehicle's link is sent only
after its document is flushed, so a lookup made after a batch was taken either finds the vehicle or its link
comes later and is answered with the stock stored meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from streams.erp_changes import InventoryRefresh, StockChange, StockOp, VinLink
from streams.erp_documents import inventory_fields


class InventoryDirectory:
    """Pure rules over the stock (a Faust table in the worker, a dict in unit tests) and a batch's lookup.

    `stock`: VIN -> {stock_no: {"record": dict | None, "position": int}} (None: deleted, kept as a tombstone so a
    late replay of an older change cannot bring it back)
    `vehicles`: VIN -> ids of the live vehicles carrying it, as the index answered for this batch's VINs
    """

    def __init__(self, stock: MutableMapping[str, dict[str, Any]], vehicles: Mapping[str, Sequence[str]]) -> None:
        self.stock = stock
        self.vehicles = vehicles

    def inventory_of(self, vin: str) -> tuple[dict[str, Any] | None, int]:
        """The VIN's inventory block (its newest live stock record) and the newest position of any of its records."""
        entries = self.stock.get(vin) or {}
        if not entries:
            return None, -1
        position = max(entry["position"] for entry in entries.values())
        live = [entry for entry in entries.values() if entry["record"] is not None]
        if not live:
            return None, position
        newest = max(live, key=lambda entry: entry["position"])
        return inventory_fields(newest["record"]), position

    def apply(self, op: StockOp) -> list[InventoryRefresh]:
        if isinstance(op, VinLink):
            return self.apply_link(op)
        return self.apply_change(op)

    def apply_change(self, change: StockChange) -> list[InventoryRefresh]:
        """Store the record if newer than what the directory holds; refresh every vehicle of the VIN."""
        entries = dict(self.stock.get(change.vin) or {})
        stored = entries.get(change.stock_no)
        if stored is not None and stored["position"] >= change.position:
            return []
        entries[change.stock_no] = {"record": change.record, "position": change.position}
        self.stock[change.vin] = entries
        inventory, position = self.inventory_of(change.vin)
        return [
            InventoryRefresh(vehicle_id, change.vin, inventory, position)
            for vehicle_id in self.vehicles.get(change.vin, [])
        ]

    def apply_link(self, link: VinLink) -> list[InventoryRefresh]:
        """A vehicle that took the VIN gets its inventory; one that left it needs nothing (lookups stop finding it,
        and the indexer already dropped the inventory from its document)."""
        if not link.linked:
            return []
        inventory, position = self.inventory_of(link.vin)
        if position < 0:
            return []  # no stock record yet: the first one fans out when it arrives
        return [InventoryRefresh(link.vehicle_id, link.vin, inventory, position)]
