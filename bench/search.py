"""Search front figures at 1,000,000 vehicles: the engine alone beside the same searches through HTTP.

A tantivy index of N realistic vehicles (built once, cached under `var/bench/`) and a seeded list of buyer
searches: text + 2-3 filters, browse by make, radius search, deep pages (offset pages and cursor pages
reached by following `next_cursor`); every search computes all facets, as the API does by default.

Phases, each repeated `--runs` times (figures are medians of the per-run percentiles):
- raw engine: `await index.search(build_query(SearchParams(**params)))` on a reader in this process, the
  whole list at 1 and at `--latency-connections` concurrent searches;
- HTTP: uvicorn (`--factory bench.search_load:api_app`, the app `auction-hub api` serves) with 1 and with 2
  workers reading the same directory: the whole list at 1 and at `--latency-connections` keep-alive
  connections (latency), then `--load-connections` connections for `--load-seconds` (requests/s).
The load generator is this process (a minimal HTTP/1.1 client over asyncio streams); it shares the
machine's cores with the server. Any answer other than 200 fails the run.

    .venv/bin/python bench/search.py                 # 1,000,000 vehicles, 2,000 searches, 3 runs
    .venv/bin/python bench/search.py --quick         # 100,000 vehicles, shorter phases
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import peak_rss_mb, percentile  # noqa: E402
from bench.search_load import (  # noqa: E402
    BENCH_DIR,
    KINDS,
    ROOT,
    HttpClient,
    Query,
    Sample,
    ensure_index,
    index_name,
    queries_from_json,
    queries_to_json,
    query_mix,
    run_closed_loop,
)
from connectors.search.tantivy_index import TantivyIndex  # noqa: E402
from hub.broker import free_port  # noqa: E402
from search_api.query import SearchParams, build_query, response_body  # noqa: E402

GOAL_P95_MS = 25.0
GOAL_RATIO = 1.5
GOAL_RATE = 500.0
# Searches sent before measuring (page cache, code paths); the aggregation caches hold far fewer than the list.
WARM_UP = 300


@dataclass
class Phase:
    """One measured configuration; `runs` holds each repetition's samples and its requests/s."""

    mode: str
    connections: int
    runs: list[tuple[list[Sample], float]] = field(default_factory=list)

    def stat(self, fraction: float, kind: str | None = None) -> float:
        """Median over runs of the run's percentile, in ms."""
        values = []
        for samples, _ in self.runs:
            chosen = [sample.seconds for sample in samples if kind is None or sample.kind == kind]
            values.append(percentile(chosen, fraction) * 1000)
        return statistics.median(values) if values else float("nan")

    @property
    def rate(self) -> float:
        return statistics.median(rate for _, rate in self.runs) if self.runs else float("nan")


# -- raw engine -----------------------------------------------------------------------------------------


async def raw_pass(
    index: TantivyIndex, queries: Sequence[Query], connections: int, *, facets: bool = True
) -> tuple[list[Sample], float]:
    """Every query once through the engine, `connections` at a time; (samples, searches/s)."""
    position = 0
    samples: list[Sample] = []

    async def client() -> None:
        nonlocal position
        while position < len(queries):
            query = queries[position]
            position += 1
            started = time.perf_counter()
            await index.search(build_query(SearchParams(**query.params, facets=facets)))
            samples.append(Sample(query.kind, time.perf_counter() - started, 200))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return samples, len(samples) / (time.perf_counter() - started)


async def body_cost(index: TantivyIndex, queries: Sequence[Query]) -> Phase:
    """Engine + the response body the API sends (`response_body` + orjson), in process: where HTTP time goes."""
    samples = []
    for query in queries:
        started = time.perf_counter()
        params = SearchParams(**query.params)
        search = build_query(params)
        orjson.dumps(response_body(params, search, await index.search(search)))
        samples.append(Sample(query.kind, time.perf_counter() - started, 200))
    phase = Phase("engine + response body (in process)", 1)
    phase.runs.append((samples, 0.0))
    return phase


