"""Settings shared by the services, as mixins; each service composes one frozen class of its own.

Every variable is read from the environment with the prefix `AUCTION_HUB_` (a few also accept the
conventional unprefixed name, e.g. `KAFKA_BOOTSTRAP_SERVERS`). Nothing else reads `os.environ`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AUCTION_HUB_"

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names the variable and the fix."""


class HubSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")


class DatabaseSettings(HubSettings):
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/auction_hub",
        description="PostgreSQL URL of the marketplace database (the system of record).",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL, e.g. postgresql://postgres@127.0.0.1:5432/auction_hub")
        return value


class KafkaSettings(HubSettings):
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(f"{ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
        description="host:port[,host:port]; unset in embedded mode, where `auction-hub up` starts tansu.",
    )
    topic_prefix: str = Field(default="marketplace", pattern=r"^[A-Za-z0-9_\-]+$")
    topic_partitions: int = Field(default=4, ge=1, le=1024)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for server in value.split(","):
            host, _, port = server.strip().removeprefix("kafka://").rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port; write e.g. 127.0.0.1:9092")
        return value

    def require_bootstrap(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise SettingsError(
                f"{ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS is not set: point it at Kafka (host:port), "
                "or run `auction-hub up`, which starts the embedded broker and sets it"
            )
        return self.kafka_bootstrap_servers


class IndexSettings(HubSettings):
    index_backend: Literal["tantivy", "elasticsearch"] = "tantivy"
    index_path: Path = Field(default=Path("var/index"), description="Directory of the embedded tantivy index.")
    elasticsearch_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(f"{ENV_PREFIX}ELASTICSEARCH_URL", "ELASTICSEARCH_URL"),
    )
    index_name: str = Field(default="vehicles", pattern=r"^[a-z0-9_\-]+$")
    index_commit_interval_ms: int = Field(default=200, ge=10, le=10_000)


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Build a settings class from the environment; a bad value raises `SettingsError` naming it."""
    try:
        return settings_class()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            variable = name if name.startswith(ENV_PREFIX) or name == "KAFKA_BOOTSTRAP_SERVERS" else ENV_PREFIX + name
            problems.append(f"{variable}={error.get('input')!r}: {str(error['msg']).removeprefix('Value error, ')}")
        raise SettingsError("invalid settings; fix these environment variables:\n  " + "\n  ".join(problems)) from exc
