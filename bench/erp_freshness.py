"""ERP freshness: ERP commit -> visible in GET /api/v1/vehicles/{id}, under load, across an ERP outage.

A whole hub (tansu, PostgreSQL connector, worker, API) plus an ERP stand-in (PostgreSQL) reached through a loopback
TCP proxy, and the ERP connector. One stock record per marketplace vehicle.

Phase 1: `--rate` stock moves/s for `--seconds` (transactions of `--batch` rows); about `--samples-per-s`
transactions a second carry a unique marker location on a probe vehicle, polled through the API until it shows.
Probe vehicles are reserved (the background load never touches them) and one is reused only after its marker was
seen, so no marker can be overwritten before it is measured.
Phase 2: the proxy is cut for `--outage` seconds while the ERP keeps taking changes at the same rate, then restored
while changes go on for `--after` seconds. Printed: when the connector is back, when it has read and Kafka has
acknowledged the whole backlog (its /health high-water mark), when the last change of the outage is visible, and
the freshness of the changes committed after the restore.
Bidding latency (BidEngine.place_bid against a redis-server this bench starts) runs through every phase and is
printed per phase, side by side. At the end every vehicle's inventory location is compared with the ERP's.

    .venv/bin/python bench/erp_freshness.py [--rate 500 --seconds 60 --outage 60 --after 20 --vehicles 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import BenchHub, kept_workdir, percentile  # noqa: E402
from bidding.engine import BidEngine  # noqa: E402
from bidding.model import LotRules  # noqa: E402
from connectors.erp.dialects import ErpDsn, install_schema  # noqa: E402
from hub.broker import free_port, wait_for_port  # noqa: E402
from marketplace.demo_data import load_demo_data  # noqa: E402
from marketplace.migrate import drop_database, ensure_database  # noqa: E402
from tests.connectors.erp.tcp_proxy import TcpProxy  # noqa: E402
from tests.pipeline import wait_until  # noqa: E402

MOVE = "UPDATE stock_items SET location = %s WHERE stock_no = %s"
Stock = tuple[int, str]  # (marketplace vehicle id, ERP stock number)


def seed_erp(erp_url: str, vins: list[tuple[int, str]]) -> list[Stock]:
    """One stock record per marketplace VIN."""
    stock = [(vehicle_id, f"S{vehicle_id:07d}") for vehicle_id, _ in vins]
    with psycopg.connect(erp_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO stock_items (stock_no, vin, yard, location, status, title_status, keys_count, cost) "
            "VALUES (%s, %s, 'DAL-01 Dallas', 'A-01', 'IN_STOCK', 'CLEAN', 2, 15000)",
            [(s, vin) for (_, s), (_, vin) in zip(stock, vins, strict=True)],
        )
    return stock


async def inventory_location(client: httpx.AsyncClient, vehicle_id: int) -> str | None:
    try:
        response = await client.get(f"/api/v1/vehicles/{vehicle_id}")
    except httpx.TransportError:
        return None  # a keep-alive connection closed under us; ask again
    if response.status_code != 200:
        return None
    location = (response.json().get("inventory") or {}).get("location")
    return None if location is None else str(location)


async def visible_at(client: httpx.AsyncClient, vehicle_id: int, marker: str, timeout_s: float,
                     poll_s: float, since: float | None = None) -> float | None:  # fmt: skip
    """The moment `marker` shows as the vehicle's inventory location, or None after `timeout_s`.

    With `since` (the commit), the poll interval grows to 5% of the probe's age (at most 1 s): a backlog of slow
    probes must not load the API and the machine it measures (error <= 5% of the latency)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await inventory_location(client, vehicle_id) == marker:
            return time.monotonic()
        age = 0.0 if since is None else time.monotonic() - since
        await asyncio.sleep(min(1.0, max(poll_s, 0.05 * age)))
    return None


@dataclass
class Probe:
    vehicle_id: int
    stock_no: str
    marker: str
    committed_at: float


@dataclass
class Watch:
    """Probes being measured; latencies in ms; probes not visible within the timeout are counted, not awaited."""

    client: httpx.AsyncClient
    timeout_s: float
    poll_s: float
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (committed_at, ms)
    missed: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def values(self) -> list[float]:
        return [ms for _, ms in self.latencies]

    def report(self) -> str:
        missed = f"; {self.missed} not visible within {self.timeout_s:.0f} s" if self.missed else ""
        return summary(self.values()) + missed


