"""The Kafka adapter of `BidEventSink`: bid records, closes and results to `auction.bids`, keyed by vehicle."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.postgres.envelope import Record
from connectors.postgres.publisher import KafkaPublisher
from schemas.auction_bids import AuctionBidEvent, encode_event
from schemas.debezium import encode_key, key_schema


def vehicle_key(vehicle_id: int, key_schema_topic: str | None = None) -> bytes:
    """The vehicle's key as the change topic `<prefix>.<schema>.vehicles` writes it (same bytes: same partition)."""
    schema = None
    if key_schema_topic is not None:
        schema = key_schema(key_schema_topic, [{"type": "int64", "optional": False, "field": "id"}])
    return encode_key({"id": vehicle_id}, schema)


class KafkaBidSink:
    """Publishes with acks=all and waits until every record is stored; `start`/`close` own the producer."""

    def __init__(
        self, bootstrap_servers: str, topic: str, partitions: int, *, key_schema_topic: str | None = None
    ) -> None:
        self.topic = topic
        self.partitions = partitions
        self.key_schema_topic = key_schema_topic
        self.publisher = KafkaPublisher(bootstrap_servers, linger_ms=1)

    async def start(self) -> None:
        await self.publisher.start()
        await self.publisher.ensure_topics([self.topic], self.partitions)

    async def publish(self, events: Sequence[AuctionBidEvent]) -> None:
        if not events:
            return
        records = [
            Record(self.topic, vehicle_key(event.vehicleId, self.key_schema_topic), encode_event(event))
            for event in events
        ]
        delivered = await self.publisher.publish(records)
        await delivered

    async def close(self) -> None:
        await self.publisher.close()
