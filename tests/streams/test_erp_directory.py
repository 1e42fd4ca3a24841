"""The inventory directory's rules, and the batch view the worker applies them through (plain dicts for tables)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.erp_changes import StockChange, VinLink
from streams.erp_directory import InventoryDirectory
from streams.table_writes import BatchWrites

VIN = "1HGCM82633A004352"


def record(location: str, status: str = "IN_STOCK") -> dict[str, Any]:
    return {"STOCK_NO": "S1", "VIN": VIN, "LOCATION": location, "STATUS": status}


def test_a_record_before_its_vehicle_is_kept_and_sent_when_the_vehicle_links() -> None:
    directory = InventoryDirectory({}, {})
    assert directory.apply(StockChange("S1", VIN, record("A-01"), 10)) == []
    [refresh] = directory.apply(VinLink(VIN, "7", linked=True))
    assert (refresh.vehicle_id, refresh.position) == ("7", 10)
    assert refresh.inventory is not None
    assert refresh.inventory["location"] == "A-01"
    assert directory.apply(StockChange("S1", VIN, record("B-02"), 9)) == []  # older: a replay changes nothing


def test_a_change_reaches_every_vehicle_the_index_lists_under_the_vin_and_an_unlink_needs_nothing() -> None:
    directory = InventoryDirectory({}, {VIN: ["7", "12"]})
    refreshes = directory.apply(StockChange("S1", VIN, record("A-01"), 10))
    assert [(r.vehicle_id, r.vin, r.position) for r in refreshes] == [("7", VIN, 10), ("12", VIN, 10)]
    assert directory.apply(VinLink(VIN, "7", linked=False)) == []
    assert directory.apply(StockChange("S2", "OTHERVIN", {**record("B-01"), "VIN": "OTHERVIN"}, 11)) == []


def flush(table: dict[str, Any], key: str, value: Any) -> None:
    """What the worker does with a held write (`streams.table_writes.write_through`, without the changelog)."""
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


def test_batch_writes_read_their_own_writes_and_write_each_key_once_under_its_last_tag() -> None:
    table: dict[str, Any] = {"OTHER": {"kept": True}}
    writes: BatchWrites[str] = BatchWrites(table)
    directory = InventoryDirectory(writes, {VIN: ["7"]})
    positions = []
    for tag, position in (("event-1", 1), ("event-2", 2), ("event-3", 3)):
        writes.tag = tag
        positions += [r.position for r in directory.apply(StockChange("S1", VIN, record(f"L{position}"), position))]
    writes.tag = "event-3"
    assert directory.apply(StockChange("S1", VIN, record("L0"), 2)) == []  # sees the batch's newer write
    assert positions == [1, 2, 3]
    assert VIN not in table  # nothing reaches the table before the flush

    assert [(tag, [key for key, _ in group]) for tag, group in writes.writes_by_tag()] == [("event-3", [VIN])]
    for _, group in writes.writes_by_tag():
        for key, value in group:
            flush(table, key, value)
    assert table[VIN]["S1"]["position"] == 3
    assert table[VIN]["S1"]["record"]["LOCATION"] == "L3"
    assert table["OTHER"] == {"kept": True}


def test_batch_writes_delete() -> None:
    table: dict[str, Any] = {"A": 1, "B": 2}
    writes: BatchWrites[str] = BatchWrites(table)
    writes.tag = "e"
    del writes["A"]
    with pytest.raises(KeyError):
        writes["A"]
    with pytest.raises(KeyError):
        del writes["missing"]
    writes["C"] = 3
    assert sorted(writes) == ["B", "C"]
    assert len(writes) == 2
    for _, group in writes.writes_by_tag():
        for key, value in group:
            flush(table, key, value)
    assert table == {"B": 2, "C": 3}
