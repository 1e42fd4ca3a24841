"""detoxify's loading code on a tiny random checkpoint made here, and the offline guarantee: building and running
every detector opens no network connection (socket connects are refused and recorded)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from moderation.detectors import ModelDetector
from moderation.settings import ModerationSettings
from moderation.toxicity import CheckpointError, DetoxifyModel, sha256_of

CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "car", "is", "clean", "you", "idiot", "title", "?"]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A randomly initialised BERT classifier in detoxify's checkpoint format, with its config and tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    directory = tmp_path_factory.mktemp("detoxify")
    config_dir = directory / "config"
    config_dir.mkdir()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=64)  # fmt: skip
    config.num_labels = len(CLASSES)
    model = BertForSequenceClassification(config)
    config.save_pretrained(config_dir)
    (config_dir / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    (config_dir / "tokenizer_config.json").write_text('{"do_lower_case": true, "tokenizer_class": "BertTokenizer"}')
    checkpoint = directory / "toxic_tiny.ckpt"
    arch = {"model_type": "bert-base-uncased", "model_name": "BertForSequenceClassification",
            "tokenizer_name": "BertTokenizer", "num_classes": len(CLASSES)}  # fmt: skip
    torch.save(
        {
            "config": {"arch": {"args": arch}, "dataset": {"args": {"classes": CLASSES}}},
            "state_dict": model.state_dict(),
        },
        checkpoint,
    )
    return checkpoint, config_dir, sha256_of(checkpoint)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a))  # type: ignore[arg-type]
    return attempts


def test_detoxify_loads_a_local_checkpoint_offline(
    tiny_checkpoint: tuple[Path, Path, str], no_network: list[Any]
) -> None:
    checkpoint, config_dir, digest = tiny_checkpoint
    model = DetoxifyModel(checkpoint, config_dir, digest)
    scores = model.scores("you idiot")
    assert set(scores) == {"toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"}
    assert all(0.0 <= value <= 1.0 for value in scores.values())
    assert model.score("the car is clean") == max(model.scores("the car is clean").values())
    assert no_network == []


def test_an_altered_checkpoint_is_refused_before_it_is_unpickled(tiny_checkpoint: tuple[Path, Path, str]) -> None:
    checkpoint, config_dir, _ = tiny_checkpoint
    with pytest.raises(CheckpointError, match="sha256"):
        DetoxifyModel(checkpoint, config_dir, "0" * 64)
    with pytest.raises(CheckpointError, match="does not exist"):
        DetoxifyModel(checkpoint.with_name("missing.ckpt"), config_dir, "0" * 64)


def test_every_detector_builds_and_runs_without_the_network(
    tiny_checkpoint: tuple[Path, Path, str], no_network: list[Any]
) -> None:
    from moderation.pii import build_analyzer

    build_analyzer.cache_clear()  # build presidio's engine again, here, with the network refused
    checkpoint, config_dir, digest = tiny_checkpoint
    settings = ModerationSettings(
        detoxify_checkpoint=checkpoint, detoxify_config_dir=config_dir, detoxify_sha256=digest
    )
    detector = ModelDetector(settings)
    # The optional spaCy NER model is not installed here: patterns only, and nothing was downloaded.
    assert settings.spacy_model == "en_core_web_sm"
    assert type(detector.pii.analyzer.nlp_engine).__name__ == "NoOpNlpEngine"
    detection = detector.detect("mail john at gmail dot com or john@example.co.uk, you idiot")
    assert {f.entity for f in detection.pii} == {"EMAIL_ADDRESS"}
    assert detection.profanity > 0.9
    assert detection.toxicity is not None
    assert no_network == []
