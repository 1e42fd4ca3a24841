"""Settings of the ERP source connector and the ERP simulator (env prefix AUCTION_HUB_, e.g. AUCTION_HUB_ERP_DSN)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from connectors.erp.dialects import ErpDsn
from hub.settings import DatabaseSettings, HubSettings, KafkaSettings


class ErpTopicSettings(HubSettings):
    """Where the ERP's change events are: `<erp_topic_prefix>.<erp_schema>.<erp_table>` (read by the worker too)."""

    erp_topic_prefix: str = Field(default="erp", pattern=r"^[A-Za-z0-9_\-]+$")
    erp_schema: str = Field(default="ERP", pattern=r"^[A-Za-z0-9_$#]+$", description="Oracle schema (owner).")
    erp_table: str = Field(default="STOCK_ITEMS", pattern=r"^[A-Za-z0-9_$#]+$")

    @property
    def erp_topic(self) -> str:
        return f"{self.erp_topic_prefix}.{self.erp_schema}.{self.erp_table}"


class ErpDatabaseSettings(HubSettings):
    erp_dsn: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/auction_hub_erp",
        description="The ERP database: oracle://user:password@host:1521/SERVICE (python-oracledb thin), or a "
        "stand-in: postgresql://... or mariadb://user:password@host:3306/database.",
    )
    erp_connect_timeout_s: float = Field(default=5.0, gt=0, le=120)

    @field_validator("erp_dsn")
    @classmethod
    def _known_dsn(cls, value: str) -> str:
        ErpDsn.parse(value)
        return value

    @property
    def dsn(self) -> ErpDsn:
        return ErpDsn.parse(self.erp_dsn)


class ErpConnectorSettings(ErpDatabaseSettings, ErpTopicSettings, KafkaSettings):
    erp_capture_name: str = Field(
        default="auction-hub",
        pattern=r"^[A-Za-z0-9_\-.]{1,64}$",
        description="The row of HUB_CAPTURE_STATE that holds this connector's high-water mark.",
    )
    erp_key_columns: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("VIN",),
        description="Record key columns (Debezium's message.key.columns): the VIN co-partitions stock with vehicles.",
    )
    erp_schemas_enable: bool = Field(default=False, description="JSON converter `schemas.enable`.")
    erp_poll_interval_ms: int = Field(default=50, ge=5, le=60_000, description="Idle wait between polls.")
    erp_batch_max: int = Field(default=2000, ge=1, le=100_000, description="Change-log rows per poll.")
    erp_gap_window_s: float = Field(
        default=120.0, gt=0, le=86_400,
        description="How long a skipped change id is awaited (longest ERP transaction); then taken as rolled back.",
    )  # fmt: skip
    erp_gap_queries_max: int = Field(default=16, ge=1, le=1000, description="Open gaps re-read per poll.")
    erp_snapshot_lookback_ids: int = Field(
        default=100_000, ge=0,
        description="At the first start, stream from this many change ids before the newest (transactions still "
        "open during the snapshot commit there), after snapshotting STOCK_ITEMS.",
    )  # fmt: skip
    erp_snapshot_fetch_rows: int = Field(default=5000, ge=1, le=1_000_000)
    erp_state_interval_s: float = Field(default=1.0, ge=0, le=3600, description="Store the high-water mark this often.")
    erp_purge_interval_s: float = Field(default=60.0, ge=0, le=86_400, description="0: never purge the change log.")
    erp_purge_keep_ids: int = Field(default=100_000, ge=0, description="Captured change-log rows kept for inspection.")
    erp_backoff_initial_s: float = Field(default=0.5, gt=0, le=60)
    erp_backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    erp_breaker_failures: int = Field(default=3, ge=1, le=100, description="Failures in a row that open the breaker.")
    erp_ack_timeout_s: float = Field(default=30.0, gt=0, le=600)
    erp_health_host: str = "127.0.0.1"
    erp_health_port: int = Field(default=8086, ge=0, le=65535, description="GET /health and /metrics; 0: off.")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("erp_key_columns", mode="before")
    @classmethod
    def _split_columns(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().upper() for part in value.split(",") if part.strip())
        return value

    @field_validator("erp_key_columns")
    @classmethod
    def _known_columns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from connectors.erp.source import STOCK_COLUMNS

        unknown = [column for column in value if column not in STOCK_COLUMNS]
        if not value or unknown:
            raise ValueError(f"name key columns among {', '.join(STOCK_COLUMNS)} (unknown: {unknown})")
        return value


class ErpSimSettings(ErpDatabaseSettings, DatabaseSettings):
    """`auction-hub erp-sim`: the ERP (stand-in) to write to, and the marketplace whose VINs it stocks."""
