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

Finally, it hands each fetched record to the streams inline. Faust races every record's delivery against a flow
suspension (a rebalance) with `wait_first`, which creates four tasks and cancels three per record: a large share
of the worker's CPU during a snapshot. A delivery nearly always completes without waiting, so it is stepped in
place and only one that has to wait (a full stream buffer, a suspended flow) is raced as Faust does. A delivery
that race abandons, like the records faust empties from its stream buffers (`streams.flow_control`), is fetched
again: `read_again` seeks its partition back between two fetched batches. Faust lets both go, counting on its
seek to the committed offsets; delivering this fast, whole partition tails were lost after a kill -9.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver
from mode import Service

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
        # partition -> offset to fetch it again from, before its next fetched batch is delivered
        self.pending_rereads: dict[Any, int] = {}

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
            self.read_again(tp, decision.reread_from, f"offset {decision.reread_from} was never processed")
        return decision.offset

    def read_again(self, tp: Any, offset: int, why: str) -> None:
        """Fetch `tp` again from `offset`: records from there were fetched but never reached the agents.

        The seek happens between two fetched batches (`_apply_rereads`); until then the partition's records
        still in the current batch are left out, since they will be fetched again."""
        pending = self.pending_rereads.get(tp)
        if pending is None or offset < pending:
            self.pending_rereads[tp] = offset
        log.warning("%s: %s; reading again from offset %d", tp, why, offset)

    async def _apply_rereads(self) -> None:
        rereads, self.pending_rereads = self.pending_rereads, {}
        assigned = self.assignment()
        for tp, offset in rereads.items():
            if tp in assigned:  # a revoked partition is read from its committed offset by its next owner
                await self.seek(tp, offset)

    async def deliver(self, delivery: Coroutine[Any, Any, None]) -> bool:
        """Run one record's delivery to its streams; race it against a flow suspension only if it must wait.
        False: the delivery was abandoned (the flow was suspended, or the consumer stopped)."""
        try:
            waiting_on = delivery.send(None)
        except StopIteration:
            return True
        finishing = finish_stepped(delivery, waiting_on)
        raced = await self.wait_first(finishing, self.suspend_flow.wait())
        return finishing in raced.done

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        """faust-streaming 0.15.3's `Consumer.getmany`, except that no fetched record is dropped unseen.

        Faust skips a fetched record whose partition is not active (paused) when the batch is handed out, and stops
        handing out a batch when the flow stops or the generation changes, counting on a seek to the committed
        offsets to fetch those records again. A partition with no committed offset yet is not sought back, so its
        records were lost: a restarted worker whose stream partitions were fetched while table recovery held them
        paused (the active set is shared, so a fetch can ask for it while it is empty, which means every partition)
        waited for records it had already consumed. Each such partition is read again from its first record left
        out.
        """
        records, active_partitions = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        left_out: dict[Any, int] = {}
        if not self.flow_active:
            try:
                await self.perform_seek()
            except Exception as exc:  # noqa: BLE001 - faust's own handling: log, and read again below
                log.warning("exception performing seek when flow not active: %r", exc)
        else:
            generation_id = self.app.consumer_generation_id
            to_message = self._to_message
            for tp, record in self.scheduler.iterate(records):
                if tp in left_out:
                    continue
                handing_out = self.flow_active and self.app.consumer_generation_id == generation_id
                if handing_out and (
                    active_partitions is None or tp in active_partitions or tp in self._buffered_partitions
                ):
                    yield tp, to_message(tp, record)
                else:
                    left_out[tp] = record.offset
        if not left_out and not self.flow_active:
            left_out = {tp: batch[0].offset for tp, batch in records.items() if batch}
        for tp, offset in left_out.items():
            self.read_again(tp, offset, "fetched while its partition was paused or the flow stopped")

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - the fetcher's loop
        # faust-streaming 0.15.3's loop; each record goes through `_take`, which delivers it with `deliver`.
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        yield_every = 100
        num_since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                if self.pending_rereads:
                    await self._apply_rereads()
                set_flag(CONSUMER_FETCHING)
                records = getmany(timeout=1.0)
                await self.sleep(0)  # getmany can return at once again and again: let the loop run
                if not self.should_stop:
                    async for tp, message in records:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await asyncio.sleep(0)
                            num_since_yield = 0
                        await self._take(tp, message, callback)
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    async def _take(self, tp: Any, message: Any, callback: Any) -> None:
        if tp in self.pending_rereads:
            return  # fetched before the partition is read again from an earlier offset: it comes back then
        offset = message.offset
        read_offset = self._read_offset[tp]
        if read_offset is not None and offset < read_offset:
            log.debug("dropped a record read again: %s@%d", tp, offset)
            return
        if offset - (read_offset or 0) > 1 and read_offset and self.app.topics.acks_enabled_for(message.topic):
            await self._add_gap(tp, read_offset + 1, offset)
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()
        if not await self.deliver(callback(message)):
            self.read_again(tp, offset, "its delivery was abandoned")
            return
        self._read_offset[tp] = offset

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return BoundedWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


async def finish_stepped(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """Drive `coroutine`, stepped by hand until it yielded `waiting_on`, to its end as an asyncio task would:
    wait for the future it yielded (None: it only gave the loop a turn), then resume it; cancelling this
    cancels that future and the coroutine."""
    while True:
        if waiting_on is None:
            await asyncio.sleep(0)
        elif asyncio.isfuture(waiting_on):
            waiting_on._asyncio_future_blocking = False  # noqa: SLF001 - what a task does with a yielded future
            try:
                await asyncio.wait([waiting_on])
            except asyncio.CancelledError:
                waiting_on.cancel()
                _abandon(coroutine)
                raise
        else:
            coroutine.close()
            raise RuntimeError(f"a delivery yielded {waiting_on!r}, which is not an asyncio future")
        try:
            waiting_on = coroutine.send(None)  # the coroutine reads the future's result or exception itself
        except StopIteration as finished:
            return finished.value


def _abandon(coroutine: Coroutine[Any, Any, Any]) -> None:
    try:
        coroutine.throw(asyncio.CancelledError())
    except (asyncio.CancelledError, StopIteration):
        return
    coroutine.close()  # it caught the cancellation and waits again: nothing will resume it


class Transport(driver.Transport):
    Consumer = BoundedWaitConsumer


def broker_url(bootstrap_servers: str, fetch_max_wait_ms: int) -> str:
    """A Faust broker URL that selects this transport with the given fetch wait."""
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
    BoundedWaitConsumerThread.fetch_max_wait_ms = fetch_max_wait_ms
    return ";".join(f"{SCHEME}://{server.strip()}" for server in bootstrap_servers.split(","))
