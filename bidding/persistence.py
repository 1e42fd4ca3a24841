"""The PostgreSQL persister: reads every armed lot's bids stream in a Redis consumer group, writes the records to
PostgreSQL (idempotently), publishes them to Kafka `auction.bids`, and only then acknowledges them.

Several persisters may run (one group, one consumer name per process): Redis hands each entry to one of them.
An entry read but never acknowledged (a persister crashed, PostgreSQL or Kafka failed) stays pending; its own
consumer re-reads it (id `0`), and any consumer claims it once it has been idle `claim_idle_ms` (XAUTOCLAIM).
Writes are idempotent by bid id and lot, so a record persisted twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bidding import bid_store
from bidding.bid_store import BidRow, CloseRow, LotRef, RetractionRow
from bidding.engine import LOTS_KEY, bids_key
from marketplace.db import Connection
from schemas.auction_bids import PHASES, STATE_PHASES, AuctionBidEvent

log = logging.getLogger(__name__)

GROUP = "pg-persister"
STREAMS_PER_READ = 500


class BidEventSink(Protocol):
    """Where persisted bid records are published (Kafka `auction.bids`); `publish` returns once they are stored."""

    async def publish(self, events: Sequence[AuctionBidEvent]) -> None: ...


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Entry:
    lot_id: int
    entry_id: str
    fields: dict[str, str]


@dataclass
class LotBatch:
    """What one batch of one lot's entries writes."""

    ref: LotRef
    bids: list[BidRow] = field(default_factory=list)
    retractions: list[RetractionRow] = field(default_factory=list)
    close: CloseRow | None = None
    last: dict[str, str] | None = None  # the newest bid or retraction record
    events: list[AuctionBidEvent] = field(default_factory=list)
    finished: bool = False  # nothing more will be written to this lot's stream (unless a seller decides)


def _event(ref: LotRef, kind: str, f: dict[str, str], *, status: str, outcome: str | None = None) -> AuctionBidEvent:
    seq = int(f.get("seq") or 0)
    has_leader = bool(f.get("leader")) if kind not in ("closed", "result") else outcome != "no_bids"
    price_field = "amount" if kind in ("closed", "result") else "price"
    return AuctionBidEvent(
        type=kind,  # type: ignore[arg-type]
        lotId=ref.lot_id,
        auctionId=ref.auction_id,
        vehicleId=ref.vehicle_id,
        seq=seq,
        phase=PHASES[kind],
        priceCents=int(f[price_field]) if has_leader else None,
        bidCount=int(f.get("bid_count") or 0),
        endsAtMs=int(f.get("ends_at_ms") or 0),
        lotStatus=status,
        atMs=int(f["accepted_at_ms"]),
        bidId=f.get("bid_id") or None,
        userId=int(f["user_id"]) if f.get("user_id") else None,
        outcome=outcome,
        startsAtMs=int(f["starts_at_ms"]) if f.get("starts_at_ms") else None,
    )


def plan_lot(ref: LotRef, entries: Sequence[Entry]) -> LotBatch:
    """Turn one lot's stream entries (in stream order) into rows and events."""
    batch = LotBatch(ref)
    for entry in entries:
        f = entry.fields
        kind = f.get("type")
        if kind == "bid":
            batch.bids.append(
                BidRow(
                    bid_ref=f["bid_id"],
                    lot_id=ref.lot_id,
                    user_id=int(f["user_id"]),
                    max_cents=int(f["max"]),
                    kind=f["kind"],
                    seq=int(f["seq"]),
                    price_cents=int(f["price"]),
                    accepted_at_ms=int(f["accepted_at_ms"]),
                    ends_at_ms=int(f["ends_at_ms"]),
                )
            )
            batch.last = f
            batch.events.append(_event(ref, "bid", f, status=f.get("status") or "open"))
        elif kind == "retract":
            batch.retractions.append(
                RetractionRow(f["bid_id"], ref.lot_id, int(f["user_id"]), int(f["seq"]), int(f["accepted_at_ms"]))
            )
            batch.last = f
            batch.events.append(_event(ref, "retract", f, status=f.get("status") or "scheduled"))
        elif kind == "state":  # nothing for PostgreSQL: the lot's state, for search
            status = f["status"]
            batch.events.append(replace(_event(ref, "state", f, status=status), phase=STATE_PHASES[status]))
        elif kind == "close":
            outcome = f["outcome"]
            batch.close = CloseRow(
                lot_id=ref.lot_id,
                outcome=outcome,
                price_cents=int(f["amount"]),
                high_bidder_id=int(f["user_id"]) if f.get("user_id") else None,
                bid_count=int(f.get("bid_count") or 0),
                seq=int(f.get("seq") or 0),
                closed_at_ms=int(f["accepted_at_ms"]),
                ends_at_ms=int(f.get("ends_at_ms") or f["accepted_at_ms"]),
            )
            status = bid_store.LOT_STATUS_AT_CLOSE[outcome]
            batch.events.append(_event(ref, "closed", f, status=status, outcome=outcome))
        elif kind == "decision":  # the seller's if-bid decision, already in PostgreSQL (bidding.results)
            status = f["status"]
            phase = PHASES["countered" if status == "countered" else "result"]
            batch.events.append(replace(_event(ref, "result", f, status=status, outcome="if_bid"), phase=phase))
            if status != "countered":
                batch.finished = True
        else:
            log.error("lot %d: unknown bids-stream record %s %r; skipped", ref.lot_id, entry.entry_id, f)
    return batch


