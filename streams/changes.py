"""Change records -> operations on vehicle documents and dealer profiles (no Kafka, no engine)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from schemas.debezium import ChangeEvent, InvalidChangeEvent, Op, parse_change_value, parse_key
from streams.auction_bids import AuctionUpdate
from streams.erp_changes import InventoryRefresh
from streams.questions import QnaUpdate

T = TypeVar("T")

VEHICLES_SOURCE = "pg.vehicles"
DEALERS_SOURCE = "pg.dealers"

DEALER_SUMMARY_COLUMNS = ("id", "name", "rating", "city", "state", "lat", "lon")


@dataclass(frozen=True)
class VehicleUpsert:
    """A vehicle row as it is after an insert, update or snapshot read."""

    vehicle_id: str
    row: dict[str, Any]
    position: int


@dataclass(frozen=True)
class VehicleRemoval:
    vehicle_id: str
    position: int


@dataclass(frozen=True)
class VehiclesTruncated:
    position: int


@dataclass(frozen=True)
class DealerRefresh:
    """The dealer summary to copy into one vehicle's document (fan-out of a dealer change)."""

    vehicle_id: str
    dealer_id: int
    summary: dict[str, Any] | None
    position: int


VehicleOp = (
    VehicleUpsert | VehicleRemoval | VehiclesTruncated | DealerRefresh | InventoryRefresh | AuctionUpdate | QnaUpdate
)


@dataclass(frozen=True)
class DealerChange:
    dealer_id: int
    summary: dict[str, Any] | None  # None: the dealer was deleted
    position: int


@dataclass(frozen=True)
class DealersTruncated:
    position: int


@dataclass(frozen=True)
class DealerLink:
    """A vehicle joined (`linked`) or left a dealer's inventory, as seen by the vehicle indexer.

    `known_position`: the position of the dealer profile the vehicle's document already holds, if any;
    the dealer directory answers with a refresh only when it knows a different one.
    """

    dealer_id: int
    vehicle_id: str
    linked: bool
    known_position: int | None = None


DealerOp = DealerChange | DealersTruncated | DealerLink


def _id_column(columns: dict[str, Any]) -> Any:
    """The `id` column; Oracle spells column names in upper case."""
    for name in ("id", "ID"):
        if name in columns:
            return columns[name]
    if len(columns) == 1:
        return next(iter(columns.values()))
    raise InvalidChangeEvent(f"no 'id' column among {sorted(columns)}")


def _primary_key(key: bytes | None, event: ChangeEvent) -> Any:
    columns = parse_key(key)
    if columns:
        return _id_column(columns)
    if event.row is None:
        raise InvalidChangeEvent("change event has neither a key nor a row")
    return _id_column(event.row)


def _decode(key: bytes | None, value: bytes | None) -> tuple[Op, Any, dict[str, Any] | None, int] | None:
    """(op, primary key, after, position) of a change record; None for tombstones and messages."""
    event = parse_change_value(value)
    if event is None or event.op is Op.MESSAGE:
        return None
    position = event.source.position
    if event.op is Op.READ:
        # A snapshot row carries the snapshot's position S, and the first change streamed after the snapshot
        # can sit exactly at S: the row must count as older than it (Debezium's snapshots do the same).
        position -= 1
    if event.op is Op.TRUNCATE:
        return Op.TRUNCATE, None, None, position
    row_id = _primary_key(key, event)
    if event.op is not Op.DELETE and event.after is None:
        raise InvalidChangeEvent(f"op {event.op.value!r} without 'after'")
    return event.op, row_id, event.after, position


def decode_vehicle_change(key: bytes | None, value: bytes | None) -> VehicleOp | None:
    """A vehicles change-topic record as an operation; None for tombstones and ignorable records."""
    decoded = _decode(key, value)
    if decoded is None:
        return None
    op, row_id, after, position = decoded
    if op is Op.TRUNCATE:
        return VehiclesTruncated(position)
    if op is Op.DELETE or after is None:
        return VehicleRemoval(str(row_id), position)
    return VehicleUpsert(str(row_id), after, position)


def decode_dealer_change(key: bytes | None, value: bytes | None) -> DealerOp | None:
    """A dealers change-topic record as an operation; None for tombstones and ignorable records."""
    decoded = _decode(key, value)
    if decoded is None:
        return None
    op, row_id, after, position = decoded
    if op is Op.TRUNCATE:
        return DealersTruncated(position)
    if op is Op.DELETE or after is None:
        return DealerChange(int(row_id), None, position)
    summary = {column: after.get(column) for column in DEALER_SUMMARY_COLUMNS}
    summary["id"] = int(row_id)
    return DealerChange(int(row_id), summary, position)


# Internal topics carry batches of these operations as small JSON objects, one record per partition
# and batch: every operation in a record belongs to a key of that record's partition.


def _decode_batch(value: bytes, field: str, build: Callable[..., T]) -> list[T]:
    """The operations of one internal record: `build(*row)` for each row under `field`."""
    try:
        return [build(*row) for row in orjson.loads(value)[field]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidChangeEvent(f"malformed {field.replace('_', ' ')} record: {exc}") from exc


def encode_dealer_refreshes(refreshes: list[DealerRefresh]) -> bytes:
    rows = [[r.vehicle_id, r.dealer_id, r.summary, r.position] for r in refreshes]
    return orjson.dumps({"kind": "dealer_refreshes", "refreshes": rows})


def decode_dealer_refreshes(value: bytes) -> list[DealerRefresh]:
    def build(vehicle_id: Any, dealer_id: Any, summary: dict[str, Any] | None, position: Any) -> DealerRefresh:
        return DealerRefresh(str(vehicle_id), int(dealer_id), summary, int(position))

    return _decode_batch(value, "refreshes", build)


def encode_dealer_links(links: list[DealerLink]) -> bytes:
    rows = [[link.dealer_id, link.vehicle_id, link.linked, link.known_position] for link in links]
    return orjson.dumps({"kind": "dealer_links", "links": rows})


def decode_dealer_links(value: bytes) -> list[DealerLink]:
    def build(dealer_id: Any, vehicle_id: Any, linked: Any, known: Any) -> DealerLink:
        return DealerLink(int(dealer_id), str(vehicle_id), bool(linked), None if known is None else int(known))

    return _decode_batch(value, "links", build)
