"""Helpers for end-to-end tests: hub processes as real subprocesses, Debezium records, polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

from hub.broker import free_port

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]


def wait_until(probe: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.1, what: str = "") -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or probe}; last value: {last!r}")


def debezium_record(
    table: str,
    op: str,
    *,
    lsn: int,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    prefix: str = "marketplace",
) -> bytes:
    """A change record value as Debezium's PostgreSQL connector writes it (schemas disabled)."""
    now = int(time.time() * 1000)
    return orjson.dumps(
        {
            "before": before,
            "after": after,
            "source": {
                "version": "3.x.Final",
                "connector": "postgresql",
                "name": prefix,
                "ts_ms": now,
                "snapshot": "false",
                "db": "marketplace",
                "schema": "public",
                "table": table,
                "txId": lsn // 100,
                "lsn": lsn,
                "xmin": None,
            },
            "op": op,
            "ts_ms": now,
        }
    )


@dataclass
class HubProcess:
    """One `auction-hub <args>` subprocess with its own environment and log file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> HubProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        return self

    def kill(self) -> None:
        """kill -9: no chance to flush, commit or say goodbye."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def worker_env(bootstrap: str, index_path: Path, *, prefix: str | None = None, **extra: str) -> dict[str, str]:
    """Environment of an isolated worker: its own topic prefix, internal topics, group and metrics port."""
    run = uuid.uuid4().hex[:8]
    prefix = prefix or f"t{run}"
    env = {
        **os.environ,
        "AUCTION_HUB_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUCTION_HUB_TOPIC_PREFIX": prefix,
        "AUCTION_HUB_INDEX_PATH": str(index_path),
        "AUCTION_HUB_APP_ID": f"indexer-{run}",
        "AUCTION_HUB_DEAD_LETTER_TOPIC": f"{prefix}.dead-letter",
        "AUCTION_HUB_DEALER_LINKS_TOPIC": f"{prefix}.dealer-links",
        "AUCTION_HUB_VEHICLE_REFRESH_TOPIC": f"{prefix}.vehicle-refresh",
        "AUCTION_HUB_QNA_REFRESH_TOPIC": f"{prefix}.qna-refresh",
        "AUCTION_HUB_MODERATION_APP_ID": f"moderation-{run}",
        "AUCTION_HUB_MODERATION_DEAD_LETTER_TOPIC": f"{prefix}.moderation-dead-letter",
        "AUCTION_HUB_MODERATION_METRICS_PORT": str(free_port()),
        "AUCTION_HUB_METRICS_PORT": str(free_port()),
        "AUCTION_HUB_SESSION_TIMEOUT_S": "6",
    }
    env.update(extra)
    return env


def pipeline_env(bootstrap: str, workdir: Path, database_url: str) -> dict[str, str]:
    """Environment of an isolated connector + worker pair on `database_url`: its own slot and publication."""
    name = database_url.rsplit("/", 1)[-1]
    return worker_env(
        bootstrap,
        workdir / "index",
        AUCTION_HUB_DATABASE_URL=database_url,
        AUCTION_HUB_PG_SLOT_NAME=f"{name}_slot",
        AUCTION_HUB_PG_PUBLICATION_NAME=f"{name}_pub",
        AUCTION_HUB_PG_HEARTBEAT_INTERVAL_S="1",
    )


def metrics(env: Mapping[str, str]) -> dict[str, float]:
    """The worker's counters from its metrics page; empty while it is not serving."""
    try:
        response = httpx.get(f"http://127.0.0.1:{env['AUCTION_HUB_METRICS_PORT']}/metrics", timeout=2)
    except httpx.HTTPError:
        return {}
    values = {}
    for line in response.text.splitlines():
        name, _, value = line.partition(" ")
        values[name] = float(value)
    return values


def wait_for_worker_ready(worker: HubProcess, timeout: float = 120.0) -> None:
    def ready() -> bool:
        assert worker.alive(), f"worker exited:\n{worker.log_tail()}"
        return metrics(worker.env).get("auction_hub_worker_ready") == 1

    wait_until(ready, timeout=timeout, interval=0.5, what="the worker to join its group")
