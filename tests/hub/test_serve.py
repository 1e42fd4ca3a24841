"""`auction-hub api --workers 2`: several uvicorn processes behind one socket, all answering."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hub.broker import free_port
from tests.pipeline import wait_until

ROOT = Path(__file__).parents[2]


def test_two_workers_serve_search_and_stop_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "AUCTION_HUB_INDEX_PATH": str(tmp_path / "index")}
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "api", "--port", str(port), "--workers", "2"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:

        def healthy() -> bool | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200 or None
            except httpx.HTTPError:
                return None

        wait_until(healthy, timeout=60, what="the API on two workers")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:  # keep-alive across requests
            statuses = {client.get("/api/v1/vehicles", params={"q": "camry"}).status_code for _ in range(20)}
        assert statuses == {200}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, process.stderr.read().decode() if process.stderr else ""
