"""Deterministic, realistic demo data for the marketplace database.

`load_demo_data` fills an empty marketplace with users, dealers, vehicles, auctions, lots, bids and
questions; `bulk_load_vehicles` streams up to millions of vehicles with COPY for load tests. The same
seed gives the same rows (timestamps aside, which are relative to `as_of`).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import psycopg

from marketplace.catalog import Location, load_catalog, load_locations
from marketplace.demo_vehicles import DealerSite, VehicleGenerator

# Serializes demo loaders against each other (not against the application).
DEMO_LOCK_KEY: Final = 0x61686465_6D6F

_SURNAMES: Final = (
    "Anderson", "Baker", "Bennett", "Brooks", "Campbell", "Carter", "Collins", "Cooper", "Davis", "Edwards",
    "Ellis", "Fisher", "Foster", "Garcia", "Gibson", "Graham", "Hall", "Harris", "Hayes", "Henderson",
    "Hughes", "Jenkins", "Johnson", "Keller", "Kennedy", "Lawson", "Lopez", "Marshall", "Martinez", "Mason",
    "Miller", "Mitchell", "Morgan", "Murphy", "Nelson", "Nguyen", "Parker", "Patel", "Perry", "Porter",
    "Powell", "Reed", "Reyes", "Richardson", "Rivera", "Roberts", "Russell", "Sanders", "Schmidt", "Scott",
    "Shaw", "Stewart", "Sullivan", "Taylor", "Thompson", "Tucker", "Turner", "Walker", "Ward", "Watson",
    "Webb", "Wheeler", "Williams", "Wilson", "Wright", "Young",
)  # fmt: skip
_FIRST_NAMES: Final = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Steven", "Emily", "Kevin",
    "Michelle", "Brian", "Amanda", "Jose", "Melissa", "Luis", "Stephanie", "Wei", "Priya", "Andre", "Maria",
)  # fmt: skip
_DEALER_WORDS: Final = ("Premier", "Elite", "Select", "Prestige", "Summit", "Liberty", "Heritage", "Pinnacle")
_DEALER_SUFFIXES: Final = ("Auto Sales", "Motors", "Auto Group", "Motor Company", "Car Center", "Automotive")
_AREA_CODES: Final[dict[str, str]] = {
    "AL": "205", "AK": "907", "AZ": "602", "AR": "501", "CA": "213", "CO": "303", "CT": "203", "DE": "302",
    "DC": "202", "FL": "305", "GA": "404", "HI": "808", "ID": "208", "IL": "312", "IN": "317", "IA": "515",
    "KS": "316", "KY": "502", "LA": "504", "ME": "207", "MD": "410", "MA": "617", "MI": "313", "MN": "612",
    "MS": "601", "MO": "314", "MT": "406", "NE": "402", "NV": "702", "NH": "603", "NJ": "201", "NM": "505",
    "NY": "212", "NC": "704", "ND": "701", "OH": "216", "OK": "405", "OR": "503", "PA": "215", "RI": "401",
    "SC": "803", "SD": "605", "TN": "615", "TX": "214", "UT": "801", "VT": "802", "VA": "804", "WA": "206",
    "WV": "304", "WI": "414", "WY": "307",
}  # fmt: skip
_VEHICLE_COLUMNS: Final = (
    "dealer_id, vin, make, model, trim, year, mileage, condition_grade, body_type, fuel, transmission, "
    "drivetrain, exterior_color, city, state, zip, lat, lon, images, description, asking_price, status"
)


@dataclass(frozen=True, slots=True)
class DemoDataSummary:
    """What a load did; `loaded` is False when the marketplace already had vehicles and was left alone."""

    loaded: bool
    users: int = 0
    dealers: int = 0
    vehicles: int = 0
    auctions: int = 0
    lots: int = 0
    bids: int = 0
    questions: int = 0
    answers: int = 0
    seconds: float = 0.0


class DemoWriter:
    """Writes generated rows through one connection, inside the caller's transaction."""

    def __init__(self, conn: psycopg.Connection, rng: random.Random, *, as_of: datetime) -> None:
        self.conn = conn
        self.rng = rng
        self.as_of = as_of

    def reserve_ids(self, table: str, count: int) -> list[int]:
        # Ids come from the table's own sequence so explicit-id COPY never collides with app inserts.
        rows = self.conn.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", (table, count)
        ).fetchall()
        return [int(row[0]) for row in rows]

    def copy_rows(self, table: str, columns: str, rows: Sequence[tuple[Any, ...]]) -> int:
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return len(rows)

    def person(self, n: int) -> tuple[str, str]:
        first, last = self.rng.choice(_FIRST_NAMES), self.rng.choice(_SURNAMES)
        domain = self.rng.choice(("example.com", "example.net", "example.org"))
        return f"{first} {last}", f"{first.lower()}.{last.lower()}{n}@{domain}"

    def users(self, count: int, role: str) -> list[int]:
        ids = self.reserve_ids("users", count)
        rows = []
        for user_id in ids:
            full_name, email = self.person(user_id)
            # '!' is never a valid hash, so demo accounts cannot log in until a password is set.
            rows.append((user_id, email, "!", full_name, role))
        self.copy_rows("users", "id, email, password_hash, full_name, role", rows)
        return ids

    def dealers(self, count: int) -> list[DealerSite]:
        owners = self.users(count, "dealer")
        ids = self.reserve_ids("dealers", count)
        catalog = load_catalog()
        brands = [make.name for make in catalog.makes]
        brand_weights = [sum(trim.weight for model in make.models for trim in model.trims) for make in catalog.makes]
        locations = load_locations()
        sites, rows = [], []
        for dealer_id, owner_id in zip(ids, owners, strict=True):
            location = self.rng.choice(locations)
            brand = self.rng.choices(brands, weights=brand_weights)[0] if self.rng.random() < 0.55 else None
            name = self.dealer_name(location, brand)
            rating = Decimal(str(round(min(max(self.rng.gauss(4.2, 0.5), 2.5), 5.0), 1)))
            phone = f"({_AREA_CODES.get(location.state, '800')}) 555-01{self.rng.randint(0, 99):02d}"
            rows.append(
                (dealer_id, owner_id, name, rating, phone, location.city, location.state, location.zip,
                 location.lat, location.lon)
            )  # fmt: skip
            sites.append(DealerSite(dealer_id, location, brand))
        self.copy_rows("dealers", "id, owner_id, name, rating, phone, city, state, zip, lat, lon", rows)
        return sites

    def dealer_name(self, location: Location, brand: str | None) -> str:
        surname = self.rng.choice(_SURNAMES)
        if brand is not None:
            return self.rng.choice((f"{surname} {brand}", f"{location.city} {brand}", f"{brand} of {location.city}"))
        return self.rng.choice(
            (
                f"{surname} {self.rng.choice(_DEALER_SUFFIXES)}",
                f"{location.city} {self.rng.choice(_DEALER_SUFFIXES)}",
                f"{self.rng.choice(_DEALER_WORDS)} {self.rng.choice(_DEALER_SUFFIXES)}",
            )
        )

    def vehicles(self, generator: VehicleGenerator, count: int) -> int:
        first_serial = self.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM vehicles").fetchone()
        serial = int(first_serial[0]) if first_serial else 1
        with self.conn.cursor() as cur, cur.copy(f"COPY vehicles ({_VEHICLE_COLUMNS}) FROM STDIN") as copy:
            for chunk in generator.copy_chunks(count, serial):
                copy.write(chunk)
        return count


