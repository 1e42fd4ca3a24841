"""The connector's health and counters, served as `GET /health` (JSON) and `GET /metrics` (Prometheus text).

`/health` answers 200 `{"status": "ok"}` while capture runs, and 503 `{"status": "degraded", "reason": ...}` while
the ERP or Kafka cannot be reached (the breaker's state, since when, how many failures, the last error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger(__name__)


@dataclass
class ErpHealth:
    status: str = "starting"
    reason: str | None = None
    component: str | None = None  # "erp" or "kafka"
    degraded_since: float | None = None
    breaker: str = "closed"
    failures: int = 0
    high_water: int = 0
    open_gaps: int = 0
    last_poll_at: float | None = None
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount

    def ok(self) -> None:
        self.status, self.reason, self.component, self.degraded_since = "ok", None, None, None

    def degraded(self, component: str, reason: str) -> None:
        if self.status != "degraded":
            self.degraded_since = time.time()
        self.status, self.component, self.reason = "degraded", component, reason

    def body(self) -> dict[str, Any]:
        now = time.time()
        return {
            "status": self.status,
            "component": self.component,
            "reason": self.reason,
            "degraded_for_s": None if self.degraded_since is None else round(now - self.degraded_since, 1),
            "breaker": self.breaker,
            "consecutive_failures": self.failures,
            "high_water": self.high_water,
            "open_gaps": self.open_gaps,
            "last_poll_age_s": None if self.last_poll_at is None else round(now - self.last_poll_at, 3),
            "counters": self.counters,
        }

    def metrics_text(self) -> str:
        lines = [
            f"auction_hub_erp_up {1 if self.status == 'ok' else 0}",
            f"auction_hub_erp_breaker_open {1 if self.breaker != 'closed' else 0}",
            f"auction_hub_erp_high_water {self.high_water}",
            f"auction_hub_erp_open_gaps {self.open_gaps}",
        ]
        lines += [f"auction_hub_erp_{name}_total {value}" for name, value in sorted(self.counters.items())]
        return "\n".join(lines) + "\n"


async def serve_health(health: ErpHealth, host: str, port: int) -> asyncio.Server:
    """A minimal HTTP/1.1 server (no dependency): GET /health, GET /metrics; one response per connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1].decode(errors="replace") if request.count(b" ") >= 2 else "/"
            if path.startswith("/metrics"):
                status, kind, body = 200, "text/plain; version=0.0.4", health.metrics_text().encode()
            elif path.startswith("/health"):
                status = 200 if health.status == "ok" else 503
                kind, body = "application/json", orjson.dumps(health.body())
            else:
                status, kind, body = 404, "application/json", b'{"status":"error","error":{"code":"not_found"}}'
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port)
    log.info("ERP connector health on http://%s:%d/health", host, port)
    return server
