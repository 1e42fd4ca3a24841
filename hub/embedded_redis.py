"""A redis-server of the hub's own for live bidding: AOF with `appendfsync always`, so ACCEPTED means on disk.

`auction-hub up` starts one unless `AUCTION_HUB_REDIS_URL` points elsewhere; tests start them to kill -9 them.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hub.broker import free_port, wait_for_port


class RedisStartError(RuntimeError):
    pass


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (path for path in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if Path(path).exists()), None
    )


@dataclass
class EmbeddedRedis:
    """One redis-server process on loopback; `kill()` is kill -9, `start()` again reopens the same AOF."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()  # more redis-server options, e.g. ("--requirepass", "...") for a test

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> EmbeddedRedis:
        binary = redis_server_binary()
        if binary is None:
            raise RedisStartError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no"]
        args += self.extra_args
        log = (self.directory / "redis.log").open("ab")
        # Own session: a terminal's Ctrl-C on `auction-hub up` must not stop Redis before the bid service.
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
        if not wait_for_port("127.0.0.1", self.port, timeout):
            self.stop()
            raise RedisStartError(f"redis-server did not listen on {self.port}; see {self.directory / 'redis.log'}")
        return self

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RedisStartError("redis-server is not running")
        return self.process.pid

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
