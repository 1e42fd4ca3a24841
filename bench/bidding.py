"""Live bidding figures: bid accept over HTTP beside the raw Lua script, and bid -> screen over SSE (native, nchan).

Everything is real and started here: a migrated database, a redis-server with AOF `appendfsync always`,
`auction-hub api` (uvicorn), and for the nchan tier nginx with the repo's config plus `auction-hub nchan publish`.

1. Bid accept: N concurrent bidders (keep-alive HTTP/1.1 connections, one bid after another) on random lots of
   1,000 live lots, `POST /api/v1/lots/{id}/bids`; then the same bids straight into `BidEngine.place_bid` (the
   Lua script from Python) in the same run. bids/s and p50/p95/p99 per run, then the median over runs.
2. Bid -> screen: 100 live lots get 1 bid/s each over HTTP; SSE clients (raw asyncio sockets in separate
   processes) watch one lot each, spread evenly; latency = client receipt time - the event's `acceptedAt`;
   events lost = events of the window a client's lot had that the client never got. Server CPU (cores busy) and
   resident memory per connection from /proc.

    .venv/bin/python bench/bidding.py                 # the issue's numbers (about 8 minutes)
    .venv/bin/python bench/bidding.py --quick         # smaller numbers, about 2 minutes
    .venv/bin/python bench/bidding.py --only accept   # or: --only native, --only nchan
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ADMIN_URL, percentile  # noqa: E402
from bench.harness import process_cpu_seconds as cpu_seconds  # noqa: E402
from hub.broker import free_port  # noqa: E402
from hub.embedded_redis import EmbeddedRedis  # noqa: E402
from marketplace.migrate import apply_migrations, drop_database, ensure_database  # noqa: E402
from tests.pipeline import wait_until  # noqa: E402

START_PRICE = 10_000  # dollars; every lot: no reserve, no buy-now, $100 steps
LOTS_PER_AUCTION = 100
JWT_SECRET = "bench-secret-" + "c" * 40  # noqa: S105 - a throwaway database


# -- processes ----------------------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@dataclass
class Api:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        workers = children(self.process.pid)
        return workers or [self.process.pid]


def start_api(env: dict[str, str], workdir: Path, workers: int) -> Api:
    port = free_port()
    log = (workdir / f"api-{port}.log").open("wb")
    command = [sys.executable, "-m", "hub.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen([*command, "--workers", str(workers)], env=env, stdout=log, stderr=log)  # noqa: S603
    api = Api(process, port)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited; see {workdir}")
        try:
            return httpx.get(f"{api.url}/health", timeout=2).status_code in {200, 503}
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=60, what="the API to answer")
        if workers > 1:
            wait_until(lambda: len(children(process.pid)) >= workers, timeout=30, what="uvicorn workers")
    except BaseException:
        stop(process)
        raise
    return api


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- a minimal keep-alive HTTP/1.1 client (httpx costs more CPU per request than the server spends) ----------------


class Http:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        if self.reader is None:
            raise RuntimeError("not connected")
        head = b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        self.writer.write(head % (path.encode(), len(body)) + headers + b"\r\n" + body)
        response = await self.reader.readuntil(b"\r\n\r\n")
        status = int(response[9:12])
        at = response.lower().find(b"content-length:")
        length = int(response[at + 15 : response.find(b"\r\n", at)]) if at >= 0 else 0
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# -- the market ---------------------------------------------------------------------------------------------------


@dataclass
class Bidder:
    user_id: int
    auth: bytes  # the Authorization header line


@dataclass
class Market:
    lots: list[int]
    bidders: list[Bidder]
    next_amount: dict[int, Iterator[int]] = field(default_factory=dict)

    def amount(self, lot: int) -> int:
        """Dollars, rising on every call per lot: each max beats every earlier one, so every bid is ACCEPTED."""
        if lot not in self.next_amount:
            self.next_amount[lot] = itertools.count(START_PRICE, 100)
        return next(self.next_amount[lot])


async def build_market(api_url: str, database_url: str, lots: int, bidders: int) -> Market:
    from tests.marketplace.test_auctions import Market as MarketClient

    async with httpx.AsyncClient(base_url=api_url, timeout=60) as client:
        market = MarketClient(client, database_url)
        dealer = await market.dealer()
        lot_ids: list[int] = []
        for first in range(0, lots, LOTS_PER_AUCTION):
            cars = [market.car(dealer) for _ in range(min(LOTS_PER_AUCTION, lots - first))]
            drafts = [{"vehicle_id": car, "starting_price": START_PRICE, "bid_increments": [[0, 100]]} for car in cars]
            response = await market.create(dealer, cars, title="Event sale", lots=drafts)
            if response.status_code != 201:
                raise RuntimeError(f"creating an auction failed: {response.text}")
            auction_id = response.json()["data"]["id"]
            market.shift_schedule(auction_id, timedelta(minutes=-1), timedelta(hours=3))
            lot_ids += [lot["id"] for lot in response.json()["data"]["lots"]]
        members = await asyncio.gather(*(market.member() for _ in range(bidders)))
        # Arm every lot in Redis now (the first view loads its rules from PostgreSQL), outside the measurement.
        for chunk in range(0, len(lot_ids), 50):
            views = await asyncio.gather(*(client.get(f"/api/v1/lots/{lot}") for lot in lot_ids[chunk : chunk + 50]))
            if any(view.status_code != 200 for view in views):
                raise RuntimeError(f"arming lots failed: {views[0].text}")
    bidders_ = [Bidder(m.id, f"Authorization: Bearer {m.access_token}\r\n".encode()) for m in members]
    return Market(lot_ids, bidders_)


# -- figure 1: bid accept -----------------------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    latencies_ms: list[float]
    seconds: float
    rejected: int = 0
    errors: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)

    def line(self) -> str:
        return (
            f"{self.label:<24} {self.rate:8.0f} bids/s  p50={self.p(0.5):6.2f} ms  p95={self.p(0.95):6.2f} ms  "
            f"p99={self.p(0.99):6.2f} ms  n={len(self.latencies_ms)}  rejected={self.rejected}  errors={self.errors}"
        )


async def http_bids(port: int, market: Market, concurrency: int, seconds: float, label: str = "HTTP") -> Run:
    run = Run(label, [], seconds)
    rng = random.Random(1)
    deadline = time.perf_counter() + seconds

    async def bidder(index: int) -> None:
        http = Http(port)
        who = market.bidders[index % len(market.bidders)]
        try:
            while time.perf_counter() < deadline:
                lot = rng.choice(market.lots)
                body = b'{"amount":%d,"currency":"USD","kind":"max"}' % market.amount(lot)
                started = time.perf_counter()
                status, reply = await http.post(f"/api/v1/lots/{lot}/bids", body, who.auth)
                run.latencies_ms.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    run.errors += 1
                elif b'"ACCEPTED"' not in reply:
                    run.rejected += 1
        finally:
            http.close()

    started = time.perf_counter()
    await asyncio.gather(*(bidder(index) for index in range(concurrency)))
    run.seconds = time.perf_counter() - started
    return run


async def script_bids(redis_url: str, market: Market, concurrency: int, seconds: float, mux: bool = False) -> Run:
    """The bid script straight from Python, through redis-py's pool or (`mux`) the API's multiplexed connection."""
    from redis.asyncio import Redis

    from bidding.engine import BidEngine
    from bidding.redis_mux import RedisMux

    redis: Redis = Redis.from_url(redis_url, max_connections=concurrency + 4)
    bid_path = RedisMux(redis_url) if mux else None
    engine = BidEngine(redis, bid_path)
    run = Run("Lua script, redis_mux" if mux else "Lua script, redis-py", [], seconds)
    rng = random.Random(2)
    deadline = time.perf_counter() + seconds

    async def bidder(index: int) -> None:
        who = market.bidders[index % len(market.bidders)]
        while time.perf_counter() < deadline:
            lot = rng.choice(market.lots)
            amount = market.amount(lot) * 100
            started = time.perf_counter()
            reply = await engine.place_bid(
                lot, who.user_id, amount, kind="max", now_ms=int(time.time() * 1000), currency="USD"
            )
            run.latencies_ms.append((time.perf_counter() - started) * 1000)
            run.rejected += reply.status != "ACCEPTED"

    started = time.perf_counter()
    try:
        await asyncio.gather(*(bidder(index) for index in range(concurrency)))
    finally:
        await redis.aclose()
        if bid_path is not None:
            await bid_path.aclose()
    run.seconds = time.perf_counter() - started
    return run


def summary(label: str, runs: list[Run]) -> str:
    return (
        f"{label:<24} median of {len(runs)} runs: {statistics.median(r.rate for r in runs):8.0f} bids/s  "
        f"p50={statistics.median(r.p(0.5) for r in runs):6.2f} ms  "
        f"p95={statistics.median(r.p(0.95) for r in runs):6.2f} ms  "
        f"p99={statistics.median(r.p(0.99) for r in runs):6.2f} ms"
    )


async def figure_accept(
    args: argparse.Namespace, api: Api, routes_api: Api | None, redis_url: str, market: Market, redis_pid: int
) -> None:
    """HTTP bids through the bid lane and the multiplexed Redis connection, beside the same bids through the FastAPI
    routes and redis-py's pool (an API process with AUCTION_HUB_BID_LANE=false, AUCTION_HUB_BID_REDIS_MUX=false)
    and straight into the Lua script from redis-py, run after run."""
    print(f"\n1. Bid accept: {args.bidders} concurrent bidders, {len(market.lots)} lots, AOF appendfsync always, "
          f"API --workers {args.workers}, {args.seconds:.0f} s per run")  # fmt: skip
    apis = {"HTTP, bid lane": api, **({"HTTP, routes + redis-py": routes_api} if routes_api else {})}
    for each in apis.values():
        await http_bids(each.port, market, args.bidders, 2)  # warm-up
    http_runs: dict[str, list[Run]] = {label: [] for label in apis}
    script_runs: list[Run] = []
    mux_script_runs: list[Run] = []
    for number in range(1, args.runs + 1):
        for label, each in apis.items():
            before = {pid: cpu_seconds(pid) for pid in (*each.worker_pids(), redis_pid, os.getpid())}
            run = await http_bids(each.port, market, args.bidders, args.seconds, label)
            used = {pid: cpu_seconds(pid) - cpu for pid, cpu in before.items()}
            http_runs[label].append(run)
            print(f"  run {number}  {run.line()}")
            bids = len(run.latencies_ms)
            api_ms = sum(used[pid] for pid in each.worker_pids()) * 1000 / bids
            print(
                f"  run {number}  {'':<24} CPU per HTTP bid: API {api_ms:.2f} ms, redis-server "
                f"{used[redis_pid] * 1000 / bids:.2f} ms, load generator {used[os.getpid()] * 1000 / bids:.2f} ms"
            )
        script_runs.append(await script_bids(redis_url, market, args.bidders, args.seconds))
        print(f"  run {number}  {script_runs[-1].line()}")
        mux_script_runs.append(await script_bids(redis_url, market, args.bidders, args.seconds, mux=True))
        print(f"  run {number}  {mux_script_runs[-1].line()}")
    for label, runs in http_runs.items():
        print("  " + summary(label, runs))
    print("  " + summary("Lua script, redis-py", script_runs))
    print("  " + summary("Lua script, redis_mux", mux_script_runs))
    lane_rate = statistics.median(r.rate for r in http_runs["HTTP, bid lane"])
    script_rate = statistics.median(r.rate for r in script_runs)
    mux_script_rate = statistics.median(r.rate for r in mux_script_runs)
    print(f"  HTTP (bid lane) / script throughput: {lane_rate / script_rate:.2f} (redis-py), "
          f"{lane_rate / mux_script_rate:.2f} (redis_mux)")  # fmt: skip
    if routes_api:
        routes_rate = statistics.median(r.rate for r in http_runs["HTTP, routes + redis-py"])
        print(f"  bid lane + mux / routes + redis-py throughput: {lane_rate / routes_rate:.2f}")
    print("  (goal: >= 3,000 bids/s, p99 <= 20 ms over HTTP)")


# -- figure 2: bid -> screen --------------------------------------------------------------------------------------


def client_main(spec: dict[str, Any]) -> None:
    """A load-generator process: `count` SSE connections (raw sockets, HTTP/1.0, no chunking), one lot each."""
    asyncio.run(_clients(spec))


def parse_event(block: bytes) -> tuple[str, int] | None:
    """(event id lot:streamId, acceptedAt) of a price event; the native feed names it in `id:`, nchan in `eventId`."""
    at = block.find(b'"acceptedAt":')
    if at < 0:
        return None
    digits = at + 13
    while block[digits : digits + 1].isdigit():
        digits += 1
    key = block.find(b'"eventId":"')
    if key >= 0:
        return block[key + 11 : block.find(b'"', key + 11)].decode(), int(block[at + 13 : digits])
    line = block.find(b"id: ")
    return block[line + 4 : block.find(b"\n", line)].decode(), int(block[at + 13 : digits])


@dataclass
class Tally:
    connected: int = 0
    failed: int = 0
    ended: int = 0  # streams the server closed during the run


async def sse_client(host: str, port: int, path: str, seen: dict[str, int], tally: Tally) -> None:
    """One SSE connection until cancelled: `seen` maps each price event's id to its latency (0.1 ms units)."""
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    except OSError:
        tally.failed += 1
        return
    writer.write(f"GET {path} HTTP/1.0\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode())
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if head[9:12] != b"200":
            tally.failed += 1
            return
        tally.connected += 1
        buffer = b""
        while data := await reader.read(1 << 16):
            now_ms = time.time() * 1000
            buffer += data
            while (end := buffer.find(b"\n\n")) >= 0:
                parsed = parse_event(buffer[:end])
                buffer = buffer[end + 2 :]
                if parsed is None:
                    continue  # snapshot, heartbeat
                if parsed[0] in seen:
                    seen["dup"] = seen.get("dup", 0) + 1
                seen[parsed[0]] = int((now_ms - parsed[1]) * 10)
        tally.ended += 1
    except (OSError, asyncio.IncompleteReadError):
        return
    except Exception as exc:  # noqa: BLE001 - a parse bug must show, not look like lost events
        print(f"client of {path} failed: {exc!r}", file=sys.stderr)
    finally:
        writer.close()


async def _clients(spec: dict[str, Any]) -> None:
    lots: list[int] = spec["lots"]
    received: list[dict[str, int]] = []  # per client: event id -> receipt latency (0.1 ms)
    tally = Tally()
    tasks: list[asyncio.Task[None]] = []
    for index in range(spec["count"]):
        seen: dict[str, int] = {}
        received.append(seen)
        path = spec["path"].format(lot=lots[index % len(lots)])
        tasks.append(asyncio.create_task(sse_client(spec["host"], spec["port"], path, seen, tally)))
        if index % spec["batch"] == spec["batch"] - 1:
            await asyncio.sleep(spec["pause_s"])
    deadline = time.monotonic() + 60
    while tally.connected + tally.failed < spec["count"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    print(json.dumps({"ready": tally.connected, "failed": tally.failed}), flush=True)
    window = json.loads(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    expected: dict[str, list[str]] = window["expected"]
    latencies: list[float] = []
    lost = duplicates = 0
    for index, seen in enumerate(received):
        duplicates += seen.pop("dup", 0)
        want = expected.get(str(lots[index % len(lots)]), [])
        lost += sum(1 for event_id in want if event_id not in seen)
        latencies += [seen[event_id] / 10 for event_id in want if event_id in seen]
    cpu = time.process_time()
    result = {"latencies": latencies, "lost": lost, "duplicates": duplicates, "cpu_s": cpu, "ended": tally.ended}
    print(json.dumps(result), flush=True)


@dataclass
class ScreenRun:
    latencies_ms: list[float]
    events: int
    lost: int
    duplicates: int
    ended: int
    clients: int
    server_cores: float
    publisher_cores: float
    client_cores: float
    kib_per_connection: float

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)

    def line(self) -> str:
        extra = f"  publisher {self.publisher_cores:.2f} cores" if self.publisher_cores else ""
        return (
            f"p50={self.p(0.5):6.1f} ms  p95={self.p(0.95):6.1f} ms  p99={self.p(0.99):6.1f} ms  "
            f"deliveries={len(self.latencies_ms)}  events={self.events}  lost={self.lost}  dup={self.duplicates}  "
            f"streams ended by the server={self.ended}  "
            f"clients={self.clients}  server {self.server_cores:.2f} cores{extra}  "
            f"{self.kib_per_connection:.1f} KiB/connection  (load generator {self.client_cores:.2f} cores)"
        )


async def screen_run(
    args: argparse.Namespace,
    *,
    api: Api,
    redis_url: str,
    market: Market,
    clients: int,
    host_port: tuple[str, int],
    path: str,
    server_pids: list[int],
    publisher_pid: int | None,
) -> ScreenRun:
    lots = market.lots[: args.live_lots]
    procs = max(1, -(-clients // args.clients_per_process))
    rss_before = sum(rss_mb(pid) for pid in server_pids)
    loaders = []
    for number in range(procs):
        share = clients // procs + (1 if number < clients % procs else 0)
        shift = number % len(lots)
        spec = {
            "host": host_port[0], "port": host_port[1], "path": path, "lots": lots[shift:] + lots[:shift],
            "count": share, "batch": args.connect_batch, "pause_s": 0.5,
        }  # fmt: skip
        loaders.append(
            subprocess.Popen(  # noqa: S603
                [sys.executable, __file__, "--client-process", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        )
    try:
        ready = [json.loads(loader.stdout.readline()) for loader in loaders if loader.stdout]
        connected = sum(r["ready"] for r in ready)
        if connected < clients:
            print(f"    only {connected} of {clients} clients connected ({sum(r['failed'] for r in ready)} failed)")
        await asyncio.sleep(2)  # settle: snapshots sent, queues drained
        rss_after = sum(rss_mb(pid) for pid in server_pids)
        cpu0 = sum(cpu_seconds(pid) for pid in server_pids)
        pub0 = cpu_seconds(publisher_pid) if publisher_pid else 0.0
        load0 = sum(cpu_seconds(loader.pid) for loader in loaders)
        t0_ms = int(time.time() * 1000)
        wall0 = time.perf_counter()
        await paced_bids(api.port, market, lots, args.seconds)
        t1_ms = int(time.time() * 1000)
        wall = time.perf_counter() - wall0
        cpu = sum(cpu_seconds(pid) for pid in server_pids) - cpu0
        publisher = (cpu_seconds(publisher_pid) - pub0) if publisher_pid else 0.0
        load = sum(cpu_seconds(loader.pid) for loader in loaders) - load0
        await asyncio.sleep(2)  # the last events reach the screens
        expected = await window_events(redis_url, lots, t0_ms, t1_ms)
        message = json.dumps({"expected": expected}) + "\n"
        for loader in loaders:
            if loader.stdin is not None:
                loader.stdin.write(message)
                loader.stdin.flush()
        results = [json.loads(loader.stdout.readline()) for loader in loaders if loader.stdout is not None]
    finally:
        for loader in loaders:
            with contextlib.suppress(subprocess.TimeoutExpired):
                loader.wait(30)
            if loader.poll() is None:
                loader.kill()
    return ScreenRun(
        latencies_ms=[value for result in results for value in result["latencies"]],
        events=sum(len(ids) for ids in expected.values()),
        lost=sum(result["lost"] for result in results),
        duplicates=sum(result["duplicates"] for result in results),
        ended=sum(result["ended"] for result in results),
        clients=connected,
        server_cores=cpu / wall,
        publisher_cores=publisher / wall,
        client_cores=load / wall,
        kib_per_connection=(rss_after - rss_before) * 1024 / max(1, connected),
    )


async def paced_bids(port: int, market: Market, lots: list[int], seconds: float) -> None:
    """Each lot gets one bid per second, the lots' bids spread evenly over the second."""
    connections = [Http(port) for _ in range(8)]
    interval = 1.0 / len(lots)
    started = time.perf_counter()
    pending: set[asyncio.Task[Any]] = set()
    try:
        for number in range(int(seconds * len(lots))):
            delay = started + number * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lot = lots[number % len(lots)]
            who = market.bidders[number % len(market.bidders)]
            body = b'{"amount":%d,"currency":"USD","kind":"max"}' % market.amount(lot)
            http = connections[number % len(connections)]
            task = asyncio.create_task(_post_on(http, f"/api/v1/lots/{lot}/bids", body, who.auth))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    finally:
        for http in connections:
            http.close()


_locks: dict[int, asyncio.Lock] = {}


async def _post_on(http: Http, path: str, body: bytes, auth: bytes) -> None:
    lock = _locks.setdefault(id(http), asyncio.Lock())
    async with lock:  # one request at a time per keep-alive connection
        status, reply = await http.post(path, body, auth)
    if status != 200 or b'"ACCEPTED"' not in reply:
        print(f"    bid refused: {status} {reply[:200]!r}")


async def window_events(redis_url: str, lots: list[int], t0_ms: int, t1_ms: int) -> dict[str, list[str]]:
    """Event ids (lot:streamId) of the price events accepted inside the window, per lot."""
    from redis.asyncio import Redis

    from bidding.engine import events_key

    redis: Redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        out: dict[str, list[str]] = {}
        for lot in lots:
            entries: Any = await redis.xrange(events_key(lot), min=str(t0_ms - 1000), max="+")
            accepted = [(entry_id, int(fields.get("accepted_at_ms", 0))) for entry_id, fields in entries]
            out[str(lot)] = [f"{lot}:{entry_id}" for entry_id, at_ms in accepted if t0_ms <= at_ms <= t1_ms]
        return out
    finally:
        await redis.aclose()


def screen_summary(label: str, runs: list[ScreenRun], goal_ms: float) -> str:
    p99 = statistics.median(r.p(0.99) for r in runs)
    return (
        f"  {label} median of {len(runs)} runs: p50={statistics.median(r.p(0.5) for r in runs):.1f} ms  "
        f"p95={statistics.median(r.p(0.95) for r in runs):.1f} ms  p99={p99:.1f} ms (goal <= {goal_ms:.0f} ms: "
        f"{'met' if p99 <= goal_ms else 'NOT met'})  lost={sum(r.lost for r in runs)}  "
        f"server {statistics.median(r.server_cores for r in runs):.2f} cores  "
        f"{runs[0].kib_per_connection:.1f} KiB/connection (first run; later runs reuse the memory)"
    )


async def figure_native(args: argparse.Namespace, api: Api, redis_url: str, market: Market) -> None:
    clients = args.native_clients * args.workers
    print(f"\n2a. Bid -> screen, native SSE: {clients} clients ({args.native_clients} per worker, --workers "
          f"{args.workers}) over {args.live_lots} lots, 1 bid/s per lot, {args.seconds:.0f} s per run")  # fmt: skip
    runs = []
    for number in range(1, args.runs + 1):
        run = await screen_run(
            args, api=api, redis_url=redis_url, market=market, clients=clients, host_port=("127.0.0.1", api.port),
            path="/api/v1/stream?lots={lot}", server_pids=api.worker_pids(), publisher_pid=None,
        )  # fmt: skip
        runs.append(run)
        print(f"  run {number}  {run.line()}")
    print(screen_summary("native", runs, 150))


async def figure_nchan(args: argparse.Namespace, api: Api, redis_url: str, market: Market, workdir: Path) -> None:
    from bidding.nchan import NginxProcess
    from bidding.settings import NchanSettings

    settings = NchanSettings(
        nchan_listen=f"127.0.0.1:{free_port()}",
        nchan_publish_port=free_port(),
        nchan_api_upstream=f"127.0.0.1:{api.port}",
        nchan_worker_connections=max(1024, args.nchan_clients * 2 + 1024),
    )
    nginx = NginxProcess(settings, workdir / "nchan").start()
    env = {
        **os.environ,
        "AUCTION_HUB_REDIS_URL": redis_url,
        "AUCTION_HUB_NCHAN_PUBLISH_PORT": str(settings.nchan_publish_port),
        "AUCTION_HUB_LOG_LEVEL": "WARNING",
    }
    publisher = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "hub.cli", "nchan", "publish"], env=env,
        stdout=(workdir / "publisher.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    print(f"\n2b. Bid -> screen, nchan: {args.nchan_clients} clients over {args.live_lots} lots, 1 bid/s per lot, "
          f"{args.seconds:.0f} s per run (nginx 1 worker; the hub's publisher is one more process)")  # fmt: skip
    try:
        await asyncio.sleep(2)  # the publisher discovers the lots
        host, port = settings.nchan_listen.rsplit(":", 1)
        runs = []
        for number in range(1, args.runs + 1):
            run = await screen_run(
                args, api=api, redis_url=redis_url, market=market, clients=args.nchan_clients,
                host_port=(host, int(port)), path="/nchan/lots?lots={lot}", server_pids=nginx.pids()[1:],
                publisher_pid=publisher.pid,
            )  # fmt: skip
            runs.append(run)
            print(f"  run {number}  {run.line()}")
        print(screen_summary("nchan", runs, 100))
    finally:
        stop(publisher)
        nginx.stop()


# -- main ---------------------------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, workdir: Path, database_url: str) -> None:
    redis = EmbeddedRedis(workdir / "redis").start()  # AOF, appendfsync always
    redis_url = redis.url
    env = {
        **os.environ,
        "AUCTION_HUB_DATABASE_URL": database_url,
        "AUCTION_HUB_JWT_SECRET": JWT_SECRET,
        "AUCTION_HUB_BCRYPT_ROUNDS": "4",
        "AUCTION_HUB_INDEX_PATH": str(workdir / "index"),
        "AUCTION_HUB_REDIS_URL": redis_url,
        "AUCTION_HUB_BID_RATE_LIMIT": "10000",
        # A connection burst opens one Redis connection per connecting SSE client (state, clock, replay);
        # redis-py's pool refuses past its size instead of waiting, so the burst needs the room.
        "AUCTION_HUB_REDIS_MAX_CONNECTIONS": "1024",
        "AUCTION_HUB_SSE_QUEUE_SIZE": "1000",
        "AUCTION_HUB_LOG_LEVEL": "WARNING",
    }
    api = start_api(env, workdir, args.workers)
    routes_api = None
    try:
        if args.only in (None, "accept") and not args.no_routes_baseline:
            baseline = {"AUCTION_HUB_BID_LANE": "false", "AUCTION_HUB_BID_REDIS_MUX": "false"}
            routes_api = start_api({**env, **baseline}, workdir, args.workers)
        market = await build_market(api.url, database_url, args.lots, args.bidders)
        print(f"{os.cpu_count()} cores; market: {len(market.lots)} live lots, {len(market.bidders)} buyers")
        if args.only in (None, "accept"):
            await figure_accept(args, api, routes_api, redis_url, market, redis.pid)
        if args.only in (None, "native"):
            await figure_native(args, api, redis_url, market)
        if args.only in (None, "nchan"):
            await figure_nchan(args, api, redis_url, market, workdir)
    finally:
        stop(api.process)
        if routes_api is not None:
            stop(routes_api.process)
        redis.stop()


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--client-process":
        client_main(json.loads(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller numbers: about 2 minutes")
    parser.add_argument("--only", choices=["accept", "native", "nchan"], default=None)
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3, quick 2)")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run (default 15, quick 6)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the API")
    parser.add_argument(
        "--no-routes-baseline", action="store_true", help="skip the bid-accept baseline (FastAPI routes, redis-py pool)"
    )
    parser.add_argument("--lots", type=int, default=1000)
    parser.add_argument("--bidders", type=int, default=50)
    parser.add_argument("--live-lots", type=int, default=100)
    parser.add_argument("--native-clients", type=int, default=None, help="per worker (default 2,000, quick 500)")
    parser.add_argument("--nchan-clients", type=int, default=None, help="default 10,000, quick 2,000")
    parser.add_argument("--connect-batch", type=int, default=200, help="SSE clients connecting per 0.5 s")
    parser.add_argument("--keep", type=Path, default=None, help="a directory for logs and nginx's prefix, kept")
    parser.add_argument("--clients-per-process", type=int, default=5000, help="SSE connections per load process")
    args = parser.parse_args()
    args.runs = args.runs or (2 if args.quick else 3)
    args.seconds = args.seconds or (6.0 if args.quick else 15.0)
    args.native_clients = args.native_clients or (500 if args.quick else 2000)
    args.nchan_clients = args.nchan_clients or (2000 if args.quick else 10_000)

    database_url = ADMIN_URL.rsplit("/", 1)[0] + f"/ah_bench_bidding_{os.getpid()}"
    ensure_database(database_url)
    apply_migrations(database_url)
    try:
        with tempfile.TemporaryDirectory(prefix="ah_bench_bidding_") as tmp:
            asyncio.run(bench(args, Path(args.keep or tmp), database_url))
    finally:
        drop_database(database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
