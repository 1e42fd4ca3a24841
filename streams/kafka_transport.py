"""Faust's Kafka transport with a configurable fetch wait.

Faust builds its consumer with `fetch_max_wait_ms=1500`. Kafka answers a fetch as soon as data arrives,
but tansu (the embedded broker) holds every fetch for the whole wait, which would add up to 1.5 s to
every hop of the pipeline. This transport sets the wait the worker is configured with instead.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver

SCHEME = "hubkafka"


class BoundedWaitConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_max_wait_ms = 100

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        return consumer


class BoundedWaitConsumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return BoundedWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = BoundedWaitConsumer


def broker_url(bootstrap_servers: str, fetch_max_wait_ms: int) -> str:
    """A Faust broker URL that selects this transport with the given fetch wait."""
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
    BoundedWaitConsumerThread.fetch_max_wait_ms = fetch_max_wait_ms
    return ";".join(f"{SCHEME}://{server.strip()}" for server in bootstrap_servers.split(","))
