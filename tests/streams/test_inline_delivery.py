"""The transport's inline delivery of fetched records: `BoundedWaitConsumer.deliver` and `finish_stepped`.

A delivery that does not wait completes in place; one that waits finishes as an asyncio task would (results,
exceptions and turns of the loop included), and a flow suspension abandons it as Faust's `wait_first` race does.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from mode import Service

from streams.kafka_transport import BoundedWaitConsumer, finish_stepped


class _Flow(Service):
    """Just what `deliver` uses of a consumer: `wait_first` (mode's) and the suspend-flow event."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()


async def _deliver(flow: _Flow, delivery: Any) -> bool:
    return await BoundedWaitConsumer.deliver(flow, delivery)  # type: ignore[arg-type]


async def test_a_delivery_that_does_not_wait_completes_in_place() -> None:
    delivered: list[int] = []

    async def delivery() -> None:
        delivered.append(1)

    tasks_before = len(asyncio.all_tasks())
    assert await _deliver(_Flow(), delivery())
    assert delivered == [1]
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_waiting_delivery_finishes_once_what_it_waits_for_is_done() -> None:
    loop = asyncio.get_running_loop()
    buffer_free: asyncio.Future[str] = loop.create_future()
    steps: list[str] = []

    async def delivery() -> None:
        steps.append("full")
        steps.append(await buffer_free)
        await asyncio.sleep(0)  # a bare turn of the loop
        steps.append(await asyncio.sleep(0.01, result="slept"))

    loop.call_later(0.01, buffer_free.set_result, "put")
    assert await _deliver(_Flow(), delivery())
    assert steps == ["full", "put", "slept"]


async def test_an_exception_after_waiting_reaches_the_caller() -> None:
    loop = asyncio.get_running_loop()
    failing: asyncio.Future[None] = loop.create_future()
    seen: list[str] = []

    async def delivery() -> None:
        try:
            await failing
        except KeyError:
            seen.append("delivery saw it")
            raise

    loop.call_later(0.01, failing.set_exception, KeyError("decode"))
    with pytest.raises(KeyError):
        await _deliver(_Flow(), delivery())
    assert seen == ["delivery saw it"]


async def test_an_exception_before_waiting_reaches_the_caller() -> None:
    async def delivery() -> None:
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        await _deliver(_Flow(), delivery())


async def test_a_flow_suspension_abandons_a_waiting_delivery() -> None:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    outcome: list[str] = []
    flow = _Flow()

    async def delivery() -> None:
        try:
            await never
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("delivered")

    loop.call_later(0.01, flow.suspend_flow.set)
    assert not await asyncio.wait_for(_deliver(flow, delivery()), timeout=5)
    await asyncio.sleep(0)
    assert outcome == ["cancelled"]
    assert never.cancelled()


async def test_cancelling_a_finish_closes_a_delivery_that_swallows_the_cancellation() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[None] = loop.create_future()
    second: asyncio.Future[None] = loop.create_future()

    async def stubborn() -> None:
        try:
            await first
        except asyncio.CancelledError:
            await second  # waits again: nothing may resume it once abandoned

    coroutine = stubborn()
    waiting_on = coroutine.send(None)
    finishing = asyncio.ensure_future(finish_stepped(coroutine, waiting_on))
    await asyncio.sleep(0)
    finishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finishing
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


async def test_a_delivery_yielding_something_else_than_a_future_is_refused() -> None:
    class Odd:
        def __await__(self) -> Any:
            yield "not a future"

    async def delivery() -> None:
        await Odd()

    with pytest.raises(RuntimeError, match="not an asyncio future"):
        await _deliver(_Flow(), delivery())
