"""The dealer directory: profiles and the fan-out a profile change produces."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.debezium import InvalidChangeEvent
from streams.changes import (
    DealerChange,
    DealerLink,
    DealerRefresh,
    DealersTruncated,
    decode_dealer_links,
    decode_dealer_refreshes,
    encode_dealer_links,
    encode_dealer_refreshes,
)
from streams.dealers import DealerDirectory


def directory() -> DealerDirectory:
    profiles: dict[str, dict[str, Any]] = {}
    return DealerDirectory(profiles)


def test_change_fans_out_to_every_vehicle_the_index_lists() -> None:
    d = directory()
    vehicle_ids = [str(i) for i in range(1, 100)]
    refreshes = d.apply_change(DealerChange(9, {"id": 9, "name": "Renamed"}, 500), vehicle_ids)
    assert [r.vehicle_id for r in refreshes] == vehicle_ids
    assert {(r.dealer_id, r.position) for r in refreshes} == {(9, 500)}


def test_new_member_gets_the_known_profile_and_an_unlink_needs_nothing() -> None:
    d = directory()
    assert d.apply_link(DealerLink(9, "1", linked=True)) == []  # no profile yet: its change fans out later
    d.apply_change(DealerChange(9, {"id": 9, "name": "Acme"}, 10), [])
    assert d.apply_link(DealerLink(9, "1", linked=True)) == [DealerRefresh("1", 9, {"id": 9, "name": "Acme"}, 10)]
    assert d.apply_link(DealerLink(9, "1", linked=False)) == []


def test_stale_and_duplicate_dealer_changes_do_nothing() -> None:
    d = directory()
    assert len(d.apply_change(DealerChange(9, {"id": 9, "name": "B"}, 20), ["1"])) == 1
    assert d.apply_change(DealerChange(9, {"id": 9, "name": "A"}, 10), ["1"]) == []
    assert d.apply_change(DealerChange(9, {"id": 9, "name": "B"}, 20), ["1"]) == []
    assert d.profiles["9"]["summary"]["name"] == "B"


def test_truncate_forgets_older_profiles() -> None:
    d = directory()
    d.apply_change(DealerChange(1, {"id": 1}, 10), [])
    d.apply_change(DealerChange(2, {"id": 2}, 30), [])
    d.apply_truncate(DealersTruncated(20))
    assert set(d.profiles) == {"2"}


def test_link_with_the_current_profile_needs_no_refresh() -> None:
    d = directory()
    d.apply_change(DealerChange(9, {"id": 9, "name": "Acme"}, 10), [])
    assert d.apply_link(DealerLink(9, "1", linked=True, known_position=10)) == []
    stale = d.apply_link(DealerLink(9, "2", linked=True, known_position=5))
    assert stale == [DealerRefresh("2", 9, {"id": 9, "name": "Acme"}, 10)]


def test_internal_records_round_trip_and_reject_malformed_ones() -> None:
    links = [DealerLink(9, "1", linked=True, known_position=5), DealerLink(9, "2", linked=False)]
    refreshes = [DealerRefresh("1", 9, {"id": 9, "name": "Acme"}, 10), DealerRefresh("2", 9, None, 11)]
    assert decode_dealer_links(encode_dealer_links(links)) == links
    assert decode_dealer_refreshes(encode_dealer_refreshes(refreshes)) == refreshes
    for bad in (b"not json", b'{"links": [[1, 2]]}', b'{"other": []}'):
        with pytest.raises(InvalidChangeEvent, match="malformed links record"):
            decode_dealer_links(bad)
