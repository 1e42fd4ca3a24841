"""Many concurrent callers' Redis commands over one connection, for the hot paths (bids, the nchan publisher).

Redis answers the commands of a connection in the order it received them, so one connection can carry every
in-flight command of a process: each is written as it comes and a FIFO of futures takes the replies in order
(pipelining without batching by the caller). On the bid path this replaced redis-py's per-command machinery
(a pool checkout, a retry wrapper and a timeout task around every read), which had become half of the API
worker's CPU per bid; and hiredis packs a command's arguments in C, where redis-py packs them in Python (the
publisher's XREAD names thousands of streams).

A lost connection fails every command in flight with `redis.exceptions.ConnectionError` and the next command
reconnects; a reply overdue by `reply_timeout_s` fails them with `redis.exceptions.TimeoutError` (one timer per
connection, not one per command). Nothing here retries: whether a bid script ran is for the caller's idempotency
to settle, as with redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
from redis.connection import SSLConnection, parse_url
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int | float


def _pack(args: tuple[Arg, ...]) -> bytes:
    return hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub types the tuple as one element


class _Pipe(asyncio.Protocol):
    def __init__(self, on_lost: Callable[[_Pipe], None]) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self._on_lost = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses, but are stream transports

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while (reply := self.reader.gets()) is not False:
            if not waiting:  # only after the callers were failed (timeout, close): this connection is done
                if self.transport is not None:
                    self.transport.abort()
                return
            future, _ = waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(self.lost or RedisConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))
        self._on_lost(self)

    def fail(self, error: Exception) -> None:
        self.lost = self.lost or error
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.transport is None or self.lost is not None:
            raise self.lost or RedisConnectionError("Redis connection is not open")
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((future, time.monotonic()))
        self.transport.write(command)  # at once: gathering a loop turn's commands into one write cost bids/s
        return future


class RedisMux:
    """`await mux.execute_command("HGET", key, field)`, `mux.register_script(lua)`: the calls of redis-py's client
    that the bid path makes, so either serves it."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0, reply_timeout_s: float = 10.0) -> None:
        self._options = parse_url(url)
        self._url = url
        self.connect_timeout_s = connect_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self._pipe: _Pipe | None = None
        self._connecting: asyncio.Lock | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    async def execute_command(self, *args: Arg) -> Any:
        pipe = self._pipe if self._pipe is not None and self._pipe.lost is None else await self._connect()
        return await pipe.send(_pack(args))

    def register_script(self, source: str) -> MuxScript:
        return MuxScript(self, source)

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        pipe, self._pipe = self._pipe, None
        if pipe is not None and pipe.transport is not None:
            pipe.fail(RedisConnectionError("Redis connection closed by the client"))
            pipe.transport.close()

    async def _connect(self) -> _Pipe:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._pipe is not None and self._pipe.lost is None:
                return self._pipe
            loop = asyncio.get_running_loop()
            options = self._options
            pipe: _Pipe | None = None
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    if "path" in options:
                        _, pipe = await loop.create_unix_connection(lambda: _Pipe(self._lost), options["path"])
                    else:
                        tls = ssl.create_default_context() if options.get("connection_class") is SSLConnection else None
                        _, pipe = await loop.create_connection(
                            lambda: _Pipe(self._lost), options.get("host", "localhost"), options.get("port", 6379),
                            ssl=tls,
                        )  # fmt: skip
                    await self._handshake(pipe)
            except (OSError, TimeoutError, ResponseError) as exc:
                if pipe is not None and pipe.transport is not None:
                    pipe.transport.close()
                if isinstance(exc, ResponseError):  # AUTH or SELECT refused: the URL is wrong, not the network
                    raise AuthenticationError(f"Redis at {self._url} refused the connection: {exc}") from exc
                raise RedisConnectionError(f"cannot connect to Redis at {self._url}: {exc}") from exc
            self._pipe = pipe
            self._arm_watchdog()
            return pipe

    async def _handshake(self, pipe: _Pipe) -> None:
        options = self._options
        if options.get("password"):
            credentials = [options.get("username") or "default", options["password"]]
            await pipe.send(_pack(("AUTH", *credentials)))
        if options.get("db"):
            await pipe.send(_pack(("SELECT", options["db"])))

    def _lost(self, pipe: _Pipe) -> None:
        if self._pipe is pipe:
            self._pipe = None

    def _arm_watchdog(self) -> None:
        if self._watchdog is None:
            period = max(0.05, self.reply_timeout_s / 4)
            self._watchdog = asyncio.get_running_loop().call_later(period, self._check_overdue)

    def _check_overdue(self) -> None:
        self._watchdog = None
        pipe = self._pipe
        if pipe is None:
            return
        if pipe.waiting and time.monotonic() - pipe.waiting[0][1] > self.reply_timeout_s:
            pipe.fail(RedisTimeoutError(f"Redis did not answer within {self.reply_timeout_s} s"))
            if pipe.transport is not None:
                pipe.transport.abort()
            self._pipe = None
            return
        self._arm_watchdog()


class MuxScript:
    """A Lua script run by its SHA1, loaded on first use or after Redis lost its script cache (NOSCRIPT)."""

    def __init__(self, mux: RedisMux, source: str) -> None:
        self.mux = mux
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[Arg] = (), args: Sequence[Arg] = ()) -> Any:
        try:
            return await self.mux.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.mux.execute_command("SCRIPT", "LOAD", self.source)
        return await self.mux.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
