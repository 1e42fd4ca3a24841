"""Faust's Kafka transport with a configurable fetch wait and commits over processed records only.

Faust builds its consumer with `fetch_max_wait_ms=1500`. Kafka answers a fetch as soon as data arrives,
but tansu (the embedded broker) holds every fetch for the whole wait, which would add up to 1.5 s to
every hop of the pipeline. This transport sets the wait the worker is configured with instead.

Its consumer also commits from the worker's own ledger of processed records (`streams.offsets`) rather
than from faust's acknowledgements, which include records faust skipped while recovering its tables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver

from streams.offsets import ProcessedLedger

SCHEME = "hubkafka"

log = logging.getLogger(__name__)


class BoundedWaitConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_max_wait_ms = 100

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        return consumer


class BoundedWaitConsumer(driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger = ProcessedLedger()

    def mark_processed(self, tp: Any, offsets: Iterable[int]) -> None:
        """Agents call this once the records at these offsets are applied (written to the index)."""
        self.ledger.record(tp, offsets)

    def _new_offset(self, tp: Any) -> int | None:
        if not self.ledger.tracks(tp):
            new_offset: int | None = super()._new_offset(tp)
            return new_offset
        # faust's acknowledgements are not used for this partition; keep its lists from growing.
        self._acked[tp].clear()
        self._acked_index[tp].clear()
        decision = self.ledger.decide(tp, self._committed_offset[tp])
        if decision.reread_from is not None:
            log.warning("%s: offset %d was never processed; reading again from it", tp, decision.reread_from)
            asyncio.ensure_future(self.seek(tp, decision.reread_from))
        return decision.offset

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return BoundedWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = BoundedWaitConsumer


def broker_url(bootstrap_servers: str, fetch_max_wait_ms: int) -> str:
    """A Faust broker URL that selects this transport with the given fetch wait."""
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
    BoundedWaitConsumerThread.fetch_max_wait_ms = fetch_max_wait_ms
    return ";".join(f"{SCHEME}://{server.strip()}" for server in bootstrap_servers.split(","))
