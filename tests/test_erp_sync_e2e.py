"""ERP sync end to end: ERP stand-in (PostgreSQL) -> ERP connector -> tansu -> worker -> tantivy -> HTTP API,
beside the marketplace's own pipeline (PostgreSQL -> connector -> worker). Every process is real.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from connectors.erp.dialects import ErpDsn, connect, install_schema
from hub.broker import EmbeddedBroker, free_port
from marketplace.migrate import apply_migrations
from tests.connectors.erp.tcp_proxy import TcpProxy
from tests.pipeline import HubProcess, pipeline_env, wait_for_worker_ready, wait_until
from tests.test_pipeline_e2e import Stack, insert_dealer, insert_vehicle

pytestmark = pytest.mark.timeout(600)

ADD_STOCK = (
    "INSERT INTO stock_items (stock_no, vin, yard, location, status, title_status, keys_count, arrival_date, cost) "
    "VALUES (%s, %s, 'DAL-01 Dallas', 'A-01', %s, 'CLEAN', 2, '2026-11-20 09:00:00', 15250.00)"
)


class ErpStack(Stack):
    def __init__(self, database_url: str, env: dict[str, str], workdir: Path, erp: ErpDsn, proxy: TcpProxy) -> None:
        super().__init__(database_url, env, workdir)
        self.erp = erp
        self.proxy = proxy
        self.erp_connector = HubProcess(["connect", "erp"], env, workdir / "erp-connector.log")

    def erp_sql(self, sql: str, *params: Any) -> None:
        with psycopg.connect(self.erp.url(), autocommit=True) as conn:
            conn.execute(sql, params)

    def erp_health(self) -> dict[str, Any]:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.env['AUCTION_HUB_ERP_HEALTH_PORT']}/health", timeout=2)
        except httpx.HTTPError:
            return {}
        body: dict[str, Any] = response.json()
        return body

    def searchable(self, vehicle_id: int, **params: Any) -> bool:
        response = self.client.get("/api/v1/vehicles", params={"limit": 100, **params})
        assert response.status_code == 200, response.text
        return str(vehicle_id) in [vehicle["id"] for vehicle in response.json()["data"]]


@pytest.fixture(scope="module")
def erp_stack(database_factory: Any, kafka_broker: EmbeddedBroker, tmp_path_factory: Any) -> Iterator[ErpStack]:
    database_url = database_factory("erp_e2e")
    apply_migrations(database_url)
    erp = ErpDsn.parse(database_factory("erp_standin"))
    install_schema(erp)
    proxy = TcpProxy(erp.host, erp.port)
    proxy.restore()
    workdir = tmp_path_factory.mktemp("erp_e2e")
    env = pipeline_env(kafka_broker.bootstrap_servers, workdir, database_url)
    prefix = env["AUCTION_HUB_TOPIC_PREFIX"]
    env.update(
        AUCTION_HUB_ERP_DSN=erp.with_endpoint("127.0.0.1", proxy.port).url(),
        AUCTION_HUB_ERP_TOPIC_PREFIX=f"{prefix}erp",
        AUCTION_HUB_ERP_VIN_LINKS_TOPIC=f"{prefix}.erp-vin-links",
        AUCTION_HUB_ERP_INVENTORY_REFRESH_TOPIC=f"{prefix}.erp-inventory-refresh",
        AUCTION_HUB_ERP_HEALTH_PORT=str(free_port()),
        AUCTION_HUB_ERP_BACKOFF_MAX_S="1",
        AUCTION_HUB_ERP_CONNECT_TIMEOUT_S="2",
    )
    stack = ErpStack(database_url, env, workdir, erp, proxy)
    stack.worker.start()
    try:
        wait_for_worker_ready(stack.worker)
        stack.connector.start()
        stack.erp_connector.start()
        with stack.client:
            yield stack
    finally:
        stack.erp_connector.stop()
        stack.connector.stop()
        stack.worker.stop()
        proxy.cut()


def inventory(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("inventory") or {}


def test_stock_arriving_before_the_listing_is_kept_and_merged_by_vin(erp_stack: ErpStack) -> None:
    with psycopg.connect(erp_stack.database_url, autocommit=True) as conn:
        dealer = insert_dealer(conn, "Lone Star Autos")
        # The ERP knows the car first (in transit), the marketplace lists it later.
        vehicle_id = insert_vehicle(conn, dealer, status="draft")
        vin = conn.execute("SELECT vin FROM vehicles WHERE id = %s", (vehicle_id,)).fetchone()[0]  # type: ignore[index]
        conn.execute("DELETE FROM vehicles WHERE id = %s", (vehicle_id,))
        erp_stack.erp_sql(ADD_STOCK, "S-100", vin, "IN_TRANSIT")
        wait_until(lambda: (erp_stack.erp_health().get("counters") or {}).get("changes_captured"), timeout=60,
                   what="the ERP connector to capture")  # fmt: skip
        listed = insert_vehicle(conn, dealer, vin=vin)
    body = erp_stack.wait_vehicle(listed, lambda b: inventory(b).get("stock_number") == "S-100", timeout=90)
    assert inventory(body)["status"] == "in_transit"
    assert inventory(body)["available"] is True
    assert inventory(body)["arrival_date"] == "2026-11-20"
    assert "cost" not in inventory(body)  # the dealer's cost stays in the ERP

    # Arrival, a move, a hold (leaves search), a release, a sale, a delete: each one reaches the document.
    erp_stack.erp_sql("UPDATE stock_items SET status = 'IN_STOCK', location = 'C-12' WHERE stock_no = 'S-100'")
    erp_stack.wait_vehicle(listed, lambda b: inventory(b).get("location") == "C-12")
    erp_stack.erp_sql("UPDATE stock_items SET yard = 'HOU-02 Houston' WHERE stock_no = 'S-100'")
    erp_stack.wait_vehicle(listed, lambda b: inventory(b).get("yard") == "HOU-02 Houston")
    assert erp_stack.searchable(listed, q="camry")
    erp_stack.erp_sql("UPDATE stock_items SET status = 'ON_HOLD' WHERE stock_no = 'S-100'")
    erp_stack.wait_vehicle(listed, lambda b: inventory(b).get("available") is False)
    wait_until(lambda: not erp_stack.searchable(listed, q="camry"), timeout=30, what="held car to leave search")
    erp_stack.erp_sql("UPDATE stock_items SET status = 'IN_STOCK' WHERE stock_no = 'S-100'")
    wait_until(lambda: erp_stack.searchable(listed, q="camry"), timeout=60, what="released car back in search")
    erp_stack.erp_sql("UPDATE stock_items SET status = 'SOLD' WHERE stock_no = 'S-100'")
    body = erp_stack.wait_vehicle(listed, lambda b: inventory(b).get("status") == "sold")
    wait_until(lambda: not erp_stack.searchable(listed, q="camry"), timeout=30, what="sold car to leave search")
    erp_stack.erp_sql("DELETE FROM stock_items WHERE stock_no = 'S-100'")
    body = erp_stack.wait_vehicle(listed, lambda b: b.get("inventory") is None)
    assert erp_stack.searchable(listed, q="camry")  # no ERP record: the marketplace's own status decides


def test_an_erp_outage_leaves_search_up_and_the_backlog_drains(erp_stack: ErpStack) -> None:
    with psycopg.connect(erp_stack.database_url, autocommit=True) as conn:
        dealer = insert_dealer(conn, "Gulf Coast Cars")
        vehicles = [insert_vehicle(conn, dealer, model="Corolla") for _ in range(20)]
        vins = [conn.execute("SELECT vin FROM vehicles WHERE id = %s", (v,)).fetchone()[0] for v in vehicles]  # type: ignore[index]
    for vehicle_id in vehicles[:1]:
        erp_stack.wait_vehicle(vehicle_id, lambda b: b["model"] == "Corolla")

    written: list[int] = []

    def erp_writes() -> None:  # the ERP keeps working during the outage: only the hub's link to it is cut
        conn = connect(erp_stack.erp)
        for i, vin in enumerate(vins):
            conn.execute(ADD_STOCK.replace("%s", ":p", 1).replace("%s", ":v", 1).replace("%s", ":s", 1),
                         {"p": f"S-OUT-{i}", "v": vin, "s": "IN_STOCK"})  # fmt: skip
            written.append(i)
        conn.close()

    erp_stack.proxy.cut()
    try:
        thread = threading.Thread(target=erp_writes)
        thread.start()
        wait_until(lambda: erp_stack.erp_health().get("status") == "degraded", timeout=30, what="health degraded")
        health = erp_stack.erp_health()
        assert health["component"] == "erp"
        assert health["reason"]
        thread.join()
        # Search and details keep answering from the index; the connector stays alive and does not spin.
        assert erp_stack.searchable(vehicles[0], q="corolla")
        assert erp_stack.vehicle(vehicles[0])[0] == 200
        assert erp_stack.erp_connector.alive()
        failures = erp_stack.erp_health()["counters"].get("erp_failures", 0)
        assert failures < 20, "a busy loop retries far more often than its back-off allows"
    finally:
        erp_stack.proxy.restore()  # also when this test fails: the module's next tests need the link
    wait_until(lambda: erp_stack.erp_health().get("status") == "ok", timeout=30, what="health ok again")
    for vehicle_id, i in zip(vehicles, range(len(vins)), strict=True):
        erp_stack.wait_vehicle(vehicle_id, lambda b, i=i: inventory(b).get("stock_number") == f"S-OUT-{i}", 60)


def test_a_restarted_erp_connector_resumes_and_replays_are_harmless(erp_stack: ErpStack) -> None:
    with psycopg.connect(erp_stack.database_url, autocommit=True) as conn:
        dealer = insert_dealer(conn, "Hill Country Motors")
        vehicle_id = insert_vehicle(conn, dealer, model="RAV4")
        vin = conn.execute("SELECT vin FROM vehicles WHERE id = %s", (vehicle_id,)).fetchone()[0]  # type: ignore[index]
    erp_stack.erp_sql(ADD_STOCK, "S-200", vin, "IN_RECON")
    erp_stack.wait_vehicle(vehicle_id, lambda b: inventory(b).get("status") == "in_recon")
    erp_stack.erp_connector.kill()  # kill -9: what it sent but had not stored yet is sent again
    erp_stack.erp_sql("UPDATE stock_items SET status = 'IN_STOCK', location = 'D-04' WHERE stock_no = 'S-200'")
    # Replaying old changes cannot undo newer ones: reset the stored mark to the start, so every change is re-sent.
    erp_stack.erp_sql("UPDATE hub_capture_state SET high_water = 0, gaps = '[]'")
    erp_stack.erp_connector.start()
    body = erp_stack.wait_vehicle(vehicle_id, lambda b: inventory(b).get("location") == "D-04", 90)
    assert inventory(body)["status"] == "in_stock"
    erp_stack.erp_sql("UPDATE stock_items SET keys_count = 1 WHERE stock_no = 'S-200'")
    body = erp_stack.wait_vehicle(vehicle_id, lambda b: inventory(b).get("keys") == 1, 60)
    assert inventory(body)["location"] == "D-04"
