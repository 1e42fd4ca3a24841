"""`auction-hub erp-sim`: a day of yard activity against the ERP (or a stand-in), at a chosen rate.

What a dealer group's ERP sees: cars bought at auction arrive IN_TRANSIT, are checked in (IN_STOCK) at a yard,
go through reconditioning (IN_RECON) and back, move between yards and bays, are put ON_HOLD for a deposit and
released, are SOLD, have their title or key count corrected, and now and then a mistaken record is deleted.
VINs come from the marketplace's vehicles (so the changes show up on listed cars) or are generated.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from connectors.erp.dialects import Connection, ErpDsn, connect
from marketplace.vin import make_vin

log = logging.getLogger(__name__)

YARDS = ("DAL-01 Dallas", "HOU-02 Houston", "PHX-01 Phoenix", "DEN-03 Denver", "ATL-01 Atlanta", "CHI-02 Chicago")
TITLES = ("CLEAN",) * 8 + ("PENDING", "LIEN")
INSERT_STOCK = (
    "INSERT INTO stock_items (stock_no, vin, yard, location, status, title_status, keys_count, arrival_date, cost) "
    "VALUES (:stock_no, :vin, :yard, :location, :status, :title_status, :keys_count, :arrival_date, :cost)"
)
SET_STATUS = "UPDATE stock_items SET status = :status WHERE stock_no = :stock_no"
MOVE = "UPDATE stock_items SET yard = :yard, location = :location WHERE stock_no = :stock_no"
CORRECT = "UPDATE stock_items SET title_status = :title_status, keys_count = :keys_count WHERE stock_no = :stock_no"
CHECK_IN = (
    "UPDATE stock_items SET status = 'IN_STOCK', location = :location, arrival_date = :arrival_date "
    "WHERE stock_no = :stock_no"
)
DELETE = "DELETE FROM stock_items WHERE stock_no = :stock_no"
STOCK_KEYS = "SELECT stock_no, vin, status FROM stock_items"


@dataclass
class Stock:
    stock_no: str
    vin: str
    status: str


@dataclass
class ErpActivity:
    """Chooses the next change from the yard's current stock; pure apart from its random generator."""

    rng: random.Random
    vins: list[str] = field(default_factory=list)
    stock: dict[str, Stock] = field(default_factory=dict)
    serial: int = 0

    def location(self) -> str:
        return f"{self.rng.choice('ABCDEFGH')}-{self.rng.randint(1, 60):02d}"

    def _new_vin(self) -> str:
        listed = {s.vin for s in self.stock.values()}
        unused = [vin for vin in self.vins[:2000] if vin not in listed]
        if unused and self.rng.random() < 0.8:
            vin = self.rng.choice(unused)
            self.vins.remove(vin)
            return vin
        self.serial += 1
        return make_vin(self.rng, "1FT", "EW1EP", 2022, 500_000 + self.serial)

    def arrival(self) -> tuple[str, dict[str, object]]:
        self.serial += 1
        stock_no = f"S{int(time.time()) % 100_000:05d}{self.serial:06d}"
        vin = self._new_vin()
        self.stock[stock_no] = Stock(stock_no, vin, "IN_TRANSIT")
        return INSERT_STOCK, {
            "stock_no": stock_no, "vin": vin, "yard": self.rng.choice(YARDS), "location": None,
            "status": "IN_TRANSIT", "title_status": self.rng.choice(TITLES), "keys_count": self.rng.choice((1, 2, 2)),
            "arrival_date": None, "cost": Decimal(self.rng.randrange(800_000, 6_500_000)) / 100,
        }  # fmt: skip

    def next_change(self) -> tuple[str, dict[str, object]]:
        if len(self.stock) < 20 or self.rng.random() < 0.12:
            return self.arrival()
        item = self.rng.choice(list(self.stock.values()))
        roll = self.rng.random()
        if item.status == "IN_TRANSIT":
            item.status = "IN_STOCK"
            arrived = datetime.now().replace(microsecond=0) - timedelta(hours=self.rng.randint(0, 48))
            return CHECK_IN, {"stock_no": item.stock_no, "location": self.location(), "arrival_date": arrived}
        if item.status == "SOLD":
            if roll < 0.3:
                del self.stock[item.stock_no]
                return DELETE, {"stock_no": item.stock_no}  # a sold car's record archived away
            item.status = "IN_STOCK"  # a sale reversed
            return SET_STATUS, {"stock_no": item.stock_no, "status": "IN_STOCK"}
        if roll < 0.30:
            return MOVE, {"stock_no": item.stock_no, "yard": self.rng.choice(YARDS), "location": self.location()}
        if roll < 0.50:
            item.status = {"IN_STOCK": "IN_RECON", "IN_RECON": "IN_STOCK", "ON_HOLD": "IN_STOCK"}[item.status]
        elif roll < 0.65:
            item.status = "ON_HOLD" if item.status != "ON_HOLD" else "IN_STOCK"
        elif roll < 0.80:
            item.status = "SOLD"
        elif roll < 0.97:
            title = self.rng.choice(("CLEAN", "CLEAN", "LIEN", "REBUILT"))
            return CORRECT, {"stock_no": item.stock_no, "title_status": title, "keys_count": self.rng.randint(0, 3)}
        else:
            del self.stock[item.stock_no]
            return DELETE, {"stock_no": item.stock_no}  # a record entered by mistake
        return SET_STATUS, {"stock_no": item.stock_no, "status": item.status}


