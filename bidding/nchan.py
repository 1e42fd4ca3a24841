"""The fan-out tier for big sales: nginx + nchan serves EventSource subscribers; the hub publishes each event once.

One publisher (a Redis lease keeps it to one across processes and hosts) reads every lot's event stream in order and
posts each entry once to nchan's loopback publisher location (`POST /pub/lot/{lotId}`, event name in
`X-EventSource-Event`). nchan keeps a buffer of messages per lot and answers `Last-Event-ID` from it.

Event ids: nchan numbers messages itself (`<unix seconds>:<tag>`; a publisher cannot choose them), so the SSE `id:`
a browser echoes back is nchan's, and nchan's buffer, filled in stream order, resumes it without gaps. The Redis
stream id travels in the body as `eventId` (`lotId:streamId`, the same id the native feed uses), so a client can
drop a repeat and order events across the two tiers. How far the publisher got is kept per lot in Redis
(`{lot:ID}:nchan`) after each batch: a publisher killed between a post and that write posts at most that batch
again, with the same `eventId`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import pwd
import re
import resource
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from redis.asyncio import Redis

from bidding.engine import events_key, lot_key
from bidding.feed import StreamId, format_stream_id, parse_stream_id, public_event
from bidding.redis_mux import RedisMux
from bidding.settings import NchanSettings
from hub.broker import wait_for_port

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "nchan" / "nginx.conf.template"
LEASE_KEY = "nchan:publisher"
SUBSCRIBER_PATH = "/nchan/lots"
_EVENTS_KEY = re.compile(r"^\{lot:(\d+)\}:events$")
_STATE_KEY = re.compile(r"^\{lot:(\d+)\}:state$")
_PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\}")


def published_key(lot_id: int) -> str:
    """The newest stream id of the lot that nchan has (hash-tagged with the lot's other keys)."""
    return lot_key(lot_id, "nchan")


# -- nginx configuration ------------------------------------------------------------------------------------------


def config_values(settings: NchanSettings, prefix: Path) -> dict[str, str]:
    user = ""
    if os.geteuid() == 0:  # workers drop root; nginx's master creates the temp dirs for them
        entry = pwd.getpwnam(settings.nchan_worker_user)
        user = f"user {entry.pw_name} {grp.getgrgid(entry.pw_gid).gr_name};"
    module = settings.nchan_module_path
    hard_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard_limit = settings.nchan_worker_connections * 2 + 64 if hard_limit == resource.RLIM_INFINITY else hard_limit
    return {
        "prefix": str(prefix),
        "load_module": f"load_module {module};" if module.exists() else "",
        "user": user,
        "workers": str(settings.nchan_workers),
        "worker_connections": str(settings.nchan_worker_connections),
        "rlimit_nofile": str(min(settings.nchan_worker_connections * 2 + 64, hard_limit)),
        "shared_memory_mb": str(settings.nchan_shared_memory_mb),
        "publish_port": str(settings.nchan_publish_port),
        "listen": settings.nchan_listen,
        "api_upstream": settings.nchan_api_upstream,
        "buffer_length": str(settings.nchan_buffer_length),
        "message_timeout_s": str(settings.nchan_message_timeout_s),
        "ping_s": str(settings.nchan_ping_s),
    }


def render_config(settings: NchanSettings, prefix: Path, template: Path = TEMPLATE) -> str:
    """The repo's template with every `${name}` filled; an unknown name is an error, never left in place."""
    values = config_values(settings, prefix.resolve())

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"{template}: unknown placeholder ${{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(fill, template.read_text())


def nginx_binary(settings: NchanSettings) -> str:
    found = shutil.which(settings.nchan_nginx_binary) or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError(
            f"{settings.nchan_nginx_binary!r} not found: install nginx and libnginx-mod-nchan "
            "(apt-get install -y nginx libnginx-mod-nchan) or set AUCTION_HUB_NCHAN_NGINX_BINARY"
        )
    return found


def prepare_prefix(settings: NchanSettings, prefix: Path) -> list[str]:
    """Write `prefix/nginx.conf` (own pid, logs and temp dirs: no root needed); the argv that runs nginx."""
    prefix = prefix.resolve()
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(render_config(settings, prefix))
    return [nginx_binary(settings), "-p", f"{prefix}/", "-c", str(conf), "-e", str(prefix / "error.log")]


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass
class NginxProcess:
    """nginx with the repo's config in its own prefix, in the foreground (tests, benchmarks, `auction-hub up`)."""

    settings: NchanSettings
    prefix: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def public_url(self) -> str:
        return f"http://{self.settings.nchan_listen}"

    @property
    def publisher_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.nchan_publish_port}"

    def check(self) -> None:
        """`nginx -t` on the rendered config; raises with nginx's message when it is refused."""
        argv = prepare_prefix(self.settings, self.prefix)
        result = subprocess.run([*argv, "-t"], capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise RuntimeError(f"nginx refused {self.prefix / 'nginx.conf'}: {result.stderr.strip()}")

    def start(self, timeout: float = 10.0) -> NginxProcess:
        argv = prepare_prefix(self.settings, self.prefix)
        output = (self.prefix / "nginx.out").open("ab")
        self.process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603
        for address in (self.settings.nchan_listen, f"127.0.0.1:{self.settings.nchan_publish_port}"):
            if not wait_for_port(*_host_port(address), timeout):
                self.stop()
                log_text = (self.prefix / "error.log").read_text() if (self.prefix / "error.log").exists() else ""
                raise RuntimeError(f"nginx did not listen on {address}: {log_text[-2000:]}")
        return self

    def pids(self) -> list[int]:
        """The master and its workers (for CPU and memory figures)."""
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        workers = [int(pid) for pid in children.read_text().split()] if children.exists() else []
        return [self.process.pid, *workers]

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)  # fast shutdown: subscribers are cut, they reconnect elsewhere
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