async def facets_off_cost(index: TantivyIndex, queries: Sequence[Query], connections: int) -> list[Phase]:
    """The engine on the same searches with `facets=false`, at 1 and at `connections` searches at a time: how
    much of the engine time the facets take, and the searches/s these 2 cores would top out at without them."""
    phases = []
    for count in dict.fromkeys((1, connections)):
        phase = Phase("raw engine, facets off (in process)", count)
        phase.runs.append(await raw_pass(index, queries, count, facets=False))
        phases.append(phase)
    return phases


async def raw_phases(index: TantivyIndex, queries: Sequence[Query], runs: int, latency_conns: int) -> list[Phase]:
    phases = [Phase("raw engine (in process)", 1), Phase("raw engine (in process)", latency_conns)]
    await raw_pass(index, queries[:WARM_UP], latency_conns)  # warm-up: page cache, aggregation caches
    for run in range(runs):
        for phase in phases:
            phase.runs.append(await raw_pass(index, queries, phase.connections))
            print(f"  {_line(phase)}  (run {run + 1})", flush=True)
    return phases


# -- HTTP -----------------------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    command: list[str]

    def worker_pids(self) -> list[int]:
        children = psutil.Process(self.process.pid).children(recursive=True)
        return [child.pid for child in children] or [self.process.pid]