@dataclass
class ErpLoad:
    """The ERP's writer: background moves on most stock, marker moves on reserved probe vehicles."""

    erp_url: str
    background: list[str]
    free_probes: deque[Stock]
    rng: random.Random
    markers: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**9)))
    changes: int = 0

    def _release(self, probe: Probe) -> None:
        self.free_probes.append((probe.vehicle_id, probe.stock_no))

    async def _watch(self, watch: Watch, probe: Probe) -> None:
        seen = await visible_at(watch.client, probe.vehicle_id, probe.marker, watch.timeout_s, watch.poll_s,
                                probe.committed_at)  # fmt: skip
        if seen is None:
            watch.missed += 1  # kept out of the pool: its marker may still show late
            return
        watch.latencies.append((probe.committed_at, (seen - probe.committed_at) * 1000))
        self._release(probe)

    async def run(self, rate: float, seconds: float, batch: int, samples_per_s: float,
                  watch: Watch | None = None) -> Probe | None:  # fmt: skip
        """`rate` changes/s for `seconds`; the last transaction always carries a probe, which is returned (kept
        out of the pool when not watched, so the caller can wait for it)."""
        transactions = max(1, round(seconds * rate / batch))
        every = max(1, round(rate / batch / samples_per_s))
        interval = batch / rate
        last: Probe | None = None
        start = time.monotonic()
        async with await psycopg.AsyncConnection.connect(self.erp_url, autocommit=False) as conn:
            for n in range(transactions):
                await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
                final = n == transactions - 1
                rows = [(f"L{self.rng.randrange(1000)}", s) for s in self.rng.sample(self.background, batch)]
                probe_stock = self.free_probes.popleft() if (final or n % every == 0) and self.free_probes else None
                if probe_stock is not None:
                    rows[0] = (f"P{next(self.markers):09d}", probe_stock[1])
                async with conn.cursor() as cur:
                    await cur.executemany(MOVE, rows)
                await conn.commit()
                self.changes += batch
                if probe_stock is None:
                    continue
                probe = Probe(probe_stock[0], probe_stock[1], rows[0][0], time.monotonic())
                if watch is not None:
                    watch.tasks.append(asyncio.create_task(self._watch(watch, probe)))
                elif final:
                    last = probe
                else:
                    self._release(probe)
        return last


async def bid_latencies(engine: BidEngine, stop: asyncio.Event) -> list[float]:
    """BidEngine.place_bid every 20 ms on a lot of its own until `stop`; ms per bid."""
    now = int(time.time() * 1000)
    lot_id = random.randrange(1_000_000, 9_000_000)  # noqa: S311
    await engine.arm(LotRules(lot_id=lot_id, auction_id=1, seller_user_id=99, currency="USD", starting_price=1000,
                              increments=((0, 100),), starts_at_ms=now - 1000, ends_at_ms=now + 3_600_000))  # fmt: skip
    latencies = []
    amount = 1000
    while not stop.is_set():
        amount += 100
        started = time.perf_counter()
        await engine.place_bid(lot_id, 1 + amount % 7, amount, now_ms=int(time.time() * 1000), currency="USD")
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)
    return latencies


class Bidding:
    """Bid latency per phase, measured without pause across phases."""

    def __init__(self, engine: BidEngine) -> None:
        self.engine = engine
        self.stop = asyncio.Event()
        self.task: asyncio.Task[list[float]] | None = None

    def start(self) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(bid_latencies(self.engine, self.stop))

    async def finish(self) -> list[float]:
        assert self.task is not None  # noqa: S101
        self.stop.set()
        return await self.task


def summary(values: list[float], unit: str = "ms") -> str:
    if not values:
        return "no samples"
    return (f"p50 {percentile(values, 0.5):.1f} {unit}, p95 {percentile(values, 0.95):.1f}, "
            f"p99 {percentile(values, 0.99):.1f}, max {max(values):.1f} (n={len(values)})")  # fmt: skip


async def erp_health(client: httpx.AsyncClient, url: str) -> dict[str, object]:
    try:
        body: dict[str, object] = (await client.get(url, timeout=2)).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return body


async def max_change_id(erp_url: str) -> int:
    async with await psycopg.AsyncConnection.connect(erp_url, autocommit=True) as conn:
        row = await (await conn.execute("SELECT MAX(change_id) FROM stock_changes")).fetchone()
    return int(row[0] or 0) if row else 0


