"""Q&A end to end, every component real: API -> PostgreSQL -> connector -> tansu -> moderation worker (verdict in
PostgreSQL) -> connector -> indexer worker -> tantivy -> GET /api/v1/vehicles/{id}; and a moderation worker killed
while it waits to retry a failed item loses nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from hub.api import create_app
from hub.broker import EmbeddedBroker
from marketplace.migrate import apply_migrations
from search_api.settings import ApiSettings
from tests.marketplace.api_client import JWT_SECRET, PASSWORD
from tests.moderation.conftest import create_listing
from tests.pipeline import HubProcess, metrics, pipeline_env, wait_for_worker_ready, wait_until

pytestmark = pytest.mark.timeout(600)


@dataclass
class Hub:
    client: TestClient
    database_url: str
    env: dict[str, str]
    workdir: Path
    vehicle_id: int
    headers: dict[str, dict[str, str]]

    def moderation_worker(self, name: str, **extra: str) -> HubProcess:
        return HubProcess(["moderation"], {**self.env, **extra}, self.workdir / f"{name}.log").start()

    def row(self, question_id: int) -> dict[str, Any]:
        with psycopg.connect(self.database_url, row_factory=psycopg.rows.dict_row) as conn:
            row = conn.execute("SELECT * FROM questions WHERE id = %s", (question_id,)).fetchone()
        assert row is not None
        return row

    def ask(self, text: str) -> int:
        response = self.client.post(f"/api/v1/vehicles/{self.vehicle_id}/questions", json={"text": text},
                                    headers=self.headers["buyer"])  # fmt: skip
        assert response.status_code == 201, response.text
        return int(response.json()["data"]["item_id"])

    def questions(self) -> list[dict[str, Any]]:
        response = self.client.get(f"/api/v1/vehicles/{self.vehicle_id}")
        return response.json().get("questions", []) if response.status_code == 200 else []


def wait_for_moderation_ready(worker: HubProcess, timeout: float = 120.0) -> None:
    port = worker.env["AUCTION_HUB_MODERATION_METRICS_PORT"]

    def ready() -> bool:
        assert worker.alive(), f"moderation worker exited:\n{worker.log_tail()}"
        return metrics({"AUCTION_HUB_METRICS_PORT": port}).get("auction_hub_worker_ready") == 1

    wait_until(ready, timeout=timeout, interval=0.5, what="the moderation worker to join its group")


def moderation_metrics(worker: HubProcess) -> dict[str, float]:
    return metrics({"AUCTION_HUB_METRICS_PORT": worker.env["AUCTION_HUB_MODERATION_METRICS_PORT"]})


def sign_in(client: TestClient, database_url: str, name: str, role: str) -> tuple[int, dict[str, str]]:
    email = f"{name}@example.com"
    self_service = role if role in ("buyer", "dealer") else "buyer"
    registered = client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "full_name": name,
                                                            "role": self_service})  # fmt: skip
    assert registered.status_code == 201, registered.text
    user_id = int(registered.json()["data"]["id"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE users SET role = %s WHERE id = %s", (role, user_id))
    login = client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    return user_id, {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.fixture(scope="module")
def hub(database_factory: Any, kafka_broker: EmbeddedBroker, tmp_path_factory: Any) -> Iterator[Hub]:
    database_url: str = database_factory("moderation_e2e")
    apply_migrations(database_url)
    listing = create_listing(database_url)
    workdir = tmp_path_factory.mktemp("moderation_e2e")
    # Its own topics, Q&A refresh topic, moderation group and dead-letter topic (tests/pipeline.py).
    env = pipeline_env(kafka_broker.bootstrap_servers, workdir, database_url)
    connector = HubProcess(["connect", "postgres"], env, workdir / "connector.log")
    worker = HubProcess(["worker"], env, workdir / "worker.log")
    settings = ApiSettings(
        index_path=Path(env["AUCTION_HUB_INDEX_PATH"]), reader_refresh_ms=0, database_url=database_url,
        jwt_secret=JWT_SECRET, bcrypt_rounds=4,
    )  # fmt: skip
    worker.start()
    try:
        wait_for_worker_ready(worker)
        connector.start()
        with TestClient(create_app(settings)) as client:
            headers = {}
            for name, role in (("buyer", "buyer"), ("owner", "dealer"), ("mod", "moderator")):
                user_id, headers[name] = sign_in(client, database_url, name, role)
                if name == "owner":
                    with psycopg.connect(database_url, autocommit=True) as conn:
                        conn.execute("UPDATE dealers SET owner_id = %s", (user_id,))
            hub = Hub(client, database_url, env, workdir, listing.vehicle_id, headers)
            wait_until(lambda: hub.client.get(f"/api/v1/vehicles/{hub.vehicle_id}").status_code == 200,
                       timeout=90, what="the listing in the index")  # fmt: skip
            yield hub
    finally:
        connector.stop()
        worker.stop()


def test_submission_verdict_and_vehicle_document(hub: Hub) -> None:
    moderation = hub.moderation_worker("moderation")
    try:
        wait_for_moderation_ready(moderation)
        phone = hub.ask("Call me at 415-867-5309: is the title clean?")
        rude = hub.ask("f u c k this overpriced junk")
        wait_until(lambda: hub.row(rude)["status"] == "rejected", timeout=60, what="the profanity verdict")
        wait_until(lambda: [q["text"] for q in hub.questions()] == ["Call me at [phone removed]: is the title clean?"],
                   timeout=60, what="the approved, redacted question on the vehicle page")  # fmt: skip
        author = hub.client.get(f"/api/v1/questions/{rude}", headers=hub.headers["buyer"]).json()["data"]
        assert author["reason"].startswith("Rejected: it contains offensive language")

        answered = hub.client.post(f"/api/v1/questions/{phone}/answers", json={"text": "Yes, clean title."},
                                   headers=hub.headers["owner"])  # fmt: skip
        assert answered.status_code == 201, answered.text
        wait_until(lambda: [q["answer"] for q in hub.questions()] == ["Yes, clean title."], timeout=60,
                   what="the approved answer on the vehicle page")  # fmt: skip

        # A moderator takes the question down: it leaves the page.
        taken_down = hub.client.post(f"/api/v1/moderation/items/question-{phone}/reject", json={"note": "spam"},
                                     headers=hub.headers["mod"])  # fmt: skip
        assert taken_down.status_code == 200
        wait_until(lambda: hub.questions() == [], timeout=60, what="the rejected question to leave the page")
        counters = moderation_metrics(moderation)
        assert counters["auction_hub_moderation_approved_total"] >= 2
        assert counters["auction_hub_moderation_rejected_total"] >= 1
    finally:
        moderation.stop()


def test_a_worker_killed_while_waiting_to_retry_loses_nothing(hub: Hub) -> None:
    faulty = hub.moderation_worker("faulty", AUCTION_HUB_FAULT_INJECTION="error:1", AUCTION_HUB_RETRY_BACKOFF_S="5")
    try:
        wait_for_moderation_ready(faulty)
        item = hub.ask("Has the timing belt been replaced?")
        wait_until(lambda: hub.row(item)["review_reason"] == "retrying", timeout=60, what="the first failure")
        row = hub.row(item)
        assert (row["status"], row["attempts"]) == ("pending_review", 1)
        wait_until(lambda: moderation_metrics(faulty).get("auction_hub_moderation_dead_lettered_total") == 1,
                   timeout=30, what="the dead letter")  # fmt: skip
    finally:
        faulty.kill()  # mid back-off: the dead letter is not acknowledged
    assert hub.row(item)["status"] == "pending_review"
    healthy = hub.moderation_worker("healthy", AUCTION_HUB_RETRY_BACKOFF_S="5")
    try:
        wait_until(lambda: hub.row(item)["status"] == "approved", timeout=120, what="the retry after the restart")
        assert hub.row(item)["attempts"] == 1
        wait_until(lambda: "Has the timing belt been replaced?" in [q["text"] for q in hub.questions()], timeout=60,
                   what="the retried question on the vehicle page")  # fmt: skip
        assert moderation_metrics(healthy).get("auction_hub_moderation_retries_recovered_total") == 1
    finally:
        healthy.stop()


def test_three_failures_reach_the_moderators_queue_and_a_hang_times_out(hub: Hub) -> None:
    failing = hub.moderation_worker("failing", AUCTION_HUB_FAULT_INJECTION="error:3", AUCTION_HUB_RETRY_BACKOFF_S="0.5")
    try:
        wait_for_moderation_ready(failing)
        item = hub.ask("Does the sunroof leak?")
        wait_until(lambda: hub.row(item)["flagged"], timeout=60, what="the item flagged after three failures")
        row = hub.row(item)
        assert (row["status"], row["attempts"], row["review_reason"]) == ("pending_review", 3, "moderation_failed")
        counters = moderation_metrics(failing)
        assert counters["auction_hub_moderation_dead_lettered_total"] == 2
        assert counters["auction_hub_moderation_flagged_after_failures_total"] == 1
    finally:
        failing.stop()
    queue = hub.client.get("/api/v1/moderation/queue", params={"reason": "moderation_failed"},
                           headers=hub.headers["mod"]).json()["data"]  # fmt: skip
    assert [entry["item_id"] for entry in queue] == [item]
    approved = hub.client.post(f"/api/v1/moderation/items/question-{item}/approve", json={"note": "fine"},
                               headers=hub.headers["mod"])  # fmt: skip
    assert approved.status_code == 200
    wait_until(lambda: "Does the sunroof leak?" in [q["text"] for q in hub.questions()], timeout=60,
               what="the question a moderator approved")  # fmt: skip

    fast = {"AUCTION_HUB_DETECTOR_TIMEOUT_S": "0.5", "AUCTION_HUB_RETRY_BACKOFF_S": "0.5"}
    hanging = hub.moderation_worker("hanging", AUCTION_HUB_FAULT_INJECTION="hang:1", **fast)
    try:
        wait_for_moderation_ready(hanging)
        item = hub.ask("Is the third row usable for adults?")
        wait_until(lambda: hub.row(item)["status"] == "approved", timeout=60, what="the retry after the timeout")
        assert hub.row(item)["attempts"] == 1
        with psycopg.connect(hub.database_url) as conn:
            notes = conn.execute("SELECT action, note FROM moderation_audit WHERE item_kind = 'question' AND "
                                 "item_id = %s ORDER BY id", (item,)).fetchall()  # fmt: skip
        assert [action for action, _ in notes] == ["moderation_failed", "verdict"]
        assert "timed out after 0.5s" in notes[0][1]
        assert moderation_metrics(hanging)["auction_hub_moderation_detector_timeouts_total"] == 1
    finally:
        hanging.stop()
