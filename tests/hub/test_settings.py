"""Settings come from AUCTION_HUB_* variables; a bad value names the variable and the fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hub.settings import KafkaSettings, SettingsError, load_settings
from streams.settings import WorkerSettings


def test_defaults_and_unprefixed_kafka_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    settings = load_settings(WorkerSettings)
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert settings.topic_prefix == "marketplace"
    assert settings.change_topic("vehicles") == "marketplace.public.vehicles"


@pytest.mark.parametrize(
    ("variable", "value", "hint"),
    [
        ("AUCTION_HUB_KAFKA_BOOTSTRAP_SERVERS", "kafka-without-port", "host:port"),
        ("AUCTION_HUB_TOPIC_PARTITIONS", "0", "greater than or equal to 1"),
        ("AUCTION_HUB_INDEX_BACKEND", "solr", "tantivy"),
        ("AUCTION_HUB_DATABASE_URL", "mysql://x", "postgresql://"),
    ],
)
def test_bad_value_names_variable_and_fix(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, hint: str
) -> None:
    monkeypatch.setenv(variable, value)
    from hub.up import UpSettings

    with pytest.raises(SettingsError) as caught:
        load_settings(UpSettings)
    assert variable in str(caught.value)
    assert hint in str(caught.value)
    assert "Value error" not in str(caught.value)


def test_missing_broker_is_explained() -> None:
    with pytest.raises(SettingsError, match="AUCTION_HUB_KAFKA_BOOTSTRAP_SERVERS is not set"):
        KafkaSettings(kafka_bootstrap_servers=None).require_bootstrap()


def test_cli_exits_2_with_the_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "worker"],
        env={"AUCTION_HUB_TOPIC_PARTITIONS": "-3", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "AUCTION_HUB_TOPIC_PARTITIONS='-3'" in result.stderr
