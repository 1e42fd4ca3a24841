"""What an index commit costs the worker's process: CPU per commit of the tantivy writer by batch size.

A fresh index of `--documents` generated vehicles (committed in batches of 5,000), then, for each batch size,
`--commits` rounds of `upsert(batch of updated documents)` + `flush()` (tantivy commit + reload), as the vehicle
agent does once per batch while streaming. After each size the writer idles `--settle` seconds so the merges
its commits started are counted too. CPU is the whole process's (every tantivy thread: indexing, segment
updater, merges), from getrusage. Prints per size the median over `--runs` of CPU per commit, CPU per
document and the wall time of one flush.

    .venv/bin/python bench/index_commit.py [--documents 20000 --commits 40 --sizes 1,50,200,1000 --runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_load import generate_documents  # noqa: E402
from connectors.search.tantivy_index import TantivyIndex  # noqa: E402
from schemas.vehicle import VehicleDocument  # noqa: E402

LOAD_BATCH = 5_000


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def one_run(
    documents: list[VehicleDocument], sizes: list[int], commits: int, settle_s: float, seed: int
) -> dict[int, tuple[float, float]]:
    """size -> (CPU seconds per commit, wall seconds per flush)."""
    rng = random.Random(seed)  # noqa: S311 - load generation
    results: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ah-commit-") as directory:
        index = TantivyIndex(Path(directory), writer=True)
        try:
            for start in range(0, len(documents), LOAD_BATCH):
                await index.upsert(documents[start : start + LOAD_BATCH])
                await index.flush()
            time.sleep(settle_s)
            version = 1
            for size in sizes:
                cpu_before, flush_wall = process_cpu(), 0.0
                for _ in range(commits):
                    version += 1
                    batch = [
                        document.model_copy(update={"mileage": rng.randrange(300_000), "version": version})
                        for document in rng.sample(documents, size)
                    ]
                    await index.upsert(batch)
                    started = time.perf_counter()
                    await index.flush()
                    flush_wall += time.perf_counter() - started
                time.sleep(settle_s)
                results[size] = ((process_cpu() - cpu_before) / commits, flush_wall / commits)
        finally:
            await index.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--commits", type=int, default=40)
    parser.add_argument("--sizes", default="1,50,200,1000", help="documents per commit, comma-separated")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds after each size (merges)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(part) for part in args.sizes.split(",")]
    documents = list(generate_documents(args.documents))
    print(f"$ python bench/index_commit.py {' '.join(sys.argv[1:])}".rstrip())
    runs = []
    for run in range(args.runs):
        runs.append(asyncio.run(one_run(documents, sizes, args.commits, args.settle, seed=run)))
        print(f"run {run + 1}: " + ", ".join(f"{size}: {cpu * 1000:.0f} ms CPU" for size, (cpu, _) in runs[-1].items()))
    print(f"tantivy writer, {args.documents:,} documents, {args.commits} commits per size, median of {args.runs} runs:")
    for size in sizes:
        cpu = statistics.median(run[size][0] for run in runs)
        wall = statistics.median(run[size][1] for run in runs)
        print(
            f"  {size:>5} documents per commit: {cpu * 1000:7.1f} ms CPU per commit, "
            f"{cpu / size * 1e6:7.0f} us CPU per document, flush {wall * 1000:6.1f} ms wall"
        )


if __name__ == "__main__":
    main()
