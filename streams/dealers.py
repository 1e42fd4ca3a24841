"""The dealer directory: dealer profiles over a Faust table, and the fan-out of a profile change.

A dealer change must reach every document of that dealer's vehicles without a SQL query per event. Which
vehicles a dealer lists is the search index's to say (`SearchIndex.live_ids_by("dealer_id", ...)`): the worker
looks the batch's dealers up there before applying it, instead of keeping a reverse index of its own (that
index cost a table write, a changelog record and resident memory per vehicle).

Why no vehicle misses a profile: the indexer writes a vehicle, flushes, and only then sends its link. A
lookup made after a batch was taken either sees the vehicle, or the vehicle's link comes in a later batch,
applied after this batch stored the new profile, and the link is answered with it.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

from streams.changes import DealerChange, DealerLink, DealerRefresh, DealersTruncated


class DealerDirectory:
    """Pure rules over the profiles (a Faust table in the worker, a dict in unit tests).

    `profiles`: str(dealer_id) -> {"summary": dict | None, "position": int}
    """

    def __init__(self, profiles: MutableMapping[str, dict[str, Any]]) -> None:
        self.profiles = profiles

    def apply_change(self, change: DealerChange, vehicle_ids: Sequence[str]) -> list[DealerRefresh]:
        """Store the profile if newer; return the refreshes for the dealer's vehicles (`vehicle_ids`)."""
        stored = self.profiles.get(str(change.dealer_id))
        if stored is not None and stored["position"] >= change.position:
            return []
        self.profiles[str(change.dealer_id)] = {"summary": change.summary, "position": change.position}
        return [
            DealerRefresh(vehicle_id, change.dealer_id, change.summary, change.position) for vehicle_id in vehicle_ids
        ]

    def apply_link(self, link: DealerLink) -> list[DealerRefresh]:
        """A vehicle now listed by the dealer gets the stored profile unless it already holds that one."""
        if not link.linked:
            return []  # the document no longer names the dealer: lookups stop finding it
        stored = self.profiles.get(str(link.dealer_id))
        if stored is None:
            return []  # the dealer's own change event will fan out when it arrives
        if stored["position"] == link.known_position:
            return []  # the document already holds this very profile
        return [DealerRefresh(link.vehicle_id, link.dealer_id, stored["summary"], stored["position"])]

    def apply_truncate(self, truncate: DealersTruncated) -> None:
        for dealer_id in [key for key, stored in self.profiles.items() if stored["position"] < truncate.position]:
            del self.profiles[dealer_id]
