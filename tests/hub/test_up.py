"""`auction-hub up`, as the quick start runs it: empty database in, searchable demo data out, Ctrl-C stops all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from hub.broker import free_port
from hub.settings import load_settings
from hub.up import UpSettings, _erp_children
from marketplace.auction_store import EFFECTIVE_STATUS
from tests.pipeline import ROOT, wait_until

pytestmark = pytest.mark.timeout(600)


def psql(database_url: str, query: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query).fetchone()
    return "" if row is None else str(row[0])


def test_up_loads_demo_data_serves_it_and_stops_cleanly(database_factory: Any, tmp_path: Path) -> None:
    database_url = database_factory("up")
    name = database_url.rsplit("/", 1)[-1]
    api_port = free_port()
    erp_health_port = free_port()
    env = {
        **os.environ,
        "AUCTION_HUB_DATABASE_URL": database_url,
        "AUCTION_HUB_API_PORT": str(api_port),
        "AUCTION_HUB_METRICS_PORT": str(free_port()),
        "AUCTION_HUB_BROKER_PORT": str(free_port()),
        "AUCTION_HUB_INDEX_PATH": str(tmp_path / "index"),
        "AUCTION_HUB_STATE_DIR": str(tmp_path / "var"),
        "AUCTION_HUB_PG_SLOT_NAME": f"{name}_slot",
        "AUCTION_HUB_PG_PUBLICATION_NAME": f"{name}_pub",
        "AUCTION_HUB_SESSION_TIMEOUT_S": "6",
        "AUCTION_HUB_ERP_DSN": database_factory("up_erp"),  # the demo's ERP stand-in, dropped with the others
        "AUCTION_HUB_ERP_HEALTH_PORT": str(erp_health_port),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("AUCTION_HUB_KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("AUCTION_HUB_REDIS_URL", None)  # up runs its own AOF redis-server for bidding
    redis_port = free_port()
    env["AUCTION_HUB_REDIS_PORT"] = str(redis_port)
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "up", "--demo-vehicles", "300", "--demo-dealers", "20"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    last_reply: list[str] = []
    try:

        def vehicle_one() -> dict[str, Any] | None:
            assert up.poll() is None, log_path.read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/vehicles/1", timeout=2)
            except httpx.HTTPError as exc:
                last_reply[:] = [repr(exc)]
                return None
            last_reply[:] = [f"{response.status_code} {response.text[:300]}"]
            if response.status_code != 200 or response.json().get("dealer") is None:
                return None  # the dealer block follows the vehicle by a moment
            body: dict[str, Any] = response.json()
            return body

        body = wait_until(vehicle_one, timeout=240, interval=1, what="demo vehicle 1 through the API")
        assert body["make"]
        assert body["dealer"]["name"]
        printed = log_path.read_text()
        assert f"http://127.0.0.1:{api_port}/docs" in printed
        assert f"http://127.0.0.1:{erp_health_port}/health" in printed
        showcase = re.search(r"live auction page +http://\S+/live/auctions/(\d+)", printed)
        assert showcase is not None, "no live auction page printed"
        live_status = psql(database_url, f"SELECT {EFFECTIVE_STATUS} FROM auctions a WHERE a.id = {showcase[1]}")
        assert live_status == "live"  # the page printed shows bidding going on, not a sale that ended

        def inventory_of_vehicle_one() -> dict[str, Any] | None:
            try:
                response = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/vehicles/1", timeout=2)
            except httpx.HTTPError:
                return None
            inventory: dict[str, Any] | None = response.json().get("inventory")
            return inventory

        # The stand-in stocks the first demo vehicles; the ERP connector's snapshot merges into their documents.
        inventory = wait_until(inventory_of_vehicle_one, timeout=120, interval=1, what="ERP inventory on vehicle 1")
        assert inventory["stock_number"].startswith("D")
        assert inventory["yard"]
        erp_health = httpx.get(f"http://127.0.0.1:{erp_health_port}/health", timeout=5)
        assert erp_health.status_code == 200, erp_health.text
        # 200 seeded records; erp-sim (2 changes/s, arrivals and deletes among them) starts beside the connector
        # and can add or delete a record or two before the snapshot reads them.
        assert 190 <= erp_health.json()["counters"]["snapshot_rows"] <= 210
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 4  # tansu, connector, worker, api
        commands = [" ".join(child.cmdline()) for child in children]
        assert any("hub.cli connect erp" in command for command in commands), commands
        assert any("hub.cli erp-sim --rate" in command for command in commands), commands
        assert any(f"redis-server 127.0.0.1:{redis_port}" in command for command in commands), commands
        assert f"redis://127.0.0.1:{redis_port}/0 (embedded, AOF appendfsync always)" in printed
        lot = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/lots/1", timeout=5)
        assert lot.status_code in (200, 404, 409), lot.text  # bidding reaches up's Redis: no 503
        assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir()
    except AssertionError as exc:
        # What `up` and its children printed is the only trace of why a stage never came; keep it in the failure.
        printed_tail = log_path.read_text()[-8000:]
        raise AssertionError(f"{exc}\nlast reply: {last_reply}\n--- up's output (tail) ---\n{printed_tail}") from exc
    finally:
        os.killpg(up.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground process group
        exit_code = up.wait(timeout=60)
    printed = log_path.read_text()
    assert exit_code == 0, printed[-3000:]
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    # Stopped in order (the bid service before its Redis, the API quietly): nothing an operator would take for a fault.
    alarming = [line for line in printed.splitlines() if "Traceback" in line or " ERROR " in line or "[ERROR]" in line]
    assert alarming == [], printed[-6000:]


def test_the_erp_demo_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUCTION_HUB_ERP_DEMO", "false")
    monkeypatch.setenv("AUCTION_HUB_ERP_DSN", "postgresql://postgres@127.0.0.1:1/never_reached")
    settings = load_settings(UpSettings)
    assert settings.erp_demo is False
    assert _erp_children({}, settings, fresh_broker=True) == []
