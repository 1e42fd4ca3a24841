"""Initial snapshot: N vehicles from PostgreSQL into the search index through the whole pipeline.

Loads N vehicles (not timed), starts tansu, the worker and the API, then starts the connector with a
fresh slot and times until the index holds every vehicle. Prints rows/s, wall time and the peak RSS
(VmHWM) of each process. Goals at 1M: < 3 minutes, every process < 1 GB.

    .venv/bin/python bench/snapshot.py [--vehicles 1000000 --runs 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import BenchHub, peak_rss_mb  # noqa: E402
from marketplace.demo_data import bulk_load_vehicles  # noqa: E402


def one_run(vehicles: int, dealers: int) -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="ah-snap-") as workdir:
        hub = BenchHub(Path(workdir))
        try:
            hub.create_database()
            load_started = time.monotonic()
            bulk_load_vehicles(hub.database_url, vehicles, dealers=dealers)
            hub.settle_database()
            print(
                f"  loaded {vehicles:,} vehicles into PostgreSQL in {time.monotonic() - load_started:.0f}s (not timed)"
            )
            hub.start_broker()
            hub.start_worker()
            hub.start_api()
            started = time.monotonic()
            hub.start("connector", "connect", "postgres")
            hub.wait_for_documents(vehicles, timeout=1800)
            wall = time.monotonic() - started
            rss = {name: peak_rss_mb(process.process.pid) for name, process in hub.processes.items() if process.process}
            if hub.broker is not None and hub.broker.process is not None:
                rss["tansu"] = peak_rss_mb(hub.broker.process.pid)
            return wall, rss
        finally:
            hub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vehicles", type=int, default=1_000_000)
    parser.add_argument("--dealers", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    walls = []
    for run in range(1, args.runs + 1):
        wall, rss = one_run(args.vehicles, args.dealers)
        walls.append(wall)
        memory = ", ".join(f"{name} {mb:,.0f} MB" for name, mb in sorted(rss.items()))
        rate = args.vehicles / wall
        print(f"run {run}: {args.vehicles:,} vehicles in {wall:.1f}s = {rate:,.0f} rows/s; peak RSS: {memory}")
    median = statistics.median(walls)
    print(
        f"snapshot of {args.vehicles:,} vehicles into the index: median wall {median:.1f}s "
        f"({args.vehicles / median:,.0f} rows/s) over {args.runs} run(s); goal < 180 s, each process < 1024 MB"
    )


if __name__ == "__main__":
    main()
