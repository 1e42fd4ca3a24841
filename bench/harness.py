"""A whole hub for benchmarks: its own database, tansu, connector, worker and API as real processes."""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.broker import EmbeddedBroker, free_port  # noqa: E402
from marketplace.migrate import apply_migrations, drop_database, ensure_database  # noqa: E402
from tests.pipeline import HubProcess, metrics, wait_for_worker_ready, wait_until, worker_env  # noqa: E402

ADMIN_URL = os.environ.get("AUCTION_HUB_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def kept_workdir(path: Path) -> Path:
    """A benchmark's kept working directory, emptied first: a previous run's search index there holds the same
    vehicle ids at newer positions, so this run's changes would be skipped as stale and never show."""
    path = path.resolve()
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the highest resident set size the process has had, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class BenchHub:
    workdir: Path
    name: str = field(default_factory=lambda: f"ah_bench_{uuid.uuid4().hex[:8]}")
    stack: ExitStack = field(default_factory=ExitStack)
    broker: EmbeddedBroker | None = None
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, HubProcess] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return ADMIN_URL.rsplit("/", 1)[0] + f"/{self.name}"

    def create_database(self) -> str:
        ensure_database(self.database_url)
        apply_migrations(self.database_url)
        self.stack.callback(drop_database, self.database_url)
        return self.database_url

    def settle_database(self) -> None:
        """VACUUM ANALYZE and CHECKPOINT after a bulk load, so the timed part does not share the disk and the cores
        with autovacuum and the checkpointer catching up on it (a database that has existed for a while)."""
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            connection.execute("VACUUM (ANALYZE)")
            connection.execute("CHECKPOINT")

    def start_broker(self) -> None:
        self.broker = EmbeddedBroker(log_path=self.workdir / "tansu.log").start()
        self.stack.callback(self.broker.stop)
        self.env = worker_env(
            self.broker.bootstrap_servers,
            self.workdir / "index",
            AUCTION_HUB_DATABASE_URL=self.database_url,
            AUCTION_HUB_PG_SLOT_NAME=f"{self.name}_slot",
            AUCTION_HUB_PG_PUBLICATION_NAME=f"{self.name}_pub",
            AUCTION_HUB_API_PORT=str(free_port()),
            AUCTION_HUB_LOG_LEVEL="WARNING",
        )

    def start(self, name: str, *args: str) -> HubProcess:
        process = HubProcess(list(args), self.env, self.workdir / f"{name}.log").start()
        self.stack.callback(process.stop)
        self.processes[name] = process
        return process

    def start_worker(self) -> HubProcess:
        worker = self.start("worker", "worker")
        wait_for_worker_ready(worker, timeout=180)
        return worker

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['AUCTION_HUB_API_PORT']}"

    def start_api(self) -> HubProcess:
        api = self.start("api", "api")
        wait_until(lambda: self._api_up(), timeout=60, what="the API to answer")
        return api

    def _api_up(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).status_code in {200, 503}
        except httpx.HTTPError:
            return False

    def indexed_documents(self) -> int:
        body: dict[str, Any] = httpx.get(f"{self.api_url}/health", timeout=5).json()
        return int(body.get("index", {}).get("documents", 0))

    def wait_for_documents(self, count: int, timeout: float) -> float:
        """Seconds until the index holds `count` documents."""
        started = time.monotonic()
        wait_until(lambda: self.indexed_documents() >= count, timeout=timeout, interval=0.5, what=f"{count} docs")
        return time.monotonic() - started

    def wait_for_quiet_worker(self, quiet_s: float = 2.0, timeout: float = 120.0) -> float:
        """Seconds until the worker's counters stop moving for `quiet_s`: the snapshot's follow-up work (dealer
        links and refreshes, ERP VIN links, tantivy merges) is done, so a load measured next meets a settled hub."""
        started = time.monotonic()
        last: dict[str, float] = {}
        last_change = started
        while time.monotonic() - last_change < quiet_s:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"the worker was still busy after {timeout:.0f} s")
            now = metrics(self.env)
            if now != last:
                last, last_change = now, time.monotonic()
            time.sleep(0.2)
        return last_change - started

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each hub process and the broker (user + system, from /proc)."""
        pids = {name: process.process.pid for name, process in self.processes.items() if process.process is not None}
        if self.broker is not None and self.broker.process is not None:
            pids["broker"] = self.broker.process.pid
        return {name: process_cpu_seconds(pid) for name, pid in pids.items()}

    def worker_metrics(self) -> dict[str, float]:
        return metrics(self.env)

    def close(self) -> None:
        self.stack.close()


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def histogram_quantile(before: dict[str, float], after: dict[str, float], name: str, fraction: float) -> float | None:
    """A quantile of what a Prometheus histogram of the worker observed between two scrapes, interpolated
    linearly inside its bucket as Prometheus' `histogram_quantile` does; None when it observed nothing."""
    prefix = f'{name}_bucket{{le="'
    buckets: list[tuple[float, float]] = []
    for key, value in after.items():
        if key.startswith(prefix):
            buckets.append((float(key[len(prefix) : -2]), value - before.get(key, 0.0)))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = fraction * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return lower_bound
            share = (rank - lower_count) / (cumulative - lower_count) if cumulative > lower_count else 1.0
            return lower_bound + (upper - lower_bound) * share
        lower_bound, lower_count = upper, cumulative
    return lower_bound