async def persist(conn: Connection, batches: Sequence[LotBatch]) -> list[int]:
    """Write the batches in the caller's transaction; returns the lots whose stream has nothing more to say."""
    await bid_store.insert_bids(conn, [row for batch in batches for row in batch.bids])
    await bid_store.insert_retractions(conn, [row for batch in batches for row in batch.retractions])
    finished: list[int] = []
    for batch in sorted(batches, key=lambda b: b.ref.lot_id):  # one lock order across persisters
        if batch.last is not None:
            last = batch.last
            await bid_store.advance_lot(
                conn,
                batch.ref.lot_id,
                seq=int(last["seq"]),
                price_cents=int(last["price"]) if last.get("leader") else None,
                ends_at_ms=int(last["ends_at_ms"]),
            )
        if batch.close is not None:
            await bid_store.record_close(conn, batch.ref, batch.close)
        if batch.close is not None or batch.finished:
            finished.append(batch.ref.lot_id)
    return finished


class BidPersister:
    """The consumer loop; `step()` is one read-write-publish-acknowledge round (tests drive it directly)."""

    def __init__(
        self,
        redis: Redis,
        pool: AsyncConnectionPool[Connection],
        sink: BidEventSink,
        *,
        consumer: str | None = None,
        group: str = GROUP,
        batch_size: int = 500,
        block_ms: int = 250,
        claim_idle_ms: int = 10_000,
        claim_every_s: float = 5.0,
    ) -> None:
        self.redis = redis
        self.pool = pool
        self.sink = sink
        self.consumer = consumer or default_consumer_name()
        self.group = group
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_s = claim_every_s
        self.lots: set[int] = set()
        self.refs: dict[int, LotRef] = {}
        self._own_pending = True  # re-read this consumer's unacknowledged entries first
        self._next_claim = 0.0
        self._next_refresh = 0.0
        self.persisted = 0

    # -- lots and groups -----------------------------------------------------------------------------------------

    async def refresh_lots(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_refresh and await self.redis.scard(LOTS_KEY) == len(self.lots):
            return
        members = {int(_text(m)) for m in await self.redis.smembers(LOTS_KEY)}
        for lot_id in sorted(members - self.lots):
            await self._ensure_group(lot_id)
        self.lots = members
        self._next_refresh = now + 5.0

    async def _ensure_group(self, lot_id: int) -> None:
        try:
            await self.redis.xgroup_create(bids_key(lot_id), self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- one round -----------------------------------------------------------------------------------------------

    async def step(self) -> int:
        """Read what is due, persist, publish, acknowledge; returns the number of entries handled."""
        await self.refresh_lots()
        if not self.lots:
            await asyncio.sleep(self.block_ms / 1000)
            return 0
        try:
            entries = await self._claim_idle() if time.monotonic() >= self._next_claim else []
            entries += await self._read()
            entries = list({(entry.lot_id, entry.entry_id): entry for entry in entries}.values())  # claimed, re-read
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("a consumer group vanished (Redis flushed or rebuilt?); recreating the groups")
            self.lots = set()
            return 0
        if entries:
            await self.handle(entries)
        return len(entries)

    async def _read(self) -> list[Entry]:
        if self._own_pending:  # what this consumer read before and never acknowledged (a failed round, a restart)
            entries = await self._read_from("0", block=None)
            self._own_pending = False
            if entries:
                return entries
        lots = sorted(self.lots)
        single = len(lots) <= STREAMS_PER_READ
        entries = await self._read_from(">", block=self.block_ms if single else None)
        if not entries and not single:
            await asyncio.sleep(min(self.block_ms, 50) / 1000)
        return entries

    async def _read_from(self, start: str, block: int | None) -> list[Entry]:
        lots = sorted(self.lots)
        entries: list[Entry] = []
        for i in range(0, len(lots), STREAMS_PER_READ):
            reply = await self.redis.xreadgroup(
                self.group,
                self.consumer,
                {bids_key(lot_id): start for lot_id in lots[i : i + STREAMS_PER_READ]},
                count=self.batch_size,
                block=block,
            )
            entries += _entries(reply)
        return entries

    async def _claim_idle(self) -> list[Entry]:
        """Entries another (dead or stuck) consumer read but never acknowledged, idle long enough: ours now."""
        self._next_claim = time.monotonic() + self.claim_every_s
        entries: list[Entry] = []
        for lot_id in sorted(self.lots):
            reply = await self.redis.xautoclaim(
                bids_key(lot_id), self.group, self.consumer, self.claim_idle_ms, start_id="0-0", count=self.batch_size
            )
            claimed = reply[1] if len(reply) > 1 else []
            for raw_id, raw_fields in claimed:
                if raw_fields:
                    entries.append(Entry(lot_id, _text(raw_id), {_text(k): _text(v) for k, v in raw_fields.items()}))
        if entries:
            log.info("claimed %d idle entries from other consumers", len(entries))
        return entries

    async def handle(self, entries: Sequence[Entry]) -> None:
        by_lot: dict[int, list[Entry]] = defaultdict(list)
        for entry in entries:
            by_lot[entry.lot_id].append(entry)
        for lot_entries in by_lot.values():
            lot_entries.sort(key=lambda e: tuple(int(part) for part in e.entry_id.split("-")))
        try:
            async with self.pool.connection() as conn:
                missing = [lot_id for lot_id in by_lot if lot_id not in self.refs]
                if missing:
                    self.refs.update(await bid_store.lot_refs(conn, missing))
                batches = []
                for lot_id, lot_entries in by_lot.items():
                    ref = self.refs.get(lot_id)
                    if ref is None:
                        log.error("lot %d is not in PostgreSQL; its %d records are skipped", lot_id, len(lot_entries))
                        continue
                    batches.append(plan_lot(ref, lot_entries))
                finished = await persist(conn, batches)
        except BaseException:
            self._own_pending = True  # read them again on the next round
            raise
        events = [event for batch in batches for event in batch.events]
        try:
            await self.sink.publish(events)
        except BaseException:
            self._own_pending = True
            raise
        async with self.redis.pipeline(transaction=False) as pipe:
            for lot_id, lot_entries in by_lot.items():
                pipe.xack(bids_key(lot_id), self.group, *[entry.entry_id for entry in lot_entries])
            await pipe.execute()
        self.persisted += len(entries)
        for lot_id in finished:
            await self._retire(lot_id)

    async def _retire(self, lot_id: int) -> None:
        """A closed lot writes nothing more: stop reading its stream once nobody holds an entry of it."""
        pending = await self.redis.xpending(bids_key(lot_id), self.group)
        if int(pending["pending"]) == 0:
            await self.redis.srem(LOTS_KEY, str(lot_id))
            self.lots.discard(lot_id)

    # -- the loop ------------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: rounds back to back; a failing round (Redis, PostgreSQL, Kafka down) retries with back-off."""
        delay = 0.5
        while not stop.is_set():
            try:
                await self.step()
                delay = 0.5
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("persister: Redis unreachable (%s); retrying in %.1fs", exc, delay)
                self.lots = set()
                await _wait(stop, delay)
                delay = min(delay * 2, 10.0)
            except Exception:
                log.exception("persister round failed; retrying in %.1fs", delay)
                await _wait(stop, delay)
                delay = min(delay * 2, 10.0)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


def _entries(reply: Any) -> list[Entry]:
    entries: list[Entry] = []
    for raw_key, raw_entries in reply or []:
        key = _text(raw_key)
        lot_id = int(key[key.index(":") + 1 : key.index("}")])
        for raw_id, raw_fields in raw_entries:
            if raw_fields:  # an entry deleted while pending comes back without fields
                entries.append(Entry(lot_id, _text(raw_id), {_text(k): _text(v) for k, v in raw_fields.items()}))
    return entries
