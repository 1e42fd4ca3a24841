"""Write-path latency: login and create-car under N concurrent clients, against a real API process.

A fresh migrated database, `auction-hub api` (uvicorn, `--workers N`) on a free port, one dealer account (and
dealership row) per client; then every client signs in, or lists cars, back to back, all at once. Prints
p50/p95/p99 and requests/s per run and their medians over the runs, and the bcrypt cost factor (login is
bcrypt-bound: one verification per sign-in).

The clients are by default the minimal keep-alive HTTP/1.1 client of `bench/search_load.py` (one connection
each), which leaves the server most of the 2 cores; `--http httpx` uses one `httpx.AsyncClient` per client.

    .venv/bin/python bench/api_write.py [--clients 50] [--runs 3] [--bcrypt-rounds 12] [--requests 10]
        [--car-requests 40] [--only login|create-car] [--workers 1] [--http raw|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import bcrypt
import httpx
import orjson
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ADMIN_URL, percentile  # noqa: E402
from bench.search_load import HttpClient, HttpError  # noqa: E402
from hub.broker import free_port  # noqa: E402
from marketplace.migrate import apply_migrations, drop_database, ensure_database  # noqa: E402
from marketplace.vin import make_vin  # noqa: E402
from tests.pipeline import wait_until  # noqa: E402

PASSWORD = "bench password 42"  # noqa: S105 - accounts of a throwaway database
JWT_SECRET = "bench-secret-" + "b" * 40  # noqa: S105
SERIALS = itertools.count(1)
RNG = random.Random(7)
ZIP_CODE = "80264"  # Denver, in marketplace/data/us_locations.csv
JSON = ("Content-Type", "application/json")
FORM = ("Content-Type", "application/x-www-form-urlencoded")


class Transport(Protocol):
    async def request(
        self, method: str, target: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class HttpxTransport:
    """One `httpx.AsyncClient` with one keep-alive connection (what the figures before the raw client used)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http: httpx.AsyncClient | None = None

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> tuple[int, bytes]:
        if self.http is None:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            self.http = httpx.AsyncClient(base_url=self.base_url, timeout=120, limits=limits)
        response = await self.http.request(method, target, content=body, headers=list(headers))
        return response.status_code, response.content

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()
            self.http = None


@dataclass
class Client:
    email: str
    http: Transport
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class RunResult:
    latencies_ms: list[float]
    errors: int
    seconds: float
    cpu_s: dict[str, float] = field(default_factory=dict)  # "api", "db", "clients": CPU seconds during the run

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def pct(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)

    def cpu_ms(self, part: str) -> float:
        """CPU time (user + system) per request: steadier than latency on a shared machine."""
        return self.cpu_s.get(part, float("nan")) / len(self.latencies_ms) * 1000

    def line(self, label: str) -> str:
        return (
            f"{label:<11} n={len(self.latencies_ms):>5}  p50={self.pct(0.50):7.1f} ms  p95={self.pct(0.95):7.1f} ms  "
            f"p99={self.pct(0.99):7.1f} ms  {self.rate:7.1f} req/s  CPU ms/req: "
            f"api {self.cpu_ms('api'):.2f} db {self.cpu_ms('db'):.2f} clients {self.cpu_ms('clients'):.2f}  "
            f"errors={self.errors}"
        )


