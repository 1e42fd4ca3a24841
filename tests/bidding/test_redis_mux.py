"""The multiplexed Redis connection of the bid path, against real redis-servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bidding.redis_mux import RedisMux
from tests.bidding.conftest import RedisServer


@pytest.fixture
async def mux(redis_server: RedisServer) -> AsyncIterator[RedisMux]:
    connection = RedisMux(redis_server.url)
    yield connection
    await connection.aclose()


async def test_concurrent_callers_each_get_their_own_reply(mux: RedisMux) -> None:
    async def round_trip(number: int) -> tuple[int, bytes | None, int]:
        key = f"mux:test:{number}"
        await mux.execute_command("SET", key, number)
        return number, await mux.execute_command("GET", key), await mux.execute_command("INCRBY", key, number)

    results = await asyncio.gather(*(round_trip(number) for number in range(2000)))
    assert all(value == str(number).encode() and incremented == 2 * number for number, value, incremented in results)
    assert mux._pipe is not None
    assert not mux._pipe.waiting


async def test_an_error_reply_goes_to_its_caller_and_the_others_are_not_shifted(mux: RedisMux) -> None:
    await mux.execute_command("SET", "mux:text", "not a number")
    calls = [
        mux.execute_command("INCR", "mux:text") if n % 3 == 0 else mux.execute_command("ECHO", n) for n in range(30)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    for number, result in enumerate(results):
        if number % 3 == 0:
            assert isinstance(result, ResponseError)
            assert "not an integer" in str(result)
        else:
            assert result == str(number).encode()


async def test_scripts_run_by_sha_and_reload_after_a_script_flush(mux: RedisMux) -> None:
    script = mux.register_script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
    assert await script(keys=["k"], args=["a", 41]) == [b"k", b"a", 42]
    await mux.execute_command("SCRIPT", "FLUSH")  # Redis restarted, or another client flushed the cache
    assert await script(keys=["k2"], args=["b", 1]) == [b"k2", b"b", 2]
    failing = mux.register_script("return redis.error_reply('BAD_BID lot closed')")
    with pytest.raises(ResponseError, match="BAD_BID lot closed"):
        await failing()


async def test_a_late_reply_times_out_every_caller_and_the_next_command_reconnects(redis_server: RedisServer) -> None:
    mux = RedisMux(redis_server.url, reply_timeout_s=0.2)
    try:
        assert await mux.execute_command("PING") == b"PONG"
        stuck = [mux.execute_command("BLPOP", "mux:never", 0), mux.execute_command("PING")]  # held behind BLPOP
        results = await asyncio.wait_for(asyncio.gather(*stuck, return_exceptions=True), timeout=5)
        assert all(isinstance(result, RedisTimeoutError) for result in results), results
        assert await mux.execute_command("PING") == b"PONG"
    finally:
        await mux.aclose()


async def test_a_killed_server_fails_calls_in_flight_then_the_connection_comes_back(
    redis_server_factory: Callable[[], RedisServer],
) -> None:
    server = redis_server_factory()
    mux = RedisMux(server.url)
    try:
        await mux.execute_command("SET", "mux:kept", "yes")
        in_flight = asyncio.gather(
            *(mux.execute_command("BLPOP", "mux:never", 0) for _ in range(5)), return_exceptions=True
        )
        await asyncio.sleep(0.1)
        server.kill()
        results = await asyncio.wait_for(in_flight, timeout=5)
        assert all(isinstance(result, RedisConnectionError) for result in results), results
        with pytest.raises(RedisConnectionError, match="cannot connect"):
            await mux.execute_command("PING")  # down: a clear error at once, no hang
        server.start()
        assert await mux.execute_command("GET", "mux:kept") == b"yes"  # appendfsync always: it was durable
    finally:
        await mux.aclose()


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[int]:
    server = RedisServer(tmp_path, extra_args=("--requirepass", "s3cret-bids")).start()
    try:
        yield server.port
    finally:
        server.stop()


async def test_password_and_database_come_from_the_url(password_redis: int) -> None:
    mux = RedisMux(f"redis://:s3cret-bids@127.0.0.1:{password_redis}/3")
    check = aioredis.Redis(port=password_redis, password="s3cret-bids", db=3)
    try:
        await mux.execute_command("SET", "mux:db", "three")
        assert await check.get("mux:db") == b"three"
        wrong = RedisMux(f"redis://:wrong@127.0.0.1:{password_redis}/0")
        with pytest.raises(AuthenticationError, match="WRONGPASS|invalid password"):
            await wrong.execute_command("PING")
        await wrong.aclose()
    finally:
        await mux.aclose()
        await check.aclose()
