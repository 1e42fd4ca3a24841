"""Faust's Kafka transport with a configurable fetch wait and commits over processed records only.

Faust builds its consumer with `fetch_max_wait_ms=1500`. Kafka answers a fetch as soon as data arrives,
but tansu (the embedded broker) holds every fetch for the whole wait, which would add up to 1.5 s to
every hop of the pipeline. This transport sets the wait the worker is configured with instead.

Its consumer also commits from the worker's own ledger of processed records (`streams.offsets`) rather
than from faust's acknowledgements, which include records faust skipped while recovering its tables.

And it asks a fetch for the end of a partition. tansu answers ListOffsets(latest) with the base offset of the
partition's last record batch plus one, not the offset after its last record: a batch of 5 records at offset 0
reads as an end of 1 (the fetch's high watermark says 5, correctly). Faust recovers a table from its changelog up
to that end, so every record of a multi-record batch but its first was left out of the recovered table. The end
offsets are therefore taken from a fetch of the last batch (`true_end_offsets`): the same answer from Kafka, the
right one from tansu.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver

from streams.offsets import ProcessedLedger

SCHEME = "hubkafka"

log = logging.getLogger(__name__)


class BoundedWaitConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_max_wait_ms = 100
    _side_consumer_settings: dict[str, Any]

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        conf = self.app.conf
        self._side_consumer_settings = {
            "bootstrap_servers": driver.server_list(transport.url, transport.default_port),
            "client_id": f"{conf.broker_client_id}-end-offsets",
            "request_timeout_ms": int(conf.broker_request_timeout * 1000.0),
            **driver.credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context),
        }
        return consumer

    async def _highwaters(self, partitions: list[Any]) -> Any:
        reported = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return reported
        return await true_end_offsets(self._side_consumer_settings, reported)


async def true_end_offsets(consumer_settings: dict[str, Any], reported: Any, timeout_s: float = 10.0) -> dict[Any, int]:
    """End offsets (the offset after the last record) read from a fetch of each partition's last batch.

    `reported` is what ListOffsets said; a partition reported empty (0) is taken at its word. The fetch's high
    watermark is the answer; it can only be at or past what was reported.
    """
    ends = {tp: offset for tp, offset in reported.items() if offset is not None}
    pending = {tp: offset for tp, offset in ends.items() if offset > 0}
    if not pending:
        return ends
    consumer = AIOKafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=100, **consumer_settings)
    await consumer.start()
    try:
        asked = {TopicPartition(tp.topic, tp.partition): tp for tp in pending}
        consumer.assign(list(asked))
        for kafka_tp, tp in asked.items():
            consumer.seek(kafka_tp, pending[tp] - 1)  # the base offset of the last batch, as tansu answers
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asked and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(*asked, timeout_ms=200)
            for kafka_tp, tp in list(asked.items()):
                highwater = consumer.highwater(kafka_tp)
                if highwater is not None:
                    ends[tp] = max(ends[tp], highwater)
                    del asked[kafka_tp]
        if asked:
            log.warning("no fetch answered for the end of %s; using the broker's end offsets", sorted(asked))
    finally:
        await consumer.stop()
    return ends


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
