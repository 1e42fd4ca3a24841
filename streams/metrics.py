"""Counters of the stream worker, rendered in Prometheus' text format on its metrics page."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class WorkerMetrics:
    counters: Counter[str] = field(default_factory=Counter)
    ready: bool = False

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def render(self) -> str:
        lines = [f"auction_hub_worker_ready {int(self.ready)}"]
        lines += [f"auction_hub_{name}_total {value}" for name, value in sorted(self.counters.items())]
        return "\n".join(lines) + "\n"
