"""The API process's settings (env prefix AUCTION_HUB_)."""

from __future__ import annotations

from pydantic import Field

from hub.settings import IndexSettings
from marketplace.settings import MarketplaceSettings


class ApiSettings(IndexSettings, MarketplaceSettings):
    """The API process serves search (index) and the marketplace write API (PostgreSQL)."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    reader_refresh_ms: int = Field(
        default=50,
        ge=0,
        le=60_000,
        description="How stale the API's view of the index may get before it reloads.",
    )
    retry_after_s: int = Field(default=5, ge=1, le=3600)
    open_telemetry: bool = Field(
        default=False,
        description=(
            "FastAPI's OpenTelemetry spans, metrics and logs (to the providers the process configures, or OTLP with "
            "FASTAPI_OTEL_AUTO_CONFIGURE=true). Off: no per-request provider checks (~7% of a bid's CPU)."
        ),
    )
