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

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any, Generic, TypeVar

from streams.erp_changes import InventoryRefresh, StockChange, StockOp, VinLink
from streams.erp_documents import inventory_fields

T = TypeVar("T")
_DELETED = object()


class BatchWrites(MutableMapping[str, Any], Generic[T]):
    """A table seen through one batch: reads see the batch's own writes, and each key is written to the table
    once, at the end, under the tag (the Faust event) of its last write. A backlog of many changes per VIN costs
    one changelog record per VIN and batch instead of one per change."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table
        self.tag: T | None = None
        self._pending: dict[str, tuple[Any, T | None]] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self._pending:
            value = self._pending[key][0]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.table[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._pending[key] = (value, self.tag)

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError if absent, as a mapping would
        self._pending[key] = (_DELETED, self.tag)

    def __iter__(self) -> Iterator[str]:
        keys = dict.fromkeys(key for key in self.table if key not in self._pending)
        keys.update(dict.fromkeys(key for key, (value, _) in self._pending.items() if value is not _DELETED))
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def writes_by_tag(self) -> list[tuple[T | None, list[tuple[str, Any]]]]:
        """The held writes grouped by tag, in the order of each tag's first write; `None` value: delete."""
        groups: dict[int, tuple[T | None, list[tuple[str, Any]]]] = {}
        for key, (value, tag) in self._pending.items():
            groups.setdefault(id(tag), (tag, []))[1].append((key, None if value is _DELETED else value))
        return list(groups.values())


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
