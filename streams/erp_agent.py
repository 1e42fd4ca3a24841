"""The worker's ERP part: the `track_inventory` agent and the hooks the vehicle indexer calls.

    <erp>.ERP.STOCK_ITEMS (key VIN) ─┐
    auction-hub.erp-vin-links (VIN) ─┴─► track_inventory (table: erp-stock; the VIN's vehicles: the index)
                                              │ inventory refreshes for every vehicle of the VIN
                                              ▼
    auction-hub.erp-inventory-refresh (key vehicle) ─► index_vehicles ─► search index
    index_vehicles ── a vehicle took a VIN ──► auction-hub.erp-vin-links

Both inputs of `track_inventory` are keyed by VIN with the same partition count, so one consumer owns a VIN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field

from connectors.erp.settings import ErpTopicSettings
from hub.settings import load_settings
from schemas.debezium import InvalidChangeEvent, encode_key, key_schema
from streams.batching import BatchLimits, take_event_batches
from streams.erp_changes import (
    InventoryRefresh,
    StockOp,
    VinLink,
    decode_inventory_refreshes,
    decode_stock_change,
    decode_stock_ops,
    encode_inventory_refreshes,
    encode_stock_ops,
)
from streams.erp_directory import InventoryDirectory
from streams.table_writes import BatchWrites, held_writes, write_through

if TYPE_CHECKING:
    from faust import Table
    from faust.types import EventT, StreamT

    from streams.app import IndexerApp


class ErpStreamSettings(ErpTopicSettings):
    """The worker's ERP topics (env prefix AUCTION_HUB_); the change topic's name is shared with the connector."""

    erp_sync_enabled: bool = Field(default=True, description="Merge ERP inventory into vehicle documents.")
    erp_key_schemas_enable: bool = Field(default=False, description="ERP topic keys carry the converter's schema.")
    erp_vin_links_topic: str = "auction-hub.erp-vin-links"
    erp_inventory_refresh_topic: str = "auction-hub.erp-inventory-refresh"
    # Larger than the other agents' batches: a stock record is small, and every batch rewrites the vehicle document
    # of each VIN it touches, so a backlog (the ERP back after an outage) read in fewer batches rewrites each
    # vehicle fewer times.
    erp_batch_max: int = Field(
        default=15_000, ge=1, le=100_000, description="Most ERP stock changes the ERP agent applies at once."
    )
    erp_batch_backlog_window_ms: int = Field(
        default=3_000,
        ge=0,
        le=60_000,
        description="How long an ERP batch may keep filling while its partitions hold a backlog.",
    )

    def batch_limits(self, window_ms: int) -> BatchLimits:
        return BatchLimits(self.erp_batch_max, window_ms / 1000, self.erp_batch_backlog_window_ms / 1000)


class ErpWiring:
    """Registers the ERP topics, tables and agent on the indexer's Faust app; the app calls the hooks below."""

    def __init__(self, owner: IndexerApp, raw: dict[str, Any], settings: ErpStreamSettings | None = None) -> None:
        self.owner = owner
        self.settings = settings or load_settings(ErpStreamSettings)
        s = self.settings
        app = owner.app
        partitions = owner.settings.topic_partitions
        self.refresh_topic_name = s.erp_inventory_refresh_topic
        self.vehicle_topics: tuple[str, ...] = (s.erp_inventory_refresh_topic,) if s.erp_sync_enabled else ()
        self.refresh_topic = app.topic(s.erp_inventory_refresh_topic, **raw)
        self.links_topic = app.topic(s.erp_vin_links_topic, **raw)
        self._key_schema = None
        if s.erp_key_schemas_enable:
            self._key_schema = key_schema(s.erp_topic, [{"type": "string", "optional": False, "field": "VIN"}])
        # A Table, not just a TableT: stock writes go through `write_through`, which uses its serializers.
        self.stock = cast("Table[str, Any]", app.Table("erp-stock", default=None, partitions=partitions))
        if s.erp_sync_enabled:
            stock_topics = app.topic(s.erp_topic, s.erp_vin_links_topic, **raw)
            app.agent(stock_topics, name="track_inventory")(self.track_inventory)

    # -- hooks of index_vehicles ---------------------------------------------------------------------

    def owns(self, topic: str) -> bool:
        return topic == self.refresh_topic_name

    def decode_vehicle_event(self, event: EventT) -> list[InventoryRefresh]:
        return decode_inventory_refreshes(event.value) if event.value else []

    async def send_vin_links(self, links: Sequence[VinLink]) -> None:
        # Only a vehicle that took a VIN needs an answer (its inventory); one that left it is no longer found.
        await self._send_stock_ops([link for link in links if link.linked])

    # -- the agent ---------------------------------------------------------------------------------------

    async def track_inventory(self, stream: StreamT[bytes]) -> None:
        """ERP stock changes and VIN links in batches -> inventory refreshes for the vehicles of each VIN."""
        owner = self.owner
        limits = self.settings.batch_limits(owner.settings.batch_window_ms)
        async for events in take_event_batches(stream, limits):
            refreshes: dict[str, InventoryRefresh] = {}  # the newest per vehicle: a backlog refreshes each once
            moved: list[StockOp] = []
            decoded: list[tuple[EventT, list[StockOp]]] = []
            for event in events:
                try:
                    decoded.append((event, self._decode_stock_event(event, moved)))
                except InvalidChangeEvent as exc:
                    await owner._dead_letter(event, exc)  # noqa: SLF001 - the app's one dead-letter path
            changed = {op.vin for _, ops in decoded for op in ops if not isinstance(op, VinLink)}
            # Looked up after the batch was taken: see streams/erp_directory.py for why no vehicle is missed.
            carrying = await owner.indexer.live_ids_by("vin", list(changed))
            stock: BatchWrites[EventT] = BatchWrites(self.stock)
            directory = InventoryDirectory(stock, carrying)
            for event, ops in decoded:
                stock.tag = event  # the held writes carry their event: its partition is their changelog's
                for op in ops:
                    refreshes.update((r.vehicle_id, r) for r in directory.apply(op))
            changelog = await write_through(self.stock, held_writes(stock))
            await owner._send_grouped(  # noqa: SLF001
                self.refresh_topic,
                list(refreshes.values()),
                lambda r: owner._vehicle_key(r.vehicle_id),  # noqa: SLF001
                encode_inventory_refreshes,
            )
            await self._send_stock_ops(moved)
            await changelog.stored()
            owner.metrics.count("erp_events_consumed", len(events))
            owner.metrics.count("erp_inventory_refreshes_sent", len(refreshes))

    def _decode_stock_event(self, event: EventT, moved: list[StockOp]) -> list[StockOp]:
        """The operations for this partition; a stock record that left another VIN is added to `moved`
        (that VIN's partition is told through the VIN-links topic)."""
        if event.message.topic == self.settings.erp_vin_links_topic:
            return decode_stock_ops(event.value) if event.value else []
        changes = decode_stock_change(event.value)
        moved.extend(changes[:-1])
        return list(changes[-1:])

    async def _send_stock_ops(self, ops: list[StockOp]) -> None:
        key_of: Callable[[StockOp], bytes] = lambda op: self.vin_key(op.vin)  # noqa: E731
        await self.owner._send_grouped(self.links_topic, ops, key_of, encode_stock_ops)  # noqa: SLF001

    def vin_key(self, vin: str) -> bytes:
        """The key the ERP connector (or Debezium with message.key.columns=VIN) gives this VIN's records."""
        return encode_key({"VIN": vin}, self._key_schema)
