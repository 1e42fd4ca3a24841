"""Excel bulk upload: wall time of POST /api/v1/cars/bulk-upload for a 10,000-row workbook, and rows/s.

The API app runs in this process (httpx over ASGI, the same code `auction-hub api` serves) on its own
database. Each run uploads the same workbook as a new dealer (10,000 cars created), then uploads it again
(10,000 duplicates, nothing created). Prints the median over the runs. Goal: a 10,000-row upload < 30 s.

    python bench/bulk_upload.py [--rows 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from openpyxl import Workbook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import BenchHub  # noqa: E402
from marketplace.bulk_upload import COLUMN_NAMES, XLSX_MEDIA_TYPE  # noqa: E402
from tests.marketplace.api_client import marketplace_client, sign_up  # noqa: E402
from tests.marketplace.cars_helpers import car_fields, insert_dealer  # noqa: E402


def workbook(rows: int) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Cars")
    sheet.append(list(COLUMN_NAMES))
    for _ in range(rows):
        fields = car_fields()
        sheet.append([fields.get(name) for name in COLUMN_NAMES])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def measure(database_url: str, content: bytes, rows: int, runs: int) -> tuple[list[float], list[float]]:
    first: list[float] = []
    again: list[float] = []
    with tempfile.TemporaryDirectory() as index_dir:
        async with marketplace_client(database_url, Path(index_dir), max_request_bytes=64 * 1024 * 1024) as client:
            for run in range(runs):
                member = await sign_up(client, f"bench{run}@example.com", role="dealer")
                insert_dealer(database_url, member.id, name=f"Bench Motors {run}")
                for label, times, expected in (("created", first, rows), ("duplicate", again, rows)):
                    started = time.perf_counter()
                    response = await client.post(
                        "/api/v1/cars/bulk-upload",
                        files={"file": ("cars.xlsx", content, XLSX_MEDIA_TYPE)},
                        headers=member.headers,
                        timeout=300,
                    )
                    elapsed = time.perf_counter() - started
                    data = response.json()["data"]
                    if response.status_code != 200 or data[f"{label}_count"] != expected:
                        raise SystemExit(f"run {run}: unexpected answer {response.status_code} {str(data)[:300]}")
                    times.append(elapsed)
                    print(f"run {run + 1}: {label:9} {rows:,} rows in {elapsed:6.2f} s ({rows / elapsed:,.0f} rows/s)")
    return first, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    content = workbook(args.rows)
    print(f"workbook: {args.rows:,} rows, {len(content) / 1024:,.0f} KiB")
    with tempfile.TemporaryDirectory() as workdir:
        hub = BenchHub(Path(workdir))
        with hub.stack:
            database_url = hub.create_database()
            first, again = asyncio.run(measure(database_url, content, args.rows, args.runs))
            with psycopg.connect(database_url) as conn:
                count = conn.execute("SELECT count(*) FROM vehicles").fetchone()
    assert count is not None  # noqa: S101
    created, dup = statistics.median(first), statistics.median(again)
    print(
        f"bulk upload {args.rows:,} rows, median of {args.runs}: new cars {created:.2f} s "
        f"({args.rows / created:,.0f} rows/s, max {max(first):.2f} s); "
        f"re-upload (all duplicates) {dup:.2f} s ({args.rows / dup:,.0f} rows/s); "
        f"{count[0]:,} cars stored; goal < 30 s: {'met' if max(first) < 30 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
