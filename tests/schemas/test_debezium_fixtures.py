"""Every real Debezium event in ../shared/fixtures/debezium must be accepted by the hub's consumers."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from schemas.debezium import Op, is_transaction_boundary, parse_change_value, parse_key
from streams.changes import DealerChange, DealersTruncated, VehicleUpsert, decode_dealer_change, decode_vehicle_change

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "debezium"
VALUE_FIXTURES = sorted(
    p.name for p in FIXTURES.glob("*.json") if not p.name.endswith("_key.json") and "txn_boundary" not in p.name
)


def test_fixture_directory_is_present() -> None:
    assert len(VALUE_FIXTURES) >= 8, f"expected the Debezium fixtures in {FIXTURES}"


@pytest.mark.parametrize("name", VALUE_FIXTURES)
def test_value_fixture_parses(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    event = parse_change_value(raw)
    assert event is not None
    assert event.op in {Op.CREATE, Op.UPDATE, Op.DELETE, Op.TRUNCATE}
    assert event.source.position > 0
    if event.op is Op.TRUNCATE:
        assert event.row is None
    else:
        assert event.row is not None


@pytest.mark.parametrize("name", VALUE_FIXTURES)
def test_value_fixture_parses_without_schema(name: str) -> None:
    """The same event with the JSON converter's schemas.enable=false (payload only)."""
    document = orjson.loads((FIXTURES / name).read_bytes())
    payload_only = orjson.dumps(document["payload"])
    assert parse_change_value(payload_only) == parse_change_value((FIXTURES / name).read_bytes())


@pytest.mark.parametrize("name", ["postgres_key.json", "oracle_key.json"])
def test_key_fixture_parses(name: str) -> None:
    key = parse_key((FIXTURES / name).read_bytes())
    assert key is not None
    assert len(key) == 1


@pytest.mark.parametrize("name", ["postgres_txn_boundary_begin_end.json", "oracle_txn_boundary_begin_end.json"])
def test_transaction_boundaries_are_recognised(name: str) -> None:
    for record in orjson.loads((FIXTURES / name).read_bytes()):
        assert is_transaction_boundary(record)


def test_snapshot_flag_as_string_is_understood() -> None:
    event = parse_change_value((FIXTURES / "oracle_truncate.json").read_bytes())
    assert event is not None
    assert event.source.is_snapshot is False


def test_postgres_fixtures_decode_as_dealer_operations() -> None:
    key = (FIXTURES / "postgres_key.json").read_bytes()
    created = decode_dealer_change(key, (FIXTURES / "postgres_create_with_schema.json").read_bytes())
    assert isinstance(created, DealerChange)
    assert created.dealer_id == 1
    truncated = decode_dealer_change(None, (FIXTURES / "postgres_truncate.json").read_bytes())
    assert truncated == DealersTruncated(46523128)


@pytest.mark.parametrize("name", VALUE_FIXTURES)
def test_every_fixture_decodes_as_vehicle_operation(name: str) -> None:
    assert decode_vehicle_change(None, (FIXTURES / name).read_bytes()) is not None


def test_tombstone_is_ignored() -> None:
    assert parse_change_value(None) is None
    assert decode_vehicle_change(b'{"id": 1}', None) is None


def test_a_snapshot_row_counts_as_older_than_a_change_streamed_at_the_snapshot_position() -> None:
    """The first change after a snapshot can sit exactly at the snapshot's LSN: the row must not hide it."""
    record = orjson.loads((FIXTURES / "postgres_create_with_schema.json").read_bytes())
    payload = record["payload"]
    lsn = int(payload["source"]["lsn"])
    snapshot_row = decode_vehicle_change(None, orjson.dumps({**record, "payload": {**payload, "op": "r"}}))
    streamed = decode_vehicle_change(None, orjson.dumps(record))
    assert isinstance(snapshot_row, VehicleUpsert)
    assert isinstance(streamed, VehicleUpsert)
    assert (snapshot_row.position, streamed.position) == (lsn - 1, lsn)
