"""ERP freshness: ERP commit -> visible in GET /api/v1/vehicles/{id}, under load, across an ERP outage.

A whole hub (tansu, PostgreSQL connector, worker, API) plus an ERP stand-in (PostgreSQL) reached through a loopback
TCP proxy, and the ERP connector. Phase 1: `--rate` stock changes/s for `--seconds`, probes measure commit ->
visible. Phase 2: the proxy is cut for `--outage` seconds while changes go on, then restored: catch-up = time from
the restore until the last change committed during the outage is visible. Bidding latency (BidEngine.place_bid
against a redis-server this bench starts) is measured in phase 1 and during the outage, side by side.
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
from pathlib import Path

import httpx
import psycopg
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import BenchHub, percentile  # noqa: E402
from bidding.engine import BidEngine  # noqa: E402
from bidding.model import LotRules  # noqa: E402
from connectors.erp.dialects import ErpDsn, install_schema  # noqa: E402
from hub.broker import free_port, wait_for_port  # noqa: E402
from marketplace.demo_data import load_demo_data  # noqa: E402
from marketplace.migrate import drop_database, ensure_database  # noqa: E402
from tests.connectors.erp.tcp_proxy import TcpProxy  # noqa: E402
from tests.pipeline import wait_until  # noqa: E402

MOVE = "UPDATE stock_items SET location = %s WHERE stock_no = %s"


def seed_erp(erp_url: str, vins: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """One stock record per marketplace VIN; returns (vehicle id, stock number)."""
    stock = [(vehicle_id, f"S{vehicle_id:07d}") for vehicle_id, _ in vins]
    with psycopg.connect(erp_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO stock_items (stock_no, vin, yard, location, status, title_status, keys_count, cost) "
            "VALUES (%s, %s, 'DAL-01 Dallas', 'A-01', 'IN_STOCK', 'CLEAN', 2, 15000)",
            [(s, vin) for (_, s), (_, vin) in zip(stock, vins, strict=True)],
        )
    return stock


async def visible(client: httpx.AsyncClient, vehicle_id: int, marker: str, poll_s: float = 0.02) -> float:
    while True:
        try:
            response = await client.get(f"/api/v1/vehicles/{vehicle_id}")
            if response.status_code == 200 and (response.json().get("inventory") or {}).get("location") == marker:
                return time.monotonic()
        except httpx.TransportError:
            pass
        await asyncio.sleep(poll_s)


async def write_load(erp_url: str, stock: list[tuple[int, str]], rate: float, seconds: float, batch: int,
                     rng: random.Random, client: httpx.AsyncClient | None = None, probes_per_s: float = 10,
                     ) -> tuple[int, list[tuple[int, str, float]], list[asyncio.Task[float]]]:  # fmt: skip
    """`rate` changes/s in transactions of `batch`; the first change of each transaction carries a unique marker.
    With `client`, about `probes_per_s` transactions a second are watched until visible (tasks return ms)."""
    probes: list[tuple[int, str, float]] = []
    watched: list[asyncio.Task[float]] = []
    every = max(1, round(rate / batch / probes_per_s))

    async def watch(vehicle_id: int, marker: str, committed: float) -> float:
        return (await visible(client, vehicle_id, marker) - committed) * 1000 if client else 0.0

    changes = 0
    interval = batch / rate
    start = time.monotonic()
    async with await psycopg.AsyncConnection.connect(erp_url, autocommit=False) as conn:
        n = 0
        while time.monotonic() - start < seconds:
            due = start + n * interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            n += 1
            rows = rng.sample(stock, batch)
            marker = f"P{n:07d}"
            async with conn.cursor() as cur:
                await cur.executemany(MOVE, [(marker if i == 0 else f"L{rng.randrange(99)}", s)
                                             for i, (_, s) in enumerate(rows)])  # fmt: skip
            await conn.commit()
            changes += batch
            probes.append((rows[0][0], marker, time.monotonic()))
            if client is not None and n % every == 0:
                watched.append(asyncio.create_task(watch(*probes[-1])))
    return changes, probes, watched


async def bid_latencies(engine: BidEngine, seconds: float) -> list[float]:
    now = int(time.time() * 1000)
    lot_id = random.randrange(1_000_000, 9_000_000)  # noqa: S311
    await engine.arm(LotRules(lot_id=lot_id, auction_id=1, seller_user_id=99, currency="USD", starting_price=1000,
                              increments=((0, 100),), starts_at_ms=now - 1000, ends_at_ms=now + 3_600_000))  # fmt: skip
    latencies = []
    amount = 1000
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        amount += 100
        started = time.perf_counter()
        await engine.place_bid(lot_id, 1 + amount % 7, amount, now_ms=int(time.time() * 1000), currency="USD")
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)
    return latencies


def summary(values: list[float], unit: str = "ms") -> str:
    if not values:
        return "no samples"
    return (f"p50 {percentile(values, 0.5):.1f} {unit}, p95 {percentile(values, 0.95):.1f}, "
            f"p99 {percentile(values, 0.99):.1f}, max {max(values):.1f} (n={len(values)})")  # fmt: skip


async def measure(hub: BenchHub, erp_url: str, proxy: TcpProxy, stock: list[tuple[int, str]],
                  args: argparse.Namespace, engine: BidEngine) -> None:  # fmt: skip
    rng = random.Random(3)  # noqa: S311
    async with httpx.AsyncClient(base_url=hub.api_url, timeout=10) as client:
        # Phase 1: sustained load, every transaction's probe measured.
        bidding = asyncio.create_task(bid_latencies(engine, args.seconds))
        changes, _, watched = await write_load(erp_url, stock, args.rate, args.seconds, args.batch, rng, client,
                                               args.samples / args.seconds)  # fmt: skip
        latencies = list(await asyncio.gather(*watched))
        bids_normal = await bidding
        print(f"phase 1: {changes} changes in {args.seconds:.0f}s ({changes / args.seconds:.0f}/s)")
        print(f"  ERP commit -> visible in GET /api/v1/vehicles/{{id}}: {summary(latencies)}")
        print(f"  bidding (BidEngine.place_bid), no outage: {summary(bids_normal)}")

        # Phase 2: the ERP link is cut while the ERP keeps taking changes; then restored.
        proxy.cut()
        bidding = asyncio.create_task(bid_latencies(engine, args.outage))
        outage_changes, outage_probes, _ = await write_load(erp_url, stock, args.rate, args.outage, args.batch, rng)
        bids_outage = await bidding
        restored = time.monotonic()
        proxy.restore()
        last_vehicle, last_marker, _ = outage_probes[-1]
        caught_up = await visible(client, last_vehicle, last_marker)
        print(f"phase 2: ERP unreachable {args.outage:.0f}s, {outage_changes} changes committed meanwhile")
        print(f"  catch-up after restore (last outage change visible): {(caught_up - restored):.2f} s")
        print(f"  bidding during the outage: {summary(bids_outage)}")
        # Freshness after the backlog: new changes again measured.
        _, _, watched = await write_load(erp_url, stock, args.rate, 5, args.batch, rng, client)
        lat = list(await asyncio.gather(*watched))
        print(f"  freshness in the 5 s after catch-up: {summary(lat)}")
        print(f"  median bidding latency ratio outage/normal: "
              f"{statistics.median(bids_outage) / statistics.median(bids_normal):.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--outage", type=float, default=60)
    parser.add_argument("--batch", type=int, default=10, help="changes per ERP transaction")
    parser.add_argument("--vehicles", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=600)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="erp-bench-"))
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
        hub.env.update(AUCTION_HUB_ERP_DSN=erp.with_endpoint("127.0.0.1", proxy.port).url(),
                       AUCTION_HUB_ERP_HEALTH_PORT=str(free_port()), AUCTION_HUB_ERP_BACKOFF_MAX_S="2",
                       AUCTION_HUB_ERP_CONNECT_TIMEOUT_S="2")  # fmt: skip
        hub.start_worker()
        hub.start("connector", "connect", "postgres")
        hub.start_api()
        hub.start("erp", "connect", "erp")
        last_vehicle, last_stock = stock[-1]
        wait_until(lambda: httpx.get(f"{hub.api_url}/api/v1/vehicles/{last_vehicle}", timeout=5).json()
                   .get("inventory", {}) is not None and httpx.get(f"{hub.api_url}/api/v1/vehicles/{last_vehicle}",
                   timeout=5).status_code == 200, timeout=300, interval=1, what="ERP snapshot merged")  # fmt: skip
        wait_for_port("127.0.0.1", redis_port, 10)
        engine = BidEngine(aioredis.Redis.from_url(f"redis://127.0.0.1:{redis_port}/0"))
        asyncio.run(measure(hub, erp_url, proxy, stock, args, engine))
    finally:
        hub.close()
        redis_server.terminate()
        redis_server.wait(timeout=10)


if __name__ == "__main__":
    main()
