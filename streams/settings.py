"""The stream worker's settings (env prefix AUCTION_HUB_)."""

from __future__ import annotations

from pydantic import Field

from hub.settings import IndexSettings, KafkaSettings
from streams.batching import BatchLimits


class WorkerSettings(KafkaSettings, IndexSettings):
    app_id: str = Field(default="auction-hub-indexer", pattern=r"^[A-Za-z0-9_\-.]+$")
    source_schema: str = Field(default="public", description="Schema of the marketplace tables in topic names.")
    key_schemas_enable: bool = Field(
        default=False,
        description="Whether change-topic keys carry the JSON converter's schema (must match the source).",
    )
    batch_max: int = Field(default=5_000, ge=1, le=100_000, description="Most records an agent applies at once.")
    batch_window_ms: int = Field(default=100, ge=1, le=10_000, description="How long a batch gathers live records.")
    batch_backlog_window_ms: int = Field(
        default=1_000,
        ge=0,
        le=60_000,
        description="How long a batch may keep filling while its partitions hold enough records to fill it.",
    )
    fetch_max_wait_ms: int = Field(
        default=50, ge=1, le=5_000, description="How long a fetch may wait for data (tansu always waits this long)."
    )
    # Off by default: with a linger, Faust's producer was seen holding the last records of a quiet stream (a
    # vehicle's dealer link) undelivered for minutes, so a new vehicle never got its dealer block.
    producer_linger_ms: int = Field(
        default=0, ge=0, le=1_000, description="How long the producer gathers records into one produce request."
    )
    producer_max_batch_bytes: int = Field(default=1 << 20, ge=16 * 1024, le=64 << 20)
    compression_type: str | None = Field(default=None, pattern=r"^(gzip|lz4|zstd)$")
    max_fetch_bytes: int = Field(default=1 << 20, ge=16 * 1024, le=64 << 20)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=6066, ge=0, le=65535, description="0 turns the metrics page off.")
    session_timeout_s: float = Field(default=10.0, gt=0)
    dead_letter_topic: str = "auction-hub.dead-letter"
    dealer_links_topic: str = "auction-hub.dealer-links"
    vehicle_refresh_topic: str = "auction-hub.vehicle-refresh"
    auction_bids_topic: str = Field(default="auction.bids", description="Live bidding's records (bidding.persistence).")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    def batch_limits(self) -> BatchLimits:
        return BatchLimits(self.batch_max, self.batch_window_ms / 1000, self.batch_backlog_window_ms / 1000)

    def change_topic(self, table: str) -> str:
        return f"{self.topic_prefix}.{self.source_schema}.{table}"
