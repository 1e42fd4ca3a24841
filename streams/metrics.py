"""Counters and latency histograms of the stream worker, rendered in Prometheus' text format on its metrics page."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

# Seconds: fine below a second (the freshness goal), coarse above.
LATENCY_BUCKETS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)


@dataclass
class Histogram:
    """Cumulative-on-render histogram: `counts[i]` holds the observations in (bounds[i-1], bounds[i]]."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(init=False)  # one slot per bound, the last one for +Inf
    total: float = 0.0
    observations: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe_many(self, values: Iterable[float]) -> None:
        for value in values:
            self.counts[bisect_left(self.bounds, value)] += 1
            self.total += value
            self.observations += 1

    def render(self, name: str) -> list[str]:
        lines = []
        running = 0
        for bound, count in zip([*map(repr, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {running}')
        return [*lines, f"{name}_sum {self.total:.6f}", f"{name}_count {self.observations}"]


@dataclass
class WorkerMetrics:
    counters: Counter[str] = field(default_factory=Counter)
    histograms: dict[str, Histogram] = field(default_factory=dict)
    ready: bool = False

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def observe(self, name: str, values: Iterable[float]) -> None:
        self.histograms.setdefault(name, Histogram()).observe_many(values)

    def render(self) -> str:
        lines = [f"auction_hub_worker_ready {int(self.ready)}"]
        lines += [f"auction_hub_{name}_total {value}" for name, value in sorted(self.counters.items())]
        for name, histogram in sorted(self.histograms.items()):
            lines += histogram.render(f"auction_hub_{name}_seconds")
        return "\n".join(lines) + "\n"
