"""ERP stock change records -> operations of the inventory directory and the vehicle documents (no Kafka, no engine).

The ERP's change topic (`<prefix>.ERP.STOCK_ITEMS`, Debezium's Oracle envelope) is keyed by VIN, so one VIN's stock
records are read by one consumer, next to the VIN links the vehicle indexer sends (same partitioning). Internal
records travel as small JSON objects, grouped one record per partition and batch, as the dealer fan-out does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from schemas.debezium import InvalidChangeEvent, Op, parse_change_value

T = TypeVar("T")

ERP_SOURCE = "erp.stock"


@dataclass(frozen=True)
class StockChange:
    """A stock record as it is after a change (`record=None`: deleted), at its change-log position."""

    stock_no: str
    vin: str
    record: dict[str, Any] | None
    position: int


@dataclass(frozen=True)
class VinLink:
    """A vehicle document took (`linked`) or left a VIN: the inventory directory keeps VIN -> vehicles."""

    vin: str
    vehicle_id: str
    linked: bool


@dataclass(frozen=True)
class InventoryRefresh:
    """The ERP inventory block to put into one vehicle's document (None: no live stock record for the VIN)."""

    vehicle_id: str
    vin: str
    inventory: dict[str, Any] | None
    position: int


StockOp = StockChange | VinLink


def _upper(row: dict[str, Any]) -> dict[str, Any]:
    """Oracle spells columns in upper case; a stand-in or another connector may not."""
    return {str(name).upper(): value for name, value in row.items()}


def _stock(row: dict[str, Any]) -> tuple[str, str]:
    stock_no, vin = row.get("STOCK_NO"), row.get("VIN")
    if not stock_no or not vin:
        raise InvalidChangeEvent("stock record without STOCK_NO or VIN")
    return str(stock_no).strip(), str(vin).strip().upper()


def decode_stock_change(value: bytes | None) -> list[StockChange]:
    """A stock change record as operations; [] for tombstones, truncates and messages.

    An update that moved a stock record to another VIN (Debezium keyed by VIN sends it to the new VIN only) is
    returned as a delete under the old VIN followed by the record under the new one.
    """
    event = parse_change_value(value)
    if event is None or event.op in (Op.MESSAGE, Op.TRUNCATE):
        return []
    position = event.source.position
    if event.op is Op.READ:
        position -= 1  # a snapshot row counts as older than a change at the snapshot's own position
    before = _upper(event.before) if event.before else None
    after = _upper(event.after) if event.after else None
    if event.op is Op.DELETE:
        if before is None:
            raise InvalidChangeEvent("delete without 'before'")
        stock_no, vin = _stock(before)
        return [StockChange(stock_no, vin, None, position)]
    if after is None:
        raise InvalidChangeEvent(f"op {event.op.value!r} without 'after'")
    stock_no, vin = _stock(after)
    changes = [StockChange(stock_no, vin, after, position)]
    if before is not None and before.get("VIN") and _stock(before) != (stock_no, vin):
        old_stock, old_vin = _stock(before)
        changes.insert(0, StockChange(old_stock, old_vin, None, position))
    return changes


def _decode_batch(value: bytes, field: str, build: Callable[..., T]) -> list[T]:
    try:
        return [build(*row) for row in orjson.loads(value)[field]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidChangeEvent(f"malformed {field.replace('_', ' ')} record: {exc}") from exc


def encode_stock_ops(ops: list[StockOp]) -> bytes:
    """VIN links and moved-away stock records for the inventory directory (one VIN partition per record)."""
    rows: list[list[Any]] = []
    for op in ops:
        if isinstance(op, VinLink):
            rows.append(["link", op.vin, op.vehicle_id, op.linked])
        else:
            rows.append(["stock", op.vin, op.stock_no, op.record, op.position])
    return orjson.dumps({"kind": "erp_vin_ops", "vin_ops": rows})


def decode_stock_ops(value: bytes) -> list[StockOp]:
    def build(kind: str, vin: Any, *rest: Any) -> StockOp:
        if kind == "link":
            return VinLink(str(vin), str(rest[0]), bool(rest[1]))
        if kind == "stock":
            return StockChange(str(rest[0]), str(vin), rest[1], int(rest[2]))
        raise ValueError(f"unknown VIN operation {kind!r}")

    return _decode_batch(value, "vin_ops", build)


def encode_inventory_refreshes(refreshes: list[InventoryRefresh]) -> bytes:
    rows = [[r.vehicle_id, r.vin, r.inventory, r.position] for r in refreshes]
    return orjson.dumps({"kind": "erp_inventory_refreshes", "inventory_refreshes": rows})


def decode_inventory_refreshes(value: bytes) -> list[InventoryRefresh]:
    def build(vehicle_id: Any, vin: Any, inventory: dict[str, Any] | None, position: Any) -> InventoryRefresh:
        return InventoryRefresh(str(vehicle_id), str(vin), inventory, int(position))

    return _decode_batch(value, "inventory_refreshes", build)