def load_stock(connection: Connection) -> dict[str, Stock]:
    rows = connection.execute(STOCK_KEYS).fetchall()
    return {str(r[0]).strip(): Stock(str(r[0]).strip(), str(r[1]).strip(), str(r[2]).strip()) for r in rows}


def marketplace_vins(database_url: str, limit: int = 20_000) -> list[str]:
    """VINs of listed marketplace vehicles (so simulated stock changes land on searchable cars)."""
    import psycopg

    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT vin FROM vehicles WHERE deleted_at IS NULL ORDER BY id LIMIT %s", (limit,)
            ).fetchall()
    except psycopg.Error as exc:
        log.warning("cannot read marketplace VINs (%s); generating VINs", exc)
        return []
    return [str(row[0]).strip() for row in rows]


def seed_stock(dsn: ErpDsn, vins: Sequence[str], *, seed: int | None = None) -> int:
    """Stock records (checked in at a yard) for `vins`, when the ERP holds no stock yet: the demo's yard, so the
    first listed vehicles carry an inventory block from the start. Returns how many records were inserted."""
    connection = connect(dsn)
    try:
        if load_stock(connection):
            return 0
        activity = ErpActivity(random.Random(seed))  # noqa: S311 - not crypto
        today = datetime.now().replace(hour=9, minute=0, second=0, microsecond=0)
        for index, vin in enumerate(vins, 1):
            connection.execute(INSERT_STOCK, {
                "stock_no": f"D{index:07d}", "vin": vin, "yard": activity.rng.choice(YARDS),
                "location": activity.location(), "status": "IN_STOCK", "title_status": activity.rng.choice(TITLES),
                "keys_count": activity.rng.choice((1, 2, 2)),
                "arrival_date": today - timedelta(days=activity.rng.randint(1, 30)),
                "cost": Decimal(activity.rng.randrange(800_000, 6_500_000)) / 100,
            })  # fmt: skip
        return len(vins)
    finally:
        connection.close()


def run_simulation(
    dsn: ErpDsn,
    *,
    rate: float,
    duration_s: float | None,
    vins: Sequence[str] = (),
    seed: int | None = None,
    changes_per_txn: int = 1,
) -> int:
    """Apply changes at `rate` per second (each its own transaction, or `changes_per_txn` together) until
    `duration_s` passes (None: until interrupted). Returns how many changes were committed."""
    connection = connect(dsn)
    activity = ErpActivity(random.Random(seed), list(vins), load_stock(connection))  # noqa: S311 - not crypto
    committed = 0
    started = time.monotonic()
    try:
        for due in _schedule(rate, started):
            if duration_s is not None and due - started >= duration_s:
                break
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            cursor = connection.raw.cursor()
            if changes_per_txn > 1:
                connection.set_autocommit(False)
            for _ in range(changes_per_txn):
                sql, binds = activity.next_change()
                cursor.execute(connection.adapt(sql), binds)
            if changes_per_txn > 1:
                connection.raw.commit()
                connection.set_autocommit(True)
            committed += changes_per_txn
            if committed % max(1, int(rate * 10)) == 0:
                log.info("%d changes committed (%.0f/s)", committed, committed / (time.monotonic() - started))
    except KeyboardInterrupt:
        pass
    finally:
        connection.close()
    return committed


def _schedule(rate: float, start: float) -> Iterator[float]:
    interval = 1.0 / rate
    n = 0
    while True:
        yield start + n * interval
        n += 1