def median_line(label: str, runs: Sequence[RunResult]) -> str:
    def med(value: Callable[[RunResult], float]) -> float:
        return statistics.median(value(run) for run in runs)

    return (
        f"{label:<11} p50={med(lambda r: r.pct(0.50)):7.1f} ms  p95={med(lambda r: r.pct(0.95)):7.1f} ms  "
        f"p99={med(lambda r: r.pct(0.99)):7.1f} ms  {med(lambda r: r.rate):7.1f} req/s  CPU ms/req: "
        f"api {med(lambda r: r.cpu_ms('api')):.2f} db {med(lambda r: r.cpu_ms('db')):.2f} "
        f"clients {med(lambda r: r.cpu_ms('clients')):.2f}  errors={sum(r.errors for r in runs)}"
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


async def sign_up_dealers(
    base_url: str, database_url: str, count: int, transport: Callable[[], Transport]
) -> list[Client]:
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
    return [Client(f"dealer{n}@bench.example", transport()) for n in range(count)]


async def login(client: Client) -> tuple[int, bytes]:
    form = urlencode({"username": client.email, "password": PASSWORD}).encode()
    status, body = await client.http.request("POST", "/api/v1/auth/login", form, [FORM])
    if status == 200:
        client.headers = [("Authorization", f"Bearer {orjson.loads(body)['access_token']}")]
    return status, body


def create_car(zip_code: str) -> Callable[[Client], Awaitable[tuple[int, bytes]]]:
    async def call(client: Client) -> tuple[int, bytes]:
        body = orjson.dumps(car_json(zip_code))
        return await client.http.request("POST", "/api/v1/cars", body, [JSON, *client.headers])

    return call


@dataclass
class CpuMeter:
    """CPU seconds of the API process (and its workers), of the PostgreSQL backends serving the bench database,
    and of this process (the clients)."""

    server: psutil.Process
    database: str

    def sample(self) -> dict[str, float]:
        api = self._total([self.server, *self.server.children(recursive=True)])
        marker = f" {self.database} "
        backends = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
        return {"api": api, "db": self._total(backends), "clients": time.process_time()}

    @staticmethod
    def _total(processes: Sequence[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total


async def run(
    clients: list[Client],
    call: Callable[[Client], Awaitable[tuple[int, bytes]]],
    per_client: int,
    ok: int,
    cpu: CpuMeter,
) -> RunResult:
    latencies: list[float] = []
    errors = 0
    samples: list[str] = []

    async def one_client(client: Client) -> None:
        nonlocal errors
        for _ in range(per_client):
            started = time.perf_counter()
            try:
                status, body = await call(client)
            except (OSError, asyncio.IncompleteReadError, HttpError, httpx.HTTPError) as exc:
                status, body = 0, repr(exc).encode()
                await client.http.close()  # the next request connects again
            latencies.append((time.perf_counter() - started) * 1000)
            if status != ok:
                errors += 1
                if len(samples) < 3:
                    samples.append(f"{client.email}: {status} {body[:200]!r}")

    # uvicorn closes keep-alive connections idle for 5 s (the slow bcrypt phase leaves some idle that long), which
    # httpx notices before it sends and the raw client does not: each raw client starts a run on a new connection,
    # opened inside its first timed request.
    await asyncio.gather(*(client.http.close() for client in clients if isinstance(client.http, HttpClient)))
    before = cpu.sample()
    started = time.perf_counter()
    await asyncio.gather(*(one_client(client) for client in clients))
    seconds = time.perf_counter() - started
    after = cpu.sample()
    for sample in samples:
        print(f"  error: {sample}")
    return RunResult(latencies, errors, seconds, {part: after[part] - before[part] for part in after})


def bcrypt_ms(rounds: int) -> float:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds))
    started = time.perf_counter()
    for _ in range(3):
        bcrypt.checkpw(PASSWORD.encode(), hashed)
    return (time.perf_counter() - started) / 3 * 1000


async def bench(args: argparse.Namespace, port: int, database_url: str, cpu: CpuMeter) -> None:
    base_url = f"http://127.0.0.1:{port}"

    def transport() -> Transport:
        return HttpClient("127.0.0.1", port) if args.http == "raw" else HttpxTransport(base_url)

    clients = await sign_up_dealers(base_url, database_url, args.clients, transport)
    try:
        await run(clients, login, 1, 200, cpu)  # warm-up, and every client holds a token
        car = create_car(ZIP_CODE)
        await run(clients, car, 2, 201, cpu)
        phases = [
            (label, call, ok, per_client)
            for label, call, ok, per_client in (
                ("login", login, 200, args.requests),
                ("create-car", car, 201, args.car_requests),
            )
            if args.only in (None, label)
        ]
        print(f"{args.clients} concurrent clients ({args.http}), {args.workers} uvicorn worker(s), {args.runs} runs; "
              f"requests per client per run: {', '.join(f'{label} {n}' for label, _, _, n in phases)}")  # fmt: skip
        results: dict[str, list[RunResult]] = {label: [] for label, *_ in phases}
        for number in range(1, args.runs + 1):
            for label, call, ok, per_client in phases:
                result = await run(clients, call, per_client, ok, cpu)
                results[label].append(result)
                print(f"run {number}  " + result.line(label))
        for label, runs in results.items():
            print("median " + median_line(label, runs))
    finally:
        await asyncio.gather(*(client.http.close() for client in clients))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=10, help="sign-ins per client per run")
    parser.add_argument("--car-requests", type=int, default=40, help="cars created per client per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bcrypt-rounds", type=int, default=12, help="the production default is 12")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--only", choices=("login", "create-car"), help="measure one call only")
    parser.add_argument("--http", choices=("raw", "httpx"), default="raw", help="the load generator's client")
    args = parser.parse_args()

    database_url = ADMIN_URL.rsplit("/", 1)[0] + f"/ah_bench_write_{os.getpid()}"
    ensure_database(database_url)
    apply_migrations(database_url)
    port = free_port()
    cores = os.cpu_count()
    print(f"bcrypt cost factor {args.bcrypt_rounds} (2^{args.bcrypt_rounds} rounds): "
          f"{bcrypt_ms(args.bcrypt_rounds):.0f} ms per verification on one core; {cores} cores; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ah_bench_write_") as tmp:
        api = start_api(database_url, Path(tmp), port, args.bcrypt_rounds, args.workers)
        try:
            meter = CpuMeter(psutil.Process(api.pid), database_url.rsplit("/", 1)[1])
            asyncio.run(bench(args, port, database_url, meter))
        finally:
            api.terminate()
            api.wait(timeout=30)
            print(f"load average at the end {os.getloadavg()[0]:.1f}")
            drop_database(database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
