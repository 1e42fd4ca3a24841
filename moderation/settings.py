"""The moderation worker's settings (env prefix AUCTION_HUB_): detectors, verdict policy, failure path."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from hub.settings import DatabaseSettings, KafkaSettings


class PolicySettings(DatabaseSettings):
    """Thresholds of the verdict policy (tuned on the dev half of bench/data/moderation, see the README)."""

    profanity_reject: float = Field(default=0.80, ge=0, le=1, description="profanity score from which to reject")
    profanity_review: float = Field(default=0.50, ge=0, le=1, description="from here up to reject: human review")
    toxicity_reject: float = Field(default=0.80, ge=0, le=1, description="detoxify score from which to reject")
    toxicity_review: float = Field(default=0.50, ge=0, le=1)
    pii_min_score: float = Field(default=0.40, ge=0, le=1, description="presidio findings below this are ignored")

    @model_validator(mode="after")
    def _ordered(self) -> PolicySettings:
        if self.profanity_review > self.profanity_reject or self.toxicity_review > self.toxicity_reject:
            raise ValueError("review thresholds must not exceed the reject thresholds")
        return self


class ModerationSettings(PolicySettings, KafkaSettings):
    moderation_app_id: str = Field(default="auction-hub-moderation", pattern=r"^[A-Za-z0-9_\-.]+$")
    source_schema: str = "public"
    key_schemas_enable: bool = False
    moderation_dead_letter_topic: str = Field(
        default="auction-hub.moderation-dead-letter",
        description="Items whose automatic moderation failed, with attempt count and error; the retry agent reads it.",
    )
    detector_timeout_s: float = Field(default=2.0, gt=0, le=120, description="a detector run past this fails")
    max_attempts: int = Field(default=3, ge=1, le=20, description="failed attempts before a human must decide")
    retry_backoff_s: float = Field(default=5.0, ge=0, le=3600, description="first retry delay; doubles per attempt")
    breaker_failures: int = Field(default=5, ge=1, le=1000, description="consecutive failures that open the breaker")
    breaker_cooldown_s: float = Field(default=30.0, gt=0, le=3600, description="open breaker: fail fast this long")
    detoxify_checkpoint: Path | None = Field(
        default=None, description="detoxify checkpoint (.ckpt); unset: profanity model and rules only"
    )
    detoxify_config_dir: Path | None = Field(
        default=None, description="directory with the checkpoint's transformers config and tokenizer files"
    )
    detoxify_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="the checkpoint's sha256")
    spacy_model: str | None = Field(
        default="en_core_web_sm",
        description="spaCy NER model for PERSON / LOCATION, used when installed (never downloaded); empty: off",
    )
    fault_injection: str | None = Field(
        default=None,
        pattern=r"^(error|hang):\d+$",
        description="drills only: `error:N` / `hang:N` makes the first N detector runs fail or hang",
    )
    moderation_metrics_host: str = "127.0.0.1"
    moderation_metrics_port: int = Field(default=6067, ge=0, le=65535, description="0 turns the metrics page off")
    session_timeout_s: float = Field(default=10.0, gt=0)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @model_validator(mode="after")
    def _detoxify_complete(self) -> ModerationSettings:
        if self.detoxify_checkpoint is not None and (self.detoxify_config_dir is None or self.detoxify_sha256 is None):
            raise ValueError("a detoxify checkpoint needs AUCTION_HUB_DETOXIFY_CONFIG_DIR and _SHA256")
        return self

    def change_topic(self, table: str) -> str:
        return f"{self.topic_prefix}.{self.source_schema}.{table}"
