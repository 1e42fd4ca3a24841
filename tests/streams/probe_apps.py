"""What the probe apps (small Faust workers the stream tests start as subprocesses) share."""

from __future__ import annotations

import os
import sys
from typing import Any

import faust

from streams.flow_control import ReplayingApp
from streams.kafka_transport import broker_url


def probe_app(app_id: str, bootstrap: str, **settings: Any) -> faust.App:
    """A Faust app like the worker's (its transport, and records faust drops from its stream buffers read again),
    reading from the earliest offset, with short group timeouts."""
    return ReplayingApp(
        app_id,
        broker=broker_url(bootstrap, 20),
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        **settings,
    )


def say(line: str) -> None:
    """A line for the test reading the probe's output, flushed at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_worker(app: faust.App) -> None:
    loglevel = os.environ.get("PROBE_LOGLEVEL", "warning")
    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()
