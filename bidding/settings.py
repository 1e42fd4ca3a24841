"""Settings of the bidding service (prefix `AUCTION_HUB_`); the HTTP layer builds its Redis client from them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from redis.asyncio import BlockingConnectionPool, Redis

from hub.settings import DatabaseSettings, HubSettings, KafkaSettings


class BiddingSettings(HubSettings):
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis holding live lots; run it with appendonly yes and appendfsync always (ACCEPTED = durable).",
    )
    redis_max_connections: int = Field(default=64, ge=1, le=10_000)
    redis_pool_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="How long a request waits for a free Redis connection when all are busy."
    )
    redis_socket_timeout_s: float = Field(
        default=5.0,
        ge=1,
        le=300,
        description="A Redis reply overdue by this long fails the command; blocking stream reads block for less.",
    )

    def redis_client(self) -> Redis:
        """A client whose pool makes callers wait for a free connection (redis-py's default pool refuses at once)."""
        pool = BlockingConnectionPool.from_url(
            self.redis_url,
            max_connections=self.redis_max_connections,
            timeout=self.redis_pool_timeout_s,
            socket_timeout=self.redis_socket_timeout_s,
        )
        return Redis(connection_pool=pool)

    def stream_block_ms(self, wanted_ms: int) -> int:
        """An XREAD BLOCK that returns before the socket timeout fires: one as long as the timeout raced it, and
        every idle stream then read as a failed connection (an ERROR, a dropped connection, a reader backing off)."""
        return max(1, min(wanted_ms, int(self.redis_socket_timeout_s * 1000) // 2))

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL, e.g. redis://127.0.0.1:6379/0")
        return value


class NchanSettings(HubSettings):
    """The optional fan-out tier for big sales: nginx + nchan in front of the API (deploy/nchan/)."""

    live_stream: Literal["native", "nchan"] = Field(
        default="native",
        description="Where the live page's EventSource connects: the API's own SSE, or nchan (`make up` keeps native).",
    )
    nchan_stream_url: str = Field(
        default="/nchan/lots",
        description="nchan's subscriber URL as the page sees it (relative: the page is served through nginx).",
    )
    nchan_listen: str = Field(default="127.0.0.1:8080", description="nginx's public address: subscribers and API.")
    nchan_publish_port: int = Field(default=8081, ge=1, le=65535, description="nchan's publisher, loopback only.")
    nchan_api_upstream: str = Field(default="127.0.0.1:8000", description="The API nginx proxies to (host:port).")
    nchan_buffer_length: int = Field(default=200, ge=1, le=100_000, description="Messages nchan keeps per lot.")
    nchan_message_timeout_s: int = Field(default=3600, ge=1, le=7 * 86_400, description="How long nchan keeps one.")
    nchan_workers: int = Field(default=1, ge=1, le=64, description="nginx worker processes.")
    nchan_worker_connections: int = Field(default=20_000, ge=64, le=1_000_000)
    nchan_shared_memory_mb: int = Field(default=128, ge=8, le=65_536)
    nchan_ping_s: int = Field(default=15, ge=1, le=300, description="Heartbeat comment on an idle subscriber.")
    nchan_state_dir: Path = Field(default=Path("var/nchan"), description="nginx prefix: config, pid, temp, logs.")
    nchan_nginx_binary: str = Field(default="nginx", description="The nginx executable (PATH or absolute).")
    nchan_module_path: Path = Field(
        default=Path("/usr/lib/nginx/modules/ngx_nchan_module.so"),
        description="Debian's libnginx-mod-nchan; the load_module line is left out when the file is absent.",
    )
    nchan_worker_user: str = Field(default="nobody", description="nginx workers' user when started as root.")
    nchan_discover_s: float = Field(default=1.0, gt=0, le=60, description="How often the publisher looks for lots.")

    @field_validator("nchan_listen", "nchan_api_upstream")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port; write e.g. 127.0.0.1:8080")
        return value


class BidLifecycleSettings(BiddingSettings, DatabaseSettings, KafkaSettings):
    """The persister (Redis bids streams -> PostgreSQL + Kafka `auction.bids`) and the lot scheduler."""

    source_schema: str = Field(default="public", description="Schema of the marketplace tables in topic names.")
    key_schemas_enable: bool = Field(default=False, description="Vehicle keys with the JSON converter's schema.")
    auction_bids_topic: str = Field(default="auction.bids", pattern=r"^[A-Za-z0-9_\-.]+$")
    persister_consumer: str | None = Field(default=None, description="Consumer name; default host-pid.")
    persister_batch: int = Field(default=500, ge=1, le=100_000, description="Entries read per stream and round.")
    persister_block_ms: int = Field(
        default=250, ge=1, le=10_000, description="XREADGROUP BLOCK of an idle round (at most half the socket timeout)."
    )
    persister_claim_idle_ms: int = Field(
        default=10_000, ge=100, le=3_600_000, description="Another consumer's unacknowledged entry is taken after this."
    )
    scheduler_interval_s: float = Field(default=0.5, gt=0, le=60, description="How often lots are opened and closed.")
    scheduler_arm_ahead_s: float = Field(default=300, ge=0, le=86_400, description="Arm lots this long before start.")
    scheduler_announce_ahead_s: float = Field(
        default=30 * 86_400, ge=0, le=366 * 86_400,
        description="Lots of auctions starting this far ahead are armed and announced to search (upcoming).",
    )  # fmt: skip
    scheduler_announce_every_s: float = Field(
        default=30, gt=0, le=3_600, description="How often the scheduler sweeps that far ahead."
    )

    def vehicle_change_topic(self) -> str:
        return f"{self.topic_prefix}.{self.source_schema}.vehicles"