async def catch_up(client: httpx.AsyncClient, health_url: str, restored: float, backlog_id: int,
                   last: Probe, poll_s: float) -> tuple[float | None, float | None, float | None]:  # fmt: skip
    """Seconds from the restore until: the connector answers ok, it has the backlog acknowledged, the last outage
    change is visible (None when not within 120 s)."""
    reconnected = backlog_read = None
    deadline = restored + 120
    while backlog_read is None and time.monotonic() < deadline:
        body = await erp_health(client, health_url)
        now = time.monotonic() - restored
        if reconnected is None and body.get("status") == "ok":
            reconnected = now
        if int(str(body.get("high_water") or 0)) >= backlog_id:
            backlog_read = now
            reconnected = reconnected if reconnected is not None else now
        await asyncio.sleep(poll_s)
    seen = await visible_at(client, last.vehicle_id, last.marker, max(0.0, deadline - time.monotonic()), poll_s)
    return reconnected, backlog_read, None if seen is None else seen - restored


async def consistent(client: httpx.AsyncClient, erp_url: str, timeout_s: float) -> tuple[int, int]:
    """(vehicles whose inventory location matches the ERP's, vehicles), waiting up to `timeout_s` for stragglers."""
    async with await psycopg.AsyncConnection.connect(erp_url, autocommit=True) as conn:
        rows = await (await conn.execute("SELECT stock_no, location FROM stock_items")).fetchall()
    pending = {int(str(stock_no)[1:]): str(location) for stock_no, location in rows}
    total = len(pending)
    deadline = time.monotonic() + timeout_s
    gate = asyncio.Semaphore(8)

    async def check(vehicle_id: int, location: str) -> int | None:
        async with gate:
            return vehicle_id if await inventory_location(client, vehicle_id) == location else None

    while pending and time.monotonic() < deadline:
        for vehicle_id in await asyncio.gather(*(check(v, loc) for v, loc in pending.items())):
            if vehicle_id is not None:
                del pending[vehicle_id]
        if pending:
            await asyncio.sleep(0.5)
    return total - len(pending), total


