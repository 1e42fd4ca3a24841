"""A small process supervisor: starts child processes, restarts the ones that die, stops all cleanly."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger(__name__)


@dataclass
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        # Own session: a terminal's Ctrl-C reaches only the supervisor, which stops the children in order.
        self.process = subprocess.Popen(list(self.spec.argv), env=dict(self.spec.env), start_new_session=True)  # noqa: S603
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.spec.name, self.process.pid)


class Supervisor:
    """Keeps every child running until SIGINT/SIGTERM, restarting crashed ones with back-off."""

    def __init__(self, specs: Sequence[ChildSpec], *, stop_timeout: float = 15.0) -> None:
        self.children = [Child(spec) for spec in specs]
        self.stop_timeout = stop_timeout
        self._stopping = False

    def _request_stop(self, signum: int, _: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        self._stopping = True

    def run(self) -> None:
        previous = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in self.children:
                child.start()
            while not self._stopping:
                self._watch()
                time.sleep(0.2)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> None:
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if process is not None and process.poll() is not None:
                uptime = now - child.started_at
                child.restarts = 0 if uptime > 60 else child.restarts + 1
                delay = min(30.0, 0.5 * 2**child.restarts)
                log.warning(
                    "%s exited with %s after %.0fs; restarting in %.1fs",
                    child.spec.name,
                    process.returncode,
                    uptime,
                    delay,
                )
                child.process = None
                child.next_start = now + delay
            elif process is None and now >= child.next_start:
                child.start()

    def stop(self) -> None:
        running = [child.process for child in self.children if child.process and child.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + self.stop_timeout
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()
