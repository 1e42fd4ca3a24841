"""Settings of the marketplace write API (served by the `auction-hub api` process)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from hub.settings import DatabaseSettings

MIN_SECRET_LENGTH = 32


class MarketplaceSettings(DatabaseSettings):
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 key of access tokens (32+ characters); unset: the write API answers 503.",
    )
    access_token_minutes: int = Field(default=15, ge=1, le=60, description="Access tokens expire within an hour.")
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16, description="bcrypt cost factor (2^rounds iterations).")
    cors_origins: str = Field(default="", description="Comma-separated origins allowed by CORS; empty: none.")
    max_request_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    db_pool_size: int = Field(default=10, ge=1, le=200)

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters, e.g. `openssl rand -hex 32`")
        return value

    @property
    def allowed_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]
