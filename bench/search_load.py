"""Data and traffic of the search benchmark (`bench/search.py`).

- `build_index`: a tantivy index of N realistic vehicle documents (VehicleGenerator rows, dealers, auctions),
  written directly (no PostgreSQL, no Kafka), cached under `var/bench/`.
- `query_mix`: a seeded list of buyer searches (`Query`), the same list for the engine and HTTP.
- `HttpClient` / `run_closed_loop`: a minimal HTTP/1.1 keep-alive load generator over asyncio streams, far
  lighter than an HTTP library, so the server gets most of the CPU.
- `api_app`: the uvicorn factory (`--factory bench.search_load:api_app`) for multi-worker runs, and `serve`
  (`python -m bench.search_load --workers 2 --port P`): uvicorn's workers with TCP_NODELAY kept.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import orjson
from fastapi import FastAPI

from connectors.search.tantivy_index import TantivyIndex
from connectors.search.tantivy_schema import index_directory
from marketplace.catalog import load_catalog, load_locations
from marketplace.demo_vehicles import DealerSite, VehicleGenerator
from schemas.vehicle import DealerSummary, VehicleDocument
from search_api.query import SearchParams, build_query, next_cursor

ROOT: Final = Path(__file__).resolve().parents[1]
BENCH_DIR: Final = ROOT / "var" / "bench"
# A fixed reference date keeps the generated vehicles (model years, auction times) the same on every machine.
AS_OF: Final = datetime(2026, 11, 1, 12, tzinfo=UTC)
DATA_SEED: Final = 11
WRITE_BATCH: Final = 10_000
# Documents the writer holds before it commits by itself: few commits, few small segments.
COMMIT_EVERY: Final = 200_000
SEARCH_PATH: Final = "/api/v1/vehicles"

KINDS: Final = ("text", "browse", "radius", "deep")
_KIND_SHARES: Final = (40, 25, 20, 15)
# What buyers type, beyond "<make> <model>" and "<model>": typos, nicknames, trims and features.
_TYPED: Final = (
    "toyta camry", "camery", "hona civic", "civic ex", "f-150", "f150 xlt", "ford f-150 lariat", "silverado 1500",
    "silverdo", "chevy silverado", "jeep wrangler", "wrangler unlimited", "wrnagler", "grand cherokee", "rav4",
    "rav4 hybrid", "cr-v", "crv", "tacoma trd", "tesla model 3", "model y", "mustang gt", "mustang convertible",
    "ram 1500", "4runner", "bmw x5", "mercedes c-class", "accord sport", "highlander", "odyssey", "prius",
    "leather sunroof", "one owner", "tow package", "apple carplay", "heated seats", "awd suv", "hybrid",
    "electric", "diesel truck", "outback", "cx-5", "tundra", "explorer", "tahoe", "sierra 1500", "telluride",
)  # fmt: skip
_TOP_COLORS: Final = ("White", "Black", "Gray", "Silver", "Blue", "Red")
_BROWSE_SORTS: Final[tuple[str, ...]] = ("-year", "-year", "price", "-price", "mileage", "ending_soonest")
_DEEP_SORTS: Final[tuple[str, ...]] = ("-year", "price", "-price", "mileage")
_DEALER_SUFFIXES: Final = ("Auto Sales", "Motors", "Auto Group", "Motor Company", "Car Center", "Automotive")

Params = dict[str, Any]


# -- the documents --------------------------------------------------------------------------------------


def index_path(vehicles: int) -> Path:
    """`var/bench/search-<N>_v<SCHEMA_VERSION>`: a schema change gets a new directory."""
    return index_directory(BENCH_DIR, index_name(vehicles))


def index_name(vehicles: int) -> str:
    return f"search-{vehicles}"


def _dealers(rng: random.Random, count: int) -> tuple[list[DealerSite], dict[int, DealerSummary]]:
    catalog = load_catalog()
    brands = [make.name for make in catalog.makes]
    weights = [sum(trim.weight for model in make.models for trim in model.trims) for make in catalog.makes]
    locations = load_locations()
    sites, summaries = [], {}
    for dealer_id in range(1, count + 1):
        location = locations[int(rng.random() * len(locations))]
        brand = rng.choices(brands, weights=weights)[0] if rng.random() < 0.55 else None
        suffix = _DEALER_SUFFIXES[int(rng.random() * len(_DEALER_SUFFIXES))]
        name = f"{brand} of {location.city}" if brand else f"{location.city} {suffix}"
        rating = round(min(max(rng.gauss(4.2, 0.5), 2.5), 5.0), 1)
        sites.append(DealerSite(dealer_id, location, brand))
        summaries[dealer_id] = DealerSummary(
            id=dealer_id, name=name, rating=rating, city=location.city, state=location.state,
            lat=location.lat, lon=location.lon,
        )  # fmt: skip
    return sites, summaries


def generate_documents(count: int, *, seed: int = DATA_SEED, dealers: int = 2_000) -> Iterator[VehicleDocument]:
    """`count` vehicle documents as the indexer would write them: ~88% listed, ~6% of those in an auction
    (live ones with a current bid), sold vehicles (some through a closed auction), drafts and withdrawn ones."""
    rng = random.Random(seed)
    sites, summaries = _dealers(rng, dealers)
    generator = VehicleGenerator(rng, sites, as_of_year=AS_OF.year)
    listed_at = AS_OF.isoformat()
    for serial in range(1, count + 1):
        row = generator.row(serial)
        price = float(row[20])
        status = row[21]
        auction: dict[str, Any] = {}
        if status == "active" and rng.random() < 0.06:
            status = "in_auction"
            live = rng.random() < 0.6
            ends = AS_OF + timedelta(minutes=int(rng.random() * (3 if live else 14) * 24 * 60))
            auction = {
                "auction_id": 1 + int(rng.random() * max(1, count // 200)),
                "auction_status": "live" if live else "upcoming",
                "auction_ends_at": ends.isoformat(),
                "currentBid": round(price * rng.uniform(0.5, 0.9), -2) if live and rng.random() < 0.85 else None,
            }
        elif status == "sold" and rng.random() < 0.3:
            ended = AS_OF - timedelta(days=1 + int(rng.random() * 30))
            auction = {
                "auction_id": 1 + int(rng.random() * max(1, count // 200)),
                "auction_status": "closed",
                "auction_ends_at": ended.isoformat(),
                "currentBid": round(price * rng.uniform(0.7, 1.0), -2),
            }
        yield VehicleDocument(
            id=str(serial), dealer_id=row[0], vin=row[1], make=row[2], model=row[3], trim=row[4], year=row[5],
            mileage=row[6], condition_grade=float(row[7]), body_type=row[8], fuel=row[9], transmission=row[10],
            drivetrain=row[11], exterior_color=row[12], city=row[13], state=row[14], zip=row[15], lat=row[16],
            lon=row[17], images=row[18], description=row[19], asking_price=price, status=status,
            listed_at=listed_at, updated_at=listed_at, dealer=summaries[row[0]],
            positions={"pg.vehicles": serial}, version=1, **auction,
        )  # fmt: skip


async def build_index(path: Path, count: int) -> float:
    """Write `count` generated documents into a new index at `path` (batches of `WRITE_BATCH`, then a flush);
    returns the seconds it took, merges included."""
    started = time.perf_counter()
    index = TantivyIndex(path, writer=True, heap_bytes=512 * 1024 * 1024, max_pending=COMMIT_EVERY)
    try:
        batch: list[VehicleDocument] = []
        for document in generate_documents(count):
            batch.append(document)
            if len(batch) >= WRITE_BATCH:
                await index.upsert(batch)
                batch = []
                if document.id.endswith("00000"):
                    print(f"  {document.id} documents written ({time.perf_counter() - started:.0f} s)", flush=True)
        await index.upsert(batch)
        await index.flush()
    finally:
        await index.close()  # waits for tantivy's merges
    return time.perf_counter() - started


async def ensure_index(count: int, *, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """The cached index of `count` vehicles (built when missing, incomplete or `rebuild`) and its build record."""
    path = index_path(count)
    record_path = path.with_suffix(".json")
    if not rebuild and path.exists() and record_path.exists():
        reader = TantivyIndex(path, writer=False)
        documents = (await reader.health()).documents
        record: dict[str, Any] = orjson.loads(record_path.read_bytes())
        if documents == count and record.get("seed") == DATA_SEED:
            return path, {**record, "reused": True}
        print(f"{path} holds {documents} documents, not {count}: rebuilding")
    shutil.rmtree(path, ignore_errors=True)
    record_path.unlink(missing_ok=True)
    print(f"building {path} ({count:,} vehicles)", flush=True)
    seconds = await build_index(path, count)
    segments = (await TantivyIndex(path, writer=False).health()).detail
    record = {"vehicles": count, "seed": DATA_SEED, "build_seconds": round(seconds, 1), "built_at": _now()}
    record_path.write_bytes(orjson.dumps(record))
    print(f"built in {seconds:.0f} s ({count / seconds:,.0f} documents/s); {segments}", flush=True)
    return path, {**record, "reused": False}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- the queries ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    kind: str
    params: Params

    @property
    def target(self) -> str:
        return f"{SEARCH_PATH}?{urlencode(self.params, doseq=True)}"


@dataclass
class _Mix:
    rng: random.Random
    makes: list[str] = field(default_factory=list)
    make_weights: list[int] = field(default_factory=list)
    models: list[tuple[str, str, int]] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, rng: random.Random) -> _Mix:
        mix = cls(rng)
        for make in load_catalog().makes:
            mix.makes.append(make.name)
            mix.make_weights.append(sum(trim.weight for model in make.models for trim in model.trims))
            for model in make.models:
                mix.models.append((make.name, model.name, sum(trim.weight for trim in model.trims)))
        mix.states = [location.state for location in load_locations()]
        return mix

    def make(self) -> str:
        return self.rng.choices(self.makes, weights=self.make_weights)[0]

    def text(self) -> str:
        draw = self.rng.random()
        if draw < 0.4:
            return self.rng.choice(_TYPED)
        make, model, _ = self.rng.choices(self.models, weights=[weight for *_, weight in self.models])[0]
        return f"{make} {model}".lower() if draw < 0.7 else model.lower()

    def filters(self, count: int) -> Params:
        """`count` of the filters buyers add to a search, with values that keep results plausible."""
        params: Params = {}
        choices = ["state", "year", "price", "mileage", "color", "drivetrain", "fuel"]
        for name in self.rng.sample(choices, count):
            if name == "state":
                params["state"] = [self.rng.choice(self.states)]
            elif name == "year":
                params["year_min"] = self.rng.randint(2012, 2023)
            elif name == "price":
                high = self.rng.choice((15_000, 20_000, 25_000, 30_000, 40_000, 60_000))
                params["price_max"] = high
                if self.rng.random() < 0.4:
                    params["price_min"] = high // 3
            elif name == "mileage":
                params["mileage_max"] = self.rng.choice((30_000, 50_000, 75_000, 100_000, 150_000))
            elif name == "color":
                params["color"] = self.rng.sample(_TOP_COLORS, self.rng.choice((1, 1, 2)))
            elif name == "drivetrain":
                params["drivetrain"] = [self.rng.choice(("awd", "4wd", "fwd"))]
            else:
                params["fuel"] = [self.rng.choice(("gasoline", "hybrid", "electric", "diesel"))]
        return params

    def text_query(self) -> Params:
        params: Params = {"q": self.text(), **self.filters(self.rng.choice((2, 2, 3)))}
        if self.rng.random() < 0.25:
            params["sort"] = self.rng.choice(("price", "-year", "mileage"))
        return params

    def browse(self) -> Params:
        return {"make": [self.make()], "sort": self.rng.choice(_BROWSE_SORTS)}

    def radius(self) -> Params:
        location = self.rng.choice(load_locations())
        params: Params = {"radius_km": self.rng.choice((50, 80, 100, 150, 200, 300))}
        if self.rng.random() < 0.6:
            params["zip"] = location.zip
        else:
            params["lat"], params["lon"] = round(location.lat, 4), round(location.lon, 4)
        if self.rng.random() < 0.5:
            params["sort"] = "distance"
        if self.rng.random() < 0.4:
            params["make"] = [self.make()]
        return params

    def deep_offset(self) -> Params:
        body_type = self.rng.choice(("suv", "sedan", "truck"))
        base: Params = self.browse() if self.rng.random() < 0.5 else {"body_type": [body_type]}
        base["sort"] = self.rng.choice(_DEEP_SORTS)
        # Offset paging ends at 10,000 results (page * limit).
        return {**base, "page": self.rng.choice((5, 10, 25, 50, 100, 250, 500))}


async def query_mix(index: TantivyIndex, size: int, seed: int) -> list[Query]:
    """`size` buyer searches in the shares of `KINDS`; half the deep pages are cursor pages reached by
    following `next_cursor` from page 1 on `index` (so the list belongs to that index's data)."""
    rng = random.Random(seed)
    mix = _Mix.create(rng)
    queries: list[Query] = []
    for _ in range(size):
        kind = rng.choices(KINDS, weights=_KIND_SHARES)[0]
        if kind == "text":
            params = mix.text_query()
        elif kind == "browse":
            params = mix.browse()
        elif kind == "radius":
            params = mix.radius()
        elif rng.random() < 0.5:
            params = mix.deep_offset()
        else:
            params = await _cursor_page(index, mix, rng.choice((3, 5, 10, 20, 40)))
        queries.append(Query(kind, params))
    return queries


async def _cursor_page(index: TantivyIndex, mix: _Mix, depth: int) -> Params:
    """The parameters of page `depth` of a browse, reached by following next_cursor (facets off on the way)."""
    base: Params = mix.browse() if mix.rng.random() < 0.6 else {"state": [mix.rng.choice(mix.states)]}
    base["sort"] = mix.rng.choice(_DEEP_SORTS)
    cursor: str | None = None
    for _ in range(depth - 1):
        params = SearchParams(**base, facets=False, **({"cursor": cursor} if cursor else {}))
        query = build_query(params)
        found = next_cursor(params, query, await index.search(query))
        if found is None:
            break
        cursor = found
    return {**base, **({"cursor": cursor} if cursor else {})}


def queries_to_json(queries: Sequence[Query]) -> list[dict[str, Any]]:
    return [{"kind": query.kind, "params": query.params} for query in queries]


def queries_from_json(rows: Sequence[dict[str, Any]]) -> list[Query]:
    return [Query(row["kind"], row["params"]) for row in rows]


# -- the load generator ---------------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str
    seconds: float
    status: int


class HttpError(RuntimeError):
    """The server answered something this client cannot read (not HTTP/1.1 with a Content-Length)."""


class HttpClient:
    """One keep-alive HTTP/1.1 connection: GET, status line, headers, Content-Length body. Nothing else."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        return await self.request("GET", target)

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> tuple[int, bytes]:
        """Any method; a body goes with its Content-Length (the caller names its Content-Type in `headers`)."""
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        reader, writer = self._reader, self._writer
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}", *(f"{name}: {value}" for name, value in headers)]
        if body or method not in ("GET", "HEAD"):
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 "):
            raise HttpError(f"not an HTTP/1.1 response: {head[:80]!r}")
        status = int(head[9:12])
        length = None
        keep_alive = True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.strip().lower() == b"close":
                keep_alive = False
        if length is None:
            raise HttpError(f"no Content-Length in {head[:200]!r}")
        body = await reader.readexactly(length)
        if not keep_alive:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._reader = self._writer = None


@dataclass
class LoadResult:
    samples: list[Sample]
    seconds: float
    errors: list[str]

    @property
    def rate(self) -> float:
        return len(self.samples) / self.seconds if self.seconds else 0.0


async def run_closed_loop(
    port: int, queries: Sequence[Query], *, connections: int, duration_s: float | None = None
) -> LoadResult:
    """`connections` clients, each sending its next request as soon as the last one answered.

    Without `duration_s`: every query once (the list shared between clients, in order); with it: the list
    over and over until the time is up. Non-200 answers are counted as samples and reported in `errors`.
    """
    position = 0
    samples: list[Sample] = []
    errors: list[str] = []
    started = time.perf_counter()
    deadline = None if duration_s is None else started + duration_s

    async def client() -> None:
        nonlocal position
        http = HttpClient("127.0.0.1", port)
        try:
            while True:
                if deadline is None and position >= len(queries):
                    return
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                query = queries[position % len(queries)]
                position += 1
                sent = time.perf_counter()
                try:
                    status, body = await http.get(query.target)
                except (OSError, asyncio.IncompleteReadError, HttpError) as exc:
                    errors.append(f"{query.target}: {exc!r}")
                    await http.close()
                    continue
                samples.append(Sample(query.kind, time.perf_counter() - sent, status))
                if status != 200 and len(errors) < 20:
                    errors.append(f"{query.target}: HTTP {status} {body[:300]!r}")
        finally:
            await http.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return LoadResult(samples, time.perf_counter() - started, errors)


# -- the server -----------------------------------------------------------------------------------------


def api_app() -> FastAPI:
    """The API exactly as `auction-hub api` builds it, from the environment (uvicorn `--factory`, any worker count)."""
    from hub.serve import app_from_environment

    return app_from_environment()


def serve(host: str, port: int, workers: int) -> None:
    """`auction-hub api --workers N`: uvicorn's supervisor on a socket made with `IPPROTO_TCP` (hub/serve.py)."""
    from hub.serve import serve_api

    serve_api(host, port, workers)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="serve the API with N uvicorn workers (TCP_NODELAY kept)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    cli = parser.parse_args()
    serve(cli.host, cli.port, cli.workers)