def _seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets


def _load_dealer_sites(conn: psycopg.Connection, limit: int) -> list[DealerSite]:
    rows = conn.execute("SELECT id, zip, city, state, lat, lon FROM dealers ORDER BY id LIMIT %s", (limit,)).fetchall()
    return [DealerSite(int(row[0]), Location(row[1], row[2], row[3], row[4], row[5])) for row in rows]


def bulk_load_vehicles(
    database_url: str,
    count: int,
    *,
    dealers: int = 2_000,
    seed: int = 11,
    batch_rows: int = 200_000,
    as_of: datetime | None = None,
) -> DemoDataSummary:
    """Add `count` generated vehicles with COPY, committing every `batch_rows`.

    Makes sure at least `dealers` dealers exist (creating the missing ones, with owners) and spreads the
    vehicles over the first `dealers` of them. Unlike `load_demo_data`, it adds to whatever is there.
    A batch that hits an existing VIN (possible only past a million vehicles in the table) is rolled
    back and generated again with fresh draws.
    """
    if count < 0 or batch_rows < 1:
        raise ValueError(f"count must be >= 0 and batch_rows >= 1, got {count} and {batch_rows}")
    started = time.perf_counter()
    now = as_of or datetime.now(UTC)
    rng = _seeded(seed)
    with psycopg.connect(database_url) as conn:
        # Session-level, because the load spans many transactions; VIN serials follow max(id).
        conn.execute("SELECT pg_advisory_lock(%s)", (DEMO_LOCK_KEY,))
        conn.commit()
        try:
            writer = DemoWriter(conn, rng, as_of=now)
            sites = _load_dealer_sites(conn, dealers)
            created_dealers = max(dealers - len(sites), 0)
            if created_dealers:
                writer.dealers(created_dealers)
                sites = _load_dealer_sites(conn, dealers)
            conn.commit()
            generator = VehicleGenerator(rng, sites, as_of_year=now.year)
            loaded, clashes = 0, 0
            while loaded < count:
                batch = min(batch_rows, count - loaded)
                try:
                    writer.vehicles(generator, batch)
                    conn.commit()
                except psycopg.errors.UniqueViolation:
                    conn.rollback()
                    clashes += 1
                    if clashes > 3:
                        raise
                    continue
                loaded += batch
        finally:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (DEMO_LOCK_KEY,))
            conn.commit()
    return DemoDataSummary(
        loaded=True,
        users=created_dealers,
        dealers=created_dealers,
        vehicles=loaded,
        seconds=round(time.perf_counter() - started, 2),
    )


