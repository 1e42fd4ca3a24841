"""Settings of the bidding service (prefix `AUCTION_HUB_`); the HTTP layer builds its Redis client from them."""

from __future__ import annotations

from pydantic import Field, field_validator

from hub.settings import HubSettings


class BiddingSettings(HubSettings):
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis holding live lots; run it with appendonly yes and appendfsync always (ACCEPTED = durable).",
    )
    redis_max_connections: int = Field(default=64, ge=1, le=10_000)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL, e.g. redis://127.0.0.1:6379/0")
        return value
