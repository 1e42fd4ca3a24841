"""Write-path latency: login and create-car under N concurrent clients, against a real API process.

A fresh migrated database, `auction-hub api` (uvicorn) on a free port, one dealer account (and dealership row)
per client; then every client signs in, or lists cars, back to back, all at once. Prints p50/p95/p99 and
requests/s per run, and the bcrypt cost factor (login is bcrypt-bound: one verification per sign-in).

    .venv/bin/python bench/api_write.py [--clients 50] [--runs 3] [--bcrypt-rounds 12] [--requests 10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ADMIN_URL, percentile  # noqa: E402
from hub.broker import free_port  # noqa: E402
from marketplace.migrate import apply_migrations, drop_database, ensure_database  # noqa: E402
from marketplace.vin import make_vin  # noqa: E402
from tests.pipeline import wait_until  # noqa: E402

PASSWORD = "bench password 42"  # noqa: S105 - accounts of a throwaway database
JWT_SECRET = "bench-secret-" + "b" * 40  # noqa: S105
SERIALS = itertools.count(1)
RNG = random.Random(7)
ZIP_CODE = "80264"  # Denver, in marketplace/data/us_locations.csv


@dataclass
class Client:
    email: str
    http: httpx.AsyncClient
    headers: dict[str, str]


@dataclass
class RunResult:
    latencies_ms: list[float]
    errors: int
    seconds: float

    def line(self, label: str) -> str:
        values = self.latencies_ms
        return (
            f"{label:<11} n={len(values):>5}  p50={percentile(values, 0.50):7.1f} ms  "
            f"p95={percentile(values, 0.95):7.1f} ms  p99={percentile(values, 0.99):7.1f} ms  "
            f"{len(values) / self.seconds:7.1f} req/s  errors={self.errors}"
        )


def start_api(database_url: str, workdir: Path, port: int, rounds: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AUCTION_HUB_DATABASE_URL": database_url,
        "AUCTION_HUB_JWT_SECRET": JWT_SECRET,
        "AUCTION_HUB_BCRYPT_ROUNDS": str(rounds),
        "AUCTION_HUB_INDEX_PATH": str(workdir / "index"),
        "AUCTION_HUB_DB_POOL_SIZE": "20",
        "AUCTION_HUB_LOG_LEVEL": "WARNING",
    }
    log = (workdir / "api.log").open("wb")
    command = [sys.executable, "-m", "hub.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen([*command, "--workers", str(workers)], env=env, stdout=log, stderr=log)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited; see {workdir / 'api.log'}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code in {200, 503}
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=60, what="the API to answer")
    return process


def car_json(zip_code: str) -> dict[str, Any]:
    return {
        "vin": make_vin(RNG, "1FT", "FW1E5", 2022, next(SERIALS)),
        "make": "Ford", "model": "F-150", "trim": "XLT", "year": 2022, "mileage": 18_000, "condition_grade": 4.4,
        "body_type": "truck", "fuel": "gasoline", "transmission": "automatic", "drivetrain": "4wd",
        "exterior_color": "White", "zip": zip_code, "asking_price": 41_500, "description": "One owner",
    }  # fmt: skip


async def sign_up_dealers(base_url: str, database_url: str, count: int) -> list[Client]:
    clients = []
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:

        async def register(n: int) -> int:
            body = {"email": f"dealer{n}@bench.example", "password": PASSWORD, "full_name": f"Dealer {n}"}
            response = await http.post("/api/v1/auth/register", json={**body, "role": "dealer"})
            response.raise_for_status()
            return int(response.json()["data"]["id"])

        user_ids = await asyncio.gather(*(register(n) for n in range(count)))
    with psycopg.connect(database_url, autocommit=True) as conn:
        for n, user_id in enumerate(user_ids):
            conn.execute(
                "INSERT INTO dealers (owner_id, name, city, state, zip, lat, lon, status) "
                "VALUES (%s, %s, 'Denver', 'CO', '80202', 39.75, -104.99, 'verified')",
                (user_id, f"Bench Motors {n}"),
            )
    for n in range(count):
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        clients.append(Client(f"dealer{n}@bench.example", httpx.AsyncClient(base_url=base_url, timeout=120,
                                                                            limits=limits), {}))  # fmt: skip
    return clients


async def login(client: Client) -> httpx.Response:
    response = await client.http.post("/api/v1/auth/login", data={"username": client.email, "password": PASSWORD})
    if response.status_code == 200:
        client.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    return response


def create_car(zip_code: str) -> Callable[[Client], Awaitable[httpx.Response]]:
    async def call(client: Client) -> httpx.Response:
        return await client.http.post("/api/v1/cars", json=car_json(zip_code), headers=client.headers)

    return call


async def run(
    clients: list[Client], call: Callable[[Client], Awaitable[httpx.Response]], per_client: int, ok: int
) -> RunResult:
    latencies: list[float] = []
    errors = 0

    async def one_client(client: Client) -> None:
        nonlocal errors
        for _ in range(per_client):
            started = time.perf_counter()
            response = await call(client)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != ok:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(one_client(client) for client in clients))
    return RunResult(latencies, errors, time.perf_counter() - started)


def bcrypt_ms(rounds: int) -> float:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds))
    started = time.perf_counter()
    for _ in range(3):
        bcrypt.checkpw(PASSWORD.encode(), hashed)
    return (time.perf_counter() - started) / 3 * 1000


async def bench(args: argparse.Namespace, base_url: str, database_url: str) -> None:
    clients = await sign_up_dealers(base_url, database_url, args.clients)
    try:
        await run(clients, login, 1, 200)  # warm-up, and every client holds a token
        car = create_car(ZIP_CODE)
        await run(clients, car, 1, 201)
        print(f"{args.clients} concurrent clients, {args.requests} requests each per run, {args.runs} runs")
        results: dict[str, list[RunResult]] = {"login": [], "create-car": []}
        for number in range(1, args.runs + 1):
            for label, call, ok in (("login", login, 200), ("create-car", car, 201)):
                result = await run(clients, call, args.requests, ok)
                results[label].append(result)
                print(f"run {number}  " + result.line(label))
        for label, runs in results.items():
            merged = RunResult(
                [value for result in runs for value in result.latencies_ms],
                sum(result.errors for result in runs),
                sum(result.seconds for result in runs),
            )
            print("all    " + merged.line(label))
    finally:
        await asyncio.gather(*(client.http.aclose() for client in clients))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=10, help="requests per client per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bcrypt-rounds", type=int, default=12, help="the production default is 12")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()

    database_url = ADMIN_URL.rsplit("/", 1)[0] + f"/ah_bench_write_{os.getpid()}"
    ensure_database(database_url)
    apply_migrations(database_url)
    port = free_port()
    cores = os.cpu_count()
    print(f"bcrypt cost factor {args.bcrypt_rounds} (2^{args.bcrypt_rounds} rounds): "
          f"{bcrypt_ms(args.bcrypt_rounds):.0f} ms per verification on one core; {cores} cores")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ah_bench_write_") as tmp:
        api = start_api(database_url, Path(tmp), port, args.bcrypt_rounds, args.workers)
        try:
            asyncio.run(bench(args, f"http://127.0.0.1:{port}", database_url))
        finally:
            api.terminate()
            api.wait(timeout=30)
            drop_database(database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
