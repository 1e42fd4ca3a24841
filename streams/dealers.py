"""The dealer directory: dealer profiles and the reverse index dealer -> vehicles, over Faust tables.

A dealer change must reach every document of that dealer's vehicles without a SQL query per event,
so the directory keeps, per dealer, which vehicles it lists. The vehicle ids are spread over
`MEMBER_SHARDS` table keys per dealer: a table's changelog record carries the whole value, and one list
per dealer would make the changelog grow with the square of a dealer's inventory during a snapshot.
"""

from __future__ import annotations

import zlib
from collections.abc import MutableMapping
from typing import Any

from streams.changes import DealerChange, DealerLink, DealerRefresh, DealersTruncated

MEMBER_SHARDS = 32


def member_key(dealer_id: int, vehicle_id: str) -> str:
    shard = int(vehicle_id) if vehicle_id.isdigit() else zlib.crc32(vehicle_id.encode())
    return f"{dealer_id}/{shard % MEMBER_SHARDS}"


class DealerDirectory:
    """Pure rules over two mappings (Faust tables in the worker, dicts in unit tests).

    `profiles`: str(dealer_id) -> {"summary": dict | None, "position": int}
    `members`: "dealer_id/shard" -> sorted list of vehicle ids
    """

    def __init__(
        self,
        profiles: MutableMapping[str, dict[str, Any]],
        members: MutableMapping[str, list[str]],
    ) -> None:
        self.profiles = profiles
        self.members = members

    def vehicles_of(self, dealer_id: int) -> list[str]:
        vehicles: list[str] = []
        for shard in range(MEMBER_SHARDS):
            vehicles.extend(self.members.get(f"{dealer_id}/{shard}", ()))
        return vehicles

    def apply_change(self, change: DealerChange) -> list[DealerRefresh]:
        """Store the profile if newer; return the refreshes for every vehicle the dealer lists."""
        stored = self.profiles.get(str(change.dealer_id))
        if stored is not None and stored["position"] >= change.position:
            return []
        self.profiles[str(change.dealer_id)] = {"summary": change.summary, "position": change.position}
        return [
            DealerRefresh(vehicle_id, change.dealer_id, change.summary, change.position)
            for vehicle_id in self.vehicles_of(change.dealer_id)
        ]

    def apply_link(self, link: DealerLink) -> list[DealerRefresh]:
        """Record (or forget) a vehicle under its dealer; a new member gets the known profile."""
        key = member_key(link.dealer_id, link.vehicle_id)
        current = self.members.get(key, [])
        if link.linked:
            if link.vehicle_id not in current:
                self.members[key] = sorted([*current, link.vehicle_id])
            stored = self.profiles.get(str(link.dealer_id))
            if stored is None:
                return []  # the dealer's own change event will fan out when it arrives
            if stored["position"] == link.known_position:
                return []  # the document already holds this very profile
            return [DealerRefresh(link.vehicle_id, link.dealer_id, stored["summary"], stored["position"])]
        if link.vehicle_id in current:
            remaining = [vehicle_id for vehicle_id in current if vehicle_id != link.vehicle_id]
            if remaining:
                self.members[key] = remaining
            else:
                del self.members[key]
        return []

    def apply_truncate(self, truncate: DealersTruncated) -> None:
        for dealer_id in [key for key, stored in self.profiles.items() if stored["position"] < truncate.position]:
            del self.profiles[dealer_id]