# -- publishing ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    lot_id: int
    event: str
    body: bytes


class NchanPort(Protocol):
    async def publish(self, messages: Sequence[Message]) -> int:
        """Hand messages to nchan in order; how many it took (a prefix). Raises when it took none."""


class PublishError(RuntimeError):
    pass


class NchanHttp:
    """nchan's publisher location over one keep-alive HTTP/1.1 connection, a batch pipelined in one write.

    Hand-rolled on asyncio streams: one loopback endpoint, fixed requests, Content-Length replies; httpx spends
    about half a millisecond of CPU per post, which is most of the publisher's cost during a sale.
    """

    def __init__(self, publisher_url: str, timeout_s: float = 5.0) -> None:
        parts = urlsplit(publisher_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._taken = 0  # messages of the current batch nchan acknowledged

    async def publish(self, messages: Sequence[Message]) -> int:
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile gets one fresh retry
            self._taken = 0
            try:
                return await asyncio.wait_for(self._publish(messages), self.timeout_s)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                await self.aclose()  # the connection's state is unknown: the next batch opens a new one
                if self._taken:
                    return self._taken  # the rest goes again with the next batch
                if attempt == 2:
                    raise PublishError(f"nchan publisher {self.host}:{self.port}: {exc!r}") from exc
        return 0

    async def _publish(self, messages: Sequence[Message]) -> int:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(
            b"".join(
                b"POST /pub/lot/%d HTTP/1.1\r\nHost: nchan\r\nX-EventSource-Event: %s\r\n"
                b"Content-Type: application/json\r\nAccept: text/json\r\nContent-Length: %d\r\n\r\n%s"
                % (message.lot_id, message.event.encode(), len(message.body), message.body)
                for message in messages
            )
        )
        await writer.drain()
        closing = False
        for message in messages:
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
            await reader.readexactly(length)
            closing = closing or b"\r\nconnection: close" in head
            if status not in (200, 201, 202):
                if self._taken == 0:
                    raise PublishError(f"nchan refused lot {message.lot_id}'s {message.event}: HTTP {status}")
                break  # the rest goes again with the next batch
            self._taken += 1
            if closing:
                break  # nginx answers no more on this connection
        if closing:
            await self.aclose()
        return self._taken

    async def aclose(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


def message_of(lot_id: int, raw_id: Any, raw_fields: dict[Any, Any]) -> tuple[str, bytes]:
    """(event name, JSON body) of one stream entry: the native feed's data plus `eventId`."""
    stream_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
    fields = {_text(k): _text(v) for k, v in raw_fields.items()}
    body = public_event(fields)
    body["eventId"] = f"{lot_id}:{stream_id}"
    return fields.get("type", "price"), json.dumps(body, separators=(",", ":")).encode()


def _field_map(raw: Any) -> dict[Any, Any]:
    """A stream entry's fields: redis-py replies a dict, a raw reply (RedisMux) a flat [field, value, ...] list."""
    return raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stream(value: Any) -> StreamId:
    return parse_stream_id(_text(value))


@dataclass
class PublisherStats:
    published: int = 0
    batches: int = 0
    lots: int = 0


@dataclass
class NchanPublisher:
    """Reads every lot's event stream (one XREAD for all) and posts each entry once to nchan, in stream order."""

    redis: Redis
    port: NchanPort
    # The connection of the XREAD over every lot: redis-py packs a command's arguments in Python, which for the
    # thousands of keys and ids of one read was most of the publisher's CPU; `RedisMux` packs them in C (hiredis).
    reader: Redis | RedisMux | None = None
    buffer_length: int = 200
    discover_s: float = 1.0
    lease_ms: int = 10_000
    batch: int = 500
    cursors: dict[int, StreamId] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)  # closed lots nchan has every event of
    _key_bytes: dict[int, bytes] = field(default_factory=dict)
    stats: PublisherStats = field(default_factory=PublisherStats)
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    _lease_until: float = 0.0
    _next_discovery: float = 0.0

    async def hold_lease(self) -> bool:
        """One publisher at a time: a Redis key with a TTL, renewed by its holder."""
        now = time.monotonic()
        if now < self._lease_until - self.lease_ms / 1000 * 2 / 3:
            return True
        if await self.redis.set(LEASE_KEY, self.token, nx=True, px=self.lease_ms):
            self._lease_until = now + self.lease_ms / 1000
            return True
        holder = await self.redis.get(LEASE_KEY)
        if holder is not None and _text(holder) == self.token:
            await self.redis.pexpire(LEASE_KEY, self.lease_ms)
            self._lease_until = now + self.lease_ms / 1000
            return True
        self._lease_until = 0.0
        return False

    async def release_lease(self) -> None:
        holder = await self.redis.get(LEASE_KEY)
        if holder is not None and _text(holder) == self.token:
            await self.redis.delete(LEASE_KEY)
        self._lease_until = 0.0

    async def discover(self) -> list[int]:
        """Lots armed since the last look (their event stream may not exist yet: XREAD waits for it to appear)."""
        found: list[int] = []
        async for key in self.redis.scan_iter(match="{lot:*}:state", count=1000):
            matched = _STATE_KEY.match(_text(key))
            if matched and (lot_id := int(matched.group(1))) not in self.cursors and lot_id not in self.finished:
                found.append(lot_id)
        for lot_id in found:
            position = await self._start_position(lot_id)
            if position is None:
                self.finished.add(lot_id)
            else:
                self.cursors[lot_id] = position
        self.stats.lots = len(self.cursors)
        return found

    async def _start_position(self, lot_id: int) -> StreamId | None:
        """Where nchan's copy of the lot ends; None for a closed lot whose every event nchan already has."""
        saved = await self.redis.get(published_key(lot_id))
        if saved is not None:
            position = parse_stream_id(_text(saved))
            status = await self.redis.hget(lot_key(lot_id, "state"), "status")
            newest: Any = await self.redis.xrevrange(events_key(lot_id), count=1)
            if status is not None and _text(status) == "closed" and (not newest or _stream(newest[0][0]) <= position):
                return None
            return position
        # Never published: nchan could only keep the newest `buffer_length` entries anyway.
        tail: Any = await self.redis.xrevrange(events_key(lot_id), count=self.buffer_length + 1)
        if len(tail) <= self.buffer_length:
            return (0, 0)
        return _stream(tail[-1][0])

    async def publish_once(self, block_ms: int) -> int:
        """One XREAD over every known lot, each entry posted once; then the positions are saved."""
        if not self.cursors:
            await asyncio.sleep(block_ms / 1000)
            return 0
        # XREAD over every watched lot: keys pre-encoded (redis-py would encode thousands of arguments per call).
        lots = list(self.cursors)
        keys = [self._key_bytes.get(lot) or self._key_bytes.setdefault(lot, events_key(lot).encode()) for lot in lots]
        ids = [b"%d-%d" % self.cursors[lot] for lot in lots]
        # COUNT is per stream: bound the whole reply (a first look at many lots with history could be huge).
        count = max(1, min(self.batch, self.batch * 4 // len(lots)))
        args: tuple[str | bytes | int, ...] = ("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", *keys, *ids)
        result: Any = await (self.reader or self.redis).execute_command(*args)
        batch: list[tuple[Message, StreamId]] = []
        for key, entries in result or []:
            matched = _EVENTS_KEY.match(_text(key))
            if matched is None:
                continue
            lot_id = int(matched.group(1))
            for raw_id, raw_fields in entries:
                event, body = message_of(lot_id, raw_id, _field_map(raw_fields))
                batch.append((Message(lot_id, event, body), _stream(raw_id)))
        if not batch:
            return 0
        taken = await self.port.publish([message for message, _ in batch])
        advanced: dict[int, StreamId] = {}
        for message, position in batch[:taken]:
            advanced[message.lot_id] = self.cursors[message.lot_id] = position
            if message.event == "closed":  # nothing follows a close: stop reading the lot
                self.cursors.pop(message.lot_id, None)
                self.finished.add(message.lot_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for lot_id, position in advanced.items():
                pipe.set(published_key(lot_id), format_stream_id(position))
            await pipe.execute()
        self.stats.published += taken
        self.stats.batches += 1
        return taken

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: hold the lease, discover lots, publish; nchan or Redis failing is retried every second."""
        block_ms = max(1, int(self.discover_s * 1000))
        try:
            while not stop.is_set():
                try:
                    if not await self.hold_lease():
                        await _sleep_or_stop(stop, self.lease_ms / 3000)
                        continue
                    if time.monotonic() >= self._next_discovery:
                        await self.discover()
                        self._next_discovery = time.monotonic() + self.discover_s
                    await self.publish_once(block_ms)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("nchan publisher: publishing %d lots failed; retrying in 1 s", len(self.cursors))
                    await _sleep_or_stop(stop, 1.0)
        finally:
            with contextlib.suppress(Exception):
                await self.release_lease()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_publisher(redis_url: str, settings: NchanSettings, stop: asyncio.Event) -> None:
    """`auction-hub nchan publish`: the publisher against the configured Redis and nchan."""
    redis: Redis = Redis.from_url(redis_url)
    reader = RedisMux(redis_url, reply_timeout_s=settings.nchan_discover_s + 10)  # its XREAD blocks up to discover_s
    port = NchanHttp(f"http://127.0.0.1:{settings.nchan_publish_port}")
    publisher = NchanPublisher(
        redis, port, reader, buffer_length=settings.nchan_buffer_length, discover_s=settings.nchan_discover_s
    )
    try:
        await publisher.run(stop)
    finally:
        await port.aclose()
        await reader.aclose()
        await redis.aclose()


def exec_nginx(settings: NchanSettings) -> None:
    """`auction-hub nchan serve`: render the config into the state dir and become nginx (signals go straight to it)."""
    argv = prepare_prefix(settings, settings.nchan_state_dir)
    log.info("nchan: public %s, publisher 127.0.0.1:%d", settings.nchan_listen, settings.nchan_publish_port)
    os.execv(argv[0], argv)  # noqa: S606 - the configured nginx binary
