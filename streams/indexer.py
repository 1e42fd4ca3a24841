"""The vehicle indexer: applies a batch of operations to the search index, read-modify-write."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from connectors.search.port import SearchIndex, SearchIndexUnavailable
from schemas.vehicle import VehicleDocument
from streams.auction_bids import AuctionUpdate, apply_auction_update
from streams.changes import (
    VEHICLES_SOURCE,
    DealerLink,
    DealerRefresh,
    VehicleOp,
    VehicleRemoval,
    VehiclesTruncated,
    VehicleUpsert,
)
from streams.documents import Outcome, apply_dealer_refresh, apply_vehicle_removal, apply_vehicle_upsert
from streams.erp_changes import InventoryRefresh, VinLink
from streams.erp_documents import apply_inventory_refresh, follow_vehicle_vin
from streams.questions import QnaUpdate, apply_qna_update

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class BatchResult:
    written: int = 0
    skipped: int = 0
    truncated: int = 0
    links: list[DealerLink] = field(default_factory=list)
    vin_links: list[VinLink] = field(default_factory=list)  # ERP: vehicles that took or left a VIN


class VehicleIndexer:
    """Turns operations into document writes. The caller acknowledges its input only after `apply`.

    Writes are flushed (committed and visible) before `apply` returns, unless the caller flushes them itself
    (`flush=False`, then `flush()`); offsets are committed only after that, so they never point past a write
    the index could still lose.
    """

    def __init__(self, index: SearchIndex, *, retry_delay: float = 0.5, max_retry_delay: float = 10.0) -> None:
        self.index = index
        # The newest dealer profile seen per dealer: a new vehicle gets its dealer block in its first write,
        # and the directory's answer to its link is then a no-op. Only a shortcut: the directory stays the
        # authority and sends a refresh whenever it knows another profile.
        self.known_dealers: dict[int, DealerRefresh] = {}
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        # While an online reindex builds a new index version, every applied operation is kept here so it
        # can be replayed into that version (streams/reindex.py); None otherwise.
        self.journal: list[VehicleOp] | None = None

    async def apply(self, ops: Sequence[VehicleOp], *, flush: bool = True) -> BatchResult:
        """Writes for `ops`; with `flush=False` they are visible to this indexer's reads at once but committed
        (durable, searchable) only by the next `flush()`."""
        result = BatchResult()
        segment: list[
            VehicleUpsert | VehicleRemoval | DealerRefresh | InventoryRefresh | AuctionUpdate | QnaUpdate
        ] = []
        for op in ops:
            if isinstance(op, VehiclesTruncated):
                await self._apply_segment(segment, result)
                segment = []
                result.truncated += await self._retrying(
                    partial(self.index.tombstone_older_than, VEHICLES_SOURCE, op.position)
                )
            else:
                segment.append(op)
        await self._apply_segment(segment, result)
        if flush:
            await self.flush()
        if self.journal is not None:
            self.journal.extend(ops)
        return result

    async def flush(self) -> None:
        """Commit every write so far: durable and searchable."""
        await self._retrying(self.index.flush)

    async def _apply_segment(
        self,
        ops: Sequence[VehicleUpsert | VehicleRemoval | DealerRefresh | InventoryRefresh | AuctionUpdate | QnaUpdate],
        result: BatchResult,
    ) -> None:
        if not ops:
            return
        ids = list(dict.fromkeys(op.vehicle_id for op in ops))
        stored = await self._retrying(partial(self.index.get_many, ids))
        working: dict[str, VehicleDocument] = dict(stored)
        changed: dict[str, VehicleDocument] = {}
        for op in ops:
            outcome = self._apply(working.get(op.vehicle_id), op)
            if isinstance(op, VehicleUpsert | VehicleRemoval):
                outcome = follow_vehicle_vin(working.get(op.vehicle_id), op, outcome, result.vin_links)
            result.links.extend(outcome.links)
            if outcome.document is None:
                result.skipped += 1
                continue
            working[op.vehicle_id] = outcome.document
            changed[op.vehicle_id] = outcome.document
        if changed:
            await self._retrying(partial(self.index.upsert, list(changed.values())))
            result.written += len(changed)

    def _apply(
        self,
        current: VehicleDocument | None,
        op: VehicleUpsert | VehicleRemoval | DealerRefresh | InventoryRefresh | AuctionUpdate | QnaUpdate,
    ) -> Outcome:
        if isinstance(op, QnaUpdate):
            return Outcome(apply_qna_update(current, op))
        if isinstance(op, AuctionUpdate):
            return Outcome(apply_auction_update(current, op))
        if isinstance(op, VehicleUpsert):
            dealer_id = op.row.get("dealer_id")
            known = self.known_dealers.get(int(dealer_id)) if isinstance(dealer_id, int) else None
            return apply_vehicle_upsert(current, op, known)
        if isinstance(op, VehicleRemoval):
            return apply_vehicle_removal(current, op)
        if isinstance(op, InventoryRefresh):
            return Outcome(apply_inventory_refresh(current, op))
        known = self.known_dealers.get(op.dealer_id)
        if known is None or known.position < op.position:
            self.known_dealers[op.dealer_id] = op
        return apply_dealer_refresh(current, op)

    async def live_ids_by(self, field: str, values: Sequence[str]) -> dict[str, list[str]]:
        """The index's lookup (`SearchIndex.live_ids_by`), retried while the index is unreachable."""
        if not values:
            return {}
        return await self._retrying(partial(self.index.live_ids_by, field, values))

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Retry while the index is unreachable: the batch stays unacknowledged until it succeeds."""
        delay = self.retry_delay
        while True:
            try:
                return await call()
            except SearchIndexUnavailable as exc:
                log.warning("search index unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