@dataclass(frozen=True)
class ServerConfig:
    """`N`: `python -m uvicorn --workers N` as is; `N-nodelay`: the same workers on a TCP_NODELAY listener."""

    workers: int
    nodelay: bool

    @classmethod
    def parse(cls, text: str) -> ServerConfig:
        count, _, variant = text.partition("-")
        if variant not in ("", "nodelay"):
            raise argparse.ArgumentTypeError(f"{text!r}: write N or N-nodelay, e.g. 2-nodelay")
        return cls(int(count), variant == "nodelay")

    @property
    def label(self) -> str:
        plural = "s" if self.workers > 1 else ""
        return f"HTTP {self.workers} worker{plural}" + (", TCP_NODELAY" if self.nodelay else "")

    def command(self, port: int) -> list[str]:
        if self.nodelay:
            return [sys.executable, "-m", "bench.search_load", "--port", str(port), "--workers", str(self.workers)]
        return [
            sys.executable, "-m", "uvicorn", "--factory", "bench.search_load:api_app", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(self.workers), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip


@contextmanager
def uvicorn_server(vehicles: int, config: ServerConfig) -> Iterator[Server]:
    port = free_port()
    command = config.command(port)
    env = {
        **os.environ,
        "AUCTION_HUB_INDEX_BACKEND": "tantivy",
        "AUCTION_HUB_INDEX_PATH": str(BENCH_DIR),
        "AUCTION_HUB_INDEX_NAME": index_name(vehicles),
    }
    log = (BENCH_DIR / f"uvicorn-{config.workers}w.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield Server(process, port, command)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def wait_ready(server: Server, vehicles: int, workers: int, timeout: float = 120) -> None:
    """Until /health answers with the whole index, on each worker (one new connection per try)."""
    deadline = time.monotonic() + timeout
    ready = 0
    while ready < workers * 4:
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not come up; see {BENCH_DIR}/uvicorn-{workers}w.log")
        client = HttpClient("127.0.0.1", server.port)
        try:
            status, body = await client.get("/health")
            documents = orjson.loads(body).get("index", {}).get("documents") if status == 200 else None
            if documents is not None and documents != vehicles:
                raise RuntimeError(f"the API sees {documents} documents, not {vehicles}")
            ready = ready + 1 if status == 200 else 0
        except OSError:
            await asyncio.sleep(0.2)
        finally:
            await client.close()


async def http_phases(
    vehicles: int, config: ServerConfig, queries: Sequence[Query], args: argparse.Namespace
) -> list[Phase]:
    mode = config.label
    workers = config.workers
    phases = [
        Phase(mode, 1),
        Phase(mode, args.latency_connections),
        Phase(f"{mode}, load", args.load_connections),
    ]
    with uvicorn_server(vehicles, config) as server:
        print(f"  server: {shlex.join(server.command)}", flush=True)
        await wait_ready(server, vehicles, workers)
        warm = await run_closed_loop(server.port, queries[:WARM_UP], connections=args.latency_connections)
        _check(warm.samples, warm.errors, "warm-up")
        for run in range(args.runs):
            for phase in phases:
                duration = args.load_seconds if phase is phases[2] else None
                result = await run_closed_loop(server.port, queries, connections=phase.connections, duration_s=duration)
                _check(result.samples, result.errors, f"{phase.mode} c={phase.connections}")
                phase.runs.append((result.samples, result.rate))
                print(f"  {_line(phase)}  (run {run + 1})", flush=True)
        rss = ", ".join(f"{peak_rss_mb(pid):.0f}" for pid in server.worker_pids())
        print(f"  peak RSS per worker process: {rss} MB", flush=True)
    return phases


def _check(samples: Sequence[Sample], errors: Sequence[str], what: str) -> None:
    bad = [sample for sample in samples if sample.status != 200]
    if bad or errors:
        for error in errors[:10]:
            print(f"    {error}")
        raise SystemExit(f"FAILED: {what}: {len(bad)} non-200 answers, {len(errors)} errors")


# -- report ---------------------------------------------------------------------------------------------


def _line(phase: Phase) -> str:
    return (
        f"{phase.mode:<38} c={phase.connections:<3} p50 {phase.stat(0.5):7.2f}  p95 {phase.stat(0.95):7.2f}  "
        f"p99 {phase.stat(0.99):7.2f} ms  {phase.rate:7.1f} req/s"
    )


def report(raw_runs: list[Phase], servers: list[tuple[ServerConfig, list[Phase]]], extra: list[Phase]) -> None:
    raw = {phase.connections: phase for phase in raw_runs}
    phases = [*raw_runs, *(phase for _, group in servers for phase in group)]
    print("\nmode                                   conns   p50 ms   p95 ms   p99 ms    req/s   p50/raw  p95/raw")
    for phase in [*phases, *extra]:
        base = raw.get(phase.connections) if phase.mode.startswith("HTTP") else None
        ratios = (
            f"{phase.stat(0.5) / base.stat(0.5):8.2f}x {phase.stat(0.95) / base.stat(0.95):7.2f}x"
            if base is not None
            else f"{'':>9} {'':>8}"
        )
        rate = f"{phase.rate:8.1f}" if phase.runs[0][1] else f"{'':>8}"
        print(
            f"{phase.mode:<38} {phase.connections:>5} {phase.stat(0.5):8.2f} {phase.stat(0.95):8.2f} "
            f"{phase.stat(0.99):8.2f} {rate} {ratios}"
        )
    print("\np50 / p95 ms per kind of search")
    print(f"{'mode':<38} {'conns':>5} " + " ".join(f"{kind:>15}" for kind in KINDS))
    for phase in [*phases, *extra]:
        cells = " ".join(f"{phase.stat(0.5, kind):6.1f} / {phase.stat(0.95, kind):6.1f}" for kind in KINDS)
        print(f"{phase.mode:<38} {phase.connections:>5} {cells}")
    _goals(servers, raw)


def _goals(servers: Sequence[tuple[ServerConfig, list[Phase]]], raw: dict[int, Phase]) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for config, (sequential, latency, load) in servers:
        if config.workers != 2:
            continue
        p95 = latency.stat(0.95)
        ratio = sequential.stat(0.95) / raw[1].stat(0.95)
        ratio_loaded = latency.stat(0.95) / raw[latency.connections].stat(0.95)
        print(f"\ngoals, {config.label}:")
        goal = f"{GOAL_P95_MS:.0f} ms"
        print(f"  HTTP p95 at {latency.connections} connections {p95:.1f} ms <= {goal}: {verdict(p95 <= GOAL_P95_MS)}")
        print(
            f"  HTTP/raw p95 at 1 connection {ratio:.2f}x <= {GOAL_RATIO}x: {verdict(ratio <= GOAL_RATIO)} "
            f"(at {latency.connections} connections: {ratio_loaded:.2f}x)"
        )
        if ratio < 1:
            print(
                "    HTTP cannot be faster than the engine it calls: the phases ran under different machine load "
                "(other processes), so this ratio is not an overhead figure; rerun on a quiet machine"
            )
        print(
            f"  {load.rate:.0f} requests/s at {load.connections} connections >= {GOAL_RATE:.0f}: "
            f"{verdict(load.rate >= GOAL_RATE)}"
        )


# -- main -----------------------------------------------------------------------------------------------


async def load_queries(path: Path, index: TantivyIndex, record: dict[str, Any], size: int, seed: int) -> list[Query]:
    """The query list, cached beside the index (cursor pages depend on its data)."""
    cache = path.with_name(f"{path.name}.queries-{seed}-{size}.json")
    if cache.exists():
        stored = orjson.loads(cache.read_bytes())
        if stored.get("built_at") == record["built_at"]:
            return queries_from_json(stored["queries"])
    started = time.perf_counter()
    queries = await query_mix(index, size, seed)
    cache.write_bytes(orjson.dumps({"built_at": record["built_at"], "queries": queries_to_json(queries)}))
    print(f"generated {len(queries)} searches in {time.perf_counter() - started:.0f} s (cursor pages followed)")
    return queries


def _environment() -> str:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{os.cpu_count()} CPUs; uvicorn loop={loop}, http={http}"


async def main(args: argparse.Namespace) -> None:
    command = shlex.join(["python", "bench/search.py", *sys.argv[1:]])
    print(f"$ {command}\n{_environment()}; load generator in this process, sharing the cores with the server")
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path, record = await ensure_index(args.vehicles, rebuild=args.rebuild)
    how = "reused" if record["reused"] else "built"
    print(
        f"index {path}: {args.vehicles:,} vehicles, {how} (build {record['build_seconds']} s on {record['built_at']})"
    )
    index = TantivyIndex(path, writer=False)
    print(f"  {(await index.health()).detail}")
    queries = await load_queries(path, index, record, args.queries, args.seed)
    counts = {kind: sum(query.kind == kind for query in queries) for kind in KINDS}
    distinct = len({query.target for query in queries})
    print(f"{len(queries)} searches ({distinct} distinct): {counts}; {args.runs} runs of each phase\n")
    raw = await raw_phases(index, queries, args.runs, args.latency_connections)
    extra = [await body_cost(index, queries), *await facets_off_cost(index, queries, args.latency_connections)]
    servers = [(config, await http_phases(args.vehicles, config, queries, args)) for config in args.servers]
    report(raw, servers, extra)
    print(f"\n$ {command}")


def _servers(text: str) -> list[ServerConfig]:
    """`1,2,2-nodelay`; `none`: the engine phases only."""
    return [] if text == "none" else [ServerConfig.parse(part) for part in text.split(",")]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vehicles", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true", help="build the index again even if it is cached")
    parser.add_argument("--quick", action="store_true", help="100,000 vehicles, 500 searches, 2 runs, 8 s loads")
    parser.add_argument("--queries", type=int, default=2_000, help="searches in the list (browse pages repeat)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the search list")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--servers",
        type=_servers,
        default="1,2,2-nodelay",
        help="HTTP servers to measure: N (python -m uvicorn --workers N), N-nodelay (see search_load.serve), or none",
    )
    parser.add_argument("--latency-connections", type=int, default=4)
    parser.add_argument("--load-connections", type=int, default=32)
    parser.add_argument("--load-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.quick:
        defaults = {"vehicles": 100_000, "queries": 500, "runs": 2, "load_seconds": 8.0}
        for name, value in defaults.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
