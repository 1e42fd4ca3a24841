"""Settings of the PostgreSQL source connector (env prefix AUCTION_HUB_, e.g. AUCTION_HUB_PG_SLOT_NAME)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from hub.settings import DatabaseSettings, KafkaSettings

DEFAULT_TABLES = ("dealers", "vehicles", "auctions", "auction_lots", "bids", "questions", "answers")

DecimalHandlingMode = Literal["string", "double", "precise"]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresConnectorSettings(DatabaseSettings, KafkaSettings):
    pg_slot_name: str = Field(default="auction_hub", description="Logical replication slot (pgoutput).")
    pg_publication_name: str = Field(default="auction_hub", description="Publication of the captured tables.")
    pg_schema: str = Field(default="public", description="Schema of the captured tables.")
    pg_tables: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_TABLES,
        description="Captured tables, comma-separated in the environment. `users` is left out on purpose: "
        "it holds password hashes.",
    )
    pg_schemas_enable: bool = Field(default=False, description="JSON converter `schemas.enable`.")
    pg_decimal_handling_mode: DecimalHandlingMode = "string"
    pg_heartbeat_interval_s: float = Field(default=10.0, gt=0, le=3600)
    pg_heartbeat_action_query: str | None = Field(
        default=None, description="SQL run on the source at each heartbeat, e.g. to touch a heartbeat table."
    )
    pg_status_interval_s: float = Field(default=10.0, ge=1, le=300, description="Standby status period.")
    pg_wal_check_interval_s: float = Field(default=60.0, gt=0, le=3600)
    pg_wal_warn_bytes: int = Field(default=1 << 30, ge=0, description="Warn when the slot retains more WAL.")
    pg_batch_max: int = Field(default=5000, ge=1, le=1_000_000, description="Changes per Kafka publish.")
    pg_max_inflight_batches: int = Field(default=8, ge=1, le=1024)
    pg_linger_ms: int = Field(default=5, ge=0, le=10_000)
    pg_compression_type: Literal["none", "gzip", "lz4", "zstd"] = Field(
        default="none",
        description="Record batch compression of streamed changes. Off by default: on tansu, zstd raised the "
        "freshness p99 from ~0.7 s to ~4 s, and lz4 by ~0.1 s (to 1.06 s, past the 1 s goal).",
    )
    pg_snapshot_compression_type: Literal["none", "gzip", "lz4", "zstd"] = Field(
        default="lz4",
        description="Record batch compression of the initial snapshot, which is most of what an in-memory broker "
        "holds: lz4 kept tansu at 335 MB instead of 1.4 GB for 1M vehicles, at no cost in snapshot time.",
    )
    pg_max_batch_bytes: int = Field(default=1 << 20, ge=16_384, le=64 << 20)
    pg_snapshot_fetch_rows: int = Field(default=5000, ge=1, le=1_000_000)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("pg_tables", mode="before")
    @classmethod
    def _split_tables(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("pg_tables")
    @classmethod
    def _valid_tables(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one table, e.g. vehicles,dealers")
        for table in value:
            if not _IDENTIFIER.match(table):
                raise ValueError(f"{table!r} is not a lower-case unquoted table name")
        return tuple(dict.fromkeys(value))

    @field_validator("pg_slot_name", "pg_publication_name", "pg_schema")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} must be a lower-case identifier (a-z, 0-9, _)")
        return value

    @property
    def heartbeat_topic(self) -> str:
        return f"__debezium-heartbeat.{self.topic_prefix}"