async def measure(hub: BenchHub, erp_url: str, proxy: TcpProxy, stock: list[Stock], args: argparse.Namespace,
                  engine: BidEngine, health_url: str) -> None:  # fmt: skip
    load = ErpLoad(erp_url, [s for _, s in stock[args.probes :]], deque(stock[: args.probes]), random.Random(3))  # noqa: S311
    poll_s = args.poll_ms / 1000
    bidding = Bidding(engine)
    async with httpx.AsyncClient(base_url=hub.api_url, timeout=10) as client:
        # Phase 1: sustained load, probes measured.
        watch = Watch(client, args.probe_timeout, poll_s)
        bidding.start()
        started = time.monotonic()
        await load.run(args.rate, args.seconds, args.batch, args.samples_per_s, watch)
        elapsed = time.monotonic() - started
        changes = load.changes
        await asyncio.gather(*watch.tasks)
        bids_normal = await bidding.finish()
        print(f"phase 1: {changes} changes in {elapsed:.1f} s ({changes / elapsed:.0f}/s), {args.batch} a transaction")
        print(f"  ERP commit -> visible in GET /api/v1/vehicles/{{id}}: {watch.report()}")
        print(f"  bidding (BidEngine.place_bid), ERP up: {summary(bids_normal)}")

        # Phase 2: the ERP link is cut while the ERP keeps taking changes; then restored while they go on.
        proxy.cut()
        bidding.start()
        before = load.changes
        last = await load.run(args.rate, args.outage, args.batch, args.samples_per_s)
        bids_outage = await bidding.finish()
        assert last is not None  # noqa: S101 - the last transaction carries a probe
        backlog_id = await max_change_id(erp_url)
        outage_changes = load.changes - before
        proxy.restore()
        restored = time.monotonic()
        bidding.start()
        after = Watch(client, args.probe_timeout, poll_s)
        writing = asyncio.create_task(load.run(args.rate, args.after, args.batch, args.samples_per_s, after))
        reconnected, backlog_read, caught_up = await catch_up(client, health_url, restored, backlog_id, last, poll_s)
        bids_catch_up = await bidding.finish()
        final_probe = await writing
        await asyncio.gather(*after.tasks)
        if final_probe is not None:
            load._release(final_probe)  # noqa: SLF001

        def s(value: float | None) -> str:
            return "not within 120 s" if value is None else f"{value:.2f} s"

        print(f"phase 2: ERP unreachable {args.outage:.0f} s, {outage_changes} changes committed meanwhile "
              f"(change ids up to {backlog_id}); changes go on at {args.rate:.0f}/s after the restore")  # fmt: skip
        print(f"  after the restore: connector healthy {s(reconnected)}, backlog read and acknowledged "
              f"{s(backlog_read)}, last outage change visible {s(caught_up)}")  # fmt: skip
        if caught_up is not None and backlog_read is not None:
            print(f"  catch-up after the backlog is read (goal <= 5 s): {caught_up - backlog_read:.2f} s")
        late = [(t - restored, ms) for t, ms in after.latencies]
        print(f"  freshness of changes committed after the restore: {after.report()}")
        slow = [t for t, ms in late if ms > 1000]
        if slow:
            print(f"  freshness <= 1 s for every change committed from {max(slow):.1f} s after the restore on")
        else:
            print("  freshness <= 1 s for every change committed after the restore")
        print(f"  bidding while the ERP is unreachable: {summary(bids_outage)}")
        print(f"  bidding during the catch-up:          {summary(bids_catch_up)}")
        print(f"  median bidding latency, outage / ERP up: "
              f"{statistics.median(bids_outage) / statistics.median(bids_normal):.2f}")  # fmt: skip
        matching, total = await consistent(client, erp_url, timeout_s=60)
        print(f"end state: {matching} of {total} vehicles show the ERP's last location ({load.changes} changes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500, help="ERP changes per second")
    parser.add_argument("--seconds", type=float, default=60, help="phase 1: sustained load")
    parser.add_argument("--outage", type=float, default=60, help="phase 2: ERP unreachable, changes go on")
    parser.add_argument("--after", type=float, default=20, help="load after the restore")
    parser.add_argument("--batch", type=int, default=10, help="changes per ERP transaction")
    parser.add_argument("--vehicles", type=int, default=3000)
    parser.add_argument("--probes", type=int, default=300, help="vehicles reserved for markers")
    parser.add_argument("--samples-per-s", type=float, default=10)
    parser.add_argument("--poll-ms", type=float, default=50, help="API poll interval of a probe")
    parser.add_argument("--probe-timeout", type=float, default=60)
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs in ./var/bench-erp")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="erp-bench-") as tmp:
        workdir = kept_workdir(Path("var/bench-erp")) if args.keep_logs else Path(tmp)
        run(workdir, args)


def run(workdir: Path, args: argparse.Namespace) -> None:
    hub = BenchHub(workdir)
    redis_port = free_port()
    redis_server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
                                     "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
    erp_url = hub.database_url + "_erp"
    try:
        hub.create_database()
        load_demo_data(hub.database_url, dealers=50, vehicles=args.vehicles)
        with psycopg.connect(hub.database_url) as conn:
            vins = [(int(r[0]), str(r[1])) for r in conn.execute("SELECT id, vin FROM vehicles ORDER BY id")]
        ensure_database(erp_url)
        hub.stack.callback(drop_database, erp_url)
        erp = ErpDsn.parse(erp_url)
        install_schema(erp)
        stock = seed_erp(erp_url, vins)
        proxy = TcpProxy(erp.host, erp.port)
        proxy.restore()
        hub.stack.callback(proxy.cut)
        hub.start_broker()
        health_port = free_port()
        hub.env.update(AUCTION_HUB_ERP_DSN=erp.with_endpoint("127.0.0.1", proxy.port).url(),
                       AUCTION_HUB_ERP_HEALTH_PORT=str(health_port), AUCTION_HUB_ERP_BACKOFF_MAX_S="2",
                       AUCTION_HUB_ERP_CONNECT_TIMEOUT_S="2")  # fmt: skip
        hub.start_worker()
        hub.start("connector", "connect", "postgres")
        hub.start_api()
        hub.start("erp", "connect", "erp")

        def merged() -> bool:
            response = httpx.get(f"{hub.api_url}/api/v1/vehicles/{stock[-1][0]}", timeout=5)
            return response.status_code == 200 and response.json().get("inventory") is not None

        wait_until(merged, timeout=300, interval=1, what="ERP snapshot merged")
        wait_for_port("127.0.0.1", redis_port, 10)
        engine = BidEngine(aioredis.Redis.from_url(f"redis://127.0.0.1:{redis_port}/0"))
        asyncio.run(measure(hub, erp_url, proxy, stock, args, engine, f"http://127.0.0.1:{health_port}/health"))
    finally:
        hub.close()
        redis_server.terminate()
        redis_server.wait(timeout=10)


if __name__ == "__main__":
    main()