def load_demo_data(
    database_url: str, *, dealers: int = 200, vehicles: int = 5_000, seed: int = 7, as_of: datetime | None = None
) -> DemoDataSummary:
    """Fill an empty marketplace with a coherent demo; does nothing if the vehicles table has rows.

    Everything is written in one transaction, so a failure leaves the database as it was.
    """
    started = time.perf_counter()
    now = as_of or datetime.now(UTC)
    rng = _seeded(seed)
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (DEMO_LOCK_KEY,))
        has_vehicles = conn.execute("SELECT EXISTS (SELECT 1 FROM vehicles)").fetchone()
        if has_vehicles and has_vehicles[0]:
            return DemoDataSummary(loaded=False, seconds=round(time.perf_counter() - started, 2))
        writer = DemoWriter(conn, rng, as_of=now)
        staff = writer.users(1, "admin") + writer.users(2, "moderator")
        buyers = writer.users(max(20, dealers // 4), "buyer")
        sites = writer.dealers(dealers)
        generator = VehicleGenerator(rng, sites, as_of_year=now.year)
        writer.vehicles(generator, vehicles)
        activity = _MarketActivity(writer, buyers, staff)
        auctions, lots, bids = activity.auctions(sites)
        questions, answers = activity.questions(sites)
        conn.commit()
    return DemoDataSummary(
        loaded=True,
        users=len(staff) + len(buyers) + dealers,
        dealers=dealers,
        vehicles=vehicles,
        auctions=auctions,
        lots=lots,
        bids=bids,
        questions=questions,
        answers=answers,
        seconds=round(time.perf_counter() - started, 2),
    )


def _round_hundreds(amount: Decimal) -> Decimal:
    return (amount / 100).quantize(Decimal(1)) * 100


class _MarketActivity:
    """Auctions with lots and bids, and buyer questions with dealer answers, over loaded inventory."""

    def __init__(self, writer: DemoWriter, buyers: list[int], staff: list[int]) -> None:
        self.writer = writer
        self.conn = writer.conn
        self.rng = writer.rng
        self.now = writer.as_of
        self.buyers = buyers
        self.staff = staff

    def _inventory(self, dealer_id: int, limit: int) -> list[tuple[int, Decimal]]:
        rows = self.conn.execute(
            "SELECT id, asking_price FROM vehicles WHERE dealer_id = %s AND status = 'active' ORDER BY id LIMIT %s",
            (dealer_id, limit),
        ).fetchall()
        return [(int(row[0]), Decimal(row[1])) for row in rows]

    def auctions(self, sites: Sequence[DealerSite]) -> tuple[int, int, int]:
        count = max(3, len(sites) // 20)
        hosts = self.rng.sample(list(sites), min(count, len(sites)))
        auction_ids = self.writer.reserve_ids("auctions", len(hosts))
        auction_rows, lot_count, bid_count = [], 0, 0
        for n, (auction_id, host) in enumerate(zip(auction_ids, hosts, strict=True)):
            status, starts_at, ends_at = self._schedule(n)
            kind = self.rng.choice(("Weekly", "Dealer", "Trade-In", "Fleet"))
            title = f"{host.location.city} {kind} Sale #{n + 1}"
            auction_rows.append((auction_id, host.id, title, starts_at, ends_at, status))
        self.writer.copy_rows("auctions", "id, dealer_id, title, starts_at, ends_at, status", auction_rows)
        for (auction_id, _, _, starts_at, ends_at, status), host in zip(auction_rows, hosts, strict=True):
            lots, bids = self._lots(auction_id, host, status, starts_at, ends_at)
            lot_count += lots
            bid_count += bids
        return len(auction_rows), lot_count, bid_count

    def _schedule(self, n: int) -> tuple[str, datetime, datetime]:
        kind = ("closed", "live", "upcoming")[n % 3]
        hours = timedelta(hours=1)
        if kind == "closed":
            starts_at = self.now - timedelta(days=self.rng.randint(3, 30))
        elif kind == "live":
            starts_at = self.now - hours * self.rng.randint(1, 20)
        else:
            starts_at = self.now + hours * self.rng.randint(6, 24 * 10)
        return kind, starts_at, starts_at + timedelta(days=self.rng.choice((1, 2, 3)))

    @staticmethod
    def _engine_fields(
        status: str, lot_id: int, seq: int, amount: Decimal, ends_at: datetime
    ) -> tuple[str | None, int | None, str | None, Decimal | None, datetime | None]:
        """A bid of a live auction is recorded as live bidding records its bids (bid id, arrival number, kind), so
        the engine replays it when the lot is armed: the lot opens at its recorded price and bid count. A past
        auction's bids stay plain records: its lots are settled and never armed."""
        if status != "live":
            return None, None, None, None, None
        return f"{lot_id}-{seq}", seq, "live", amount, ends_at

    def _lots(
        self, auction_id: int, host: DealerSite, status: str, starts_at: datetime, ends_at: datetime
    ) -> tuple[int, int]:
        inventory = self._inventory(host.id, self.rng.randint(4, 12))
        lot_ids = self.writer.reserve_ids("auction_lots", len(inventory))
        lot_rows, bid_rows, sold, in_auction = [], [], [], []
        for lot_number, (lot_id, (vehicle_id, asking)) in enumerate(zip(lot_ids, inventory, strict=True), 1):
            starting = _round_hundreds(asking * Decimal("0.6"))
            reserve = _round_hundreds(asking * Decimal("0.85")) if self.rng.random() < 0.6 else None
            increment = Decimal(100 if asking < 20_000 else 250)
            amount, last_at = starting, starts_at
            lot_bids = 0 if status == "upcoming" else self.rng.randint(0, 9)
            for seq in range(1, lot_bids + 1):
                amount += increment * self.rng.randint(1, 4)
                horizon = min(ends_at, self.now) - last_at
                last_at = last_at + horizon * self.rng.uniform(0.05, 0.5)
                bid_rows.append(
                    (
                        lot_id,
                        self.rng.choice(self.buyers),
                        amount,
                        last_at,
                        *self._engine_fields(status, lot_id, seq, amount, ends_at),
                    )
                )
            current = amount if lot_bids else None
            lot_status = "open"
            if status == "closed":
                met = current is not None and (reserve is None or current >= reserve)
                lot_status = "sold" if met else "unsold"
                if met:
                    sold.append(vehicle_id)
            else:
                in_auction.append(vehicle_id)
            bid_seq = lot_bids if status == "live" else 0
            increments = json.dumps([[0, float(increment)]])
            lot_rows.append(
                (
                    lot_id,
                    auction_id,
                    vehicle_id,
                    lot_number,
                    starting,
                    reserve,
                    increment,
                    increments,
                    current,
                    bid_seq,
                    lot_status,
                )
            )
        self.writer.copy_rows(
            "auction_lots",
            "id, auction_id, vehicle_id, lot_number, starting_price, reserve_price, min_increment, bid_increments, "
            "current_bid, bid_seq, status",
            lot_rows,
        )
        self.writer.copy_rows(
            "bids", "lot_id, user_id, amount, placed_at, bid_ref, seq, kind, price_after, ends_at", bid_rows
        )
        self.conn.execute("UPDATE vehicles SET status = 'sold' WHERE id = ANY(%s)", (sold,))
        self.conn.execute("UPDATE vehicles SET status = 'in_auction' WHERE id = ANY(%s)", (in_auction,))
        return len(lot_rows), len(bid_rows)

    def questions(self, sites: Sequence[DealerSite]) -> tuple[int, int]:
        rows = self.conn.execute(
            "SELECT v.id, d.owner_id, v.make, v.model FROM vehicles v JOIN dealers d ON d.id = v.dealer_id "
            "WHERE v.dealer_id = ANY(%s) AND v.status = 'active' ORDER BY v.id",
            ([site.id for site in sites],),
        ).fetchall()
        asked = self.rng.sample(rows, min(len(rows), max(10, len(rows) // 50)))
        question_ids = self.writer.reserve_ids("questions", len(asked))
        question_rows, answer_rows = [], []
        for question_id, (vehicle_id, owner_id, make, model) in zip(question_ids, asked, strict=True):
            created = self.now - timedelta(hours=self.rng.randint(1, 24 * 20))
            # Decided questions are clean ones, approved; the pending ones are left to the moderation worker, and
            # some of those are what it exists for, so moderators find a queue at start-up.
            status = self.rng.choices(("approved", "pending"), weights=(80, 20))[0]
            problem = status == "pending" and self.rng.random() < 0.4
            body, reply = self.rng.choice(_PROBLEM_QUESTIONS if problem else _QUESTIONS)
            question_rows.append(
                (question_id, vehicle_id, self.rng.choice(self.buyers), body.format(model=model), status, created)
            )
            if status == "approved" and owner_id is not None and self.rng.random() < 0.7:
                answer_body = reply.format(make=make, model=model)
                answer_rows.append(
                    (question_id, owner_id, answer_body, "approved", created + timedelta(hours=self.rng.randint(1, 48)))
                )
        self.writer.copy_rows("questions", "id, vehicle_id, user_id, body, status, created_at", question_rows)
        self.writer.copy_rows("answers", "question_id, user_id, body, status, created_at", answer_rows)
        return len(question_rows), len(answer_rows)


# What buyers post that moderation must catch: contact details to take the deal off the marketplace, abuse.
# (Card and bank numbers never reach the table: the API replaces them before the insert.)
_PROBLEM_QUESTIONS: Final = (
    ("Is the {model} still available? Text me at 415-867-5309, cash deal", ""),
    ("Skip the fees, email me at carbuyer88 at gmail dot com about the {model}", ""),
    ("This {model} listing is a damn scam, you people are crooks", ""),
    ("Call me on (312) 555-0188 before the auction, I'll pay more", ""),
    ("What a piece of crap, who would bid on this {model}?", ""),
    ("DM me on insta @fastcars_chi, I want the {model} today", ""),
)

_QUESTIONS: Final = (
    ("Does this {model} have a clean title?", "Yes, clean title and the history report is attached to the listing."),
    ("How many keys come with it?", "It comes with two keys."),
    ("Were the timing belt or chain and water pump serviced?", "Service records show it was done at the dealer."),
    ("Any accidents on the history report?", "No reported accidents on this {model}."),
    ("Can it be inspected before the auction closes?", "Yes, inspections are welcome by appointment at our lot."),
    ("Are the tires original?", "The tires were replaced last year and have plenty of tread."),
    ("Is the factory warranty transferable?", "Yes, any remaining {make} factory warranty transfers to the buyer."),
    ("Do you arrange transport out of state?", "We work with several carriers and can quote delivery."),
)
