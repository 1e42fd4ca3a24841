"""detoxify from a local checkpoint: no hub access, offline flags set, checksum verified before unpickling.

`detoxify.Detoxify(checkpoint=...)` still asks the Hugging Face hub for the base model's config
(`config_class.from_pretrained("bert-base-uncased")`) before it looks at the local directory, and its checkpoint
is a pickle (`torch.load(weights_only=False)`). So the checkpoint is verified against a pinned sha256 first, the
config and tokenizer come from a local directory only, and the package's own `predict` does the scoring.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class CheckpointError(RuntimeError):
    """The configured checkpoint is missing, altered or not in detoxify's format."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DetoxifyModel:
    """Toxicity scores (0..1 per class) from a detoxify checkpoint on disk; `score` is the highest class."""

    def __init__(self, checkpoint: Path, config_dir: Path, sha256: str) -> None:
        os.environ.update(OFFLINE_ENV)  # before transformers is imported: no request may leave the process
        if not checkpoint.is_file():
            raise CheckpointError(f"detoxify checkpoint {checkpoint} does not exist")
        actual = sha256_of(checkpoint)
        if actual != sha256:
            raise CheckpointError(f"detoxify checkpoint {checkpoint} has sha256 {actual}, expected {sha256}")
        import torch
        import transformers
        from detoxify import Detoxify

        loaded: dict[str, Any] = torch.load(checkpoint, map_location="cpu", weights_only=False)  # noqa: S614 - verified
        try:
            arch = loaded["config"]["arch"]["args"]
            classes = list(loaded["config"]["dataset"]["args"]["classes"])
            state_dict = loaded["state_dict"]
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"{checkpoint} is not a detoxify checkpoint (missing {exc})") from exc
        renames = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}
        model_class = getattr(transformers, arch["model_name"])
        tokenizer_class = getattr(transformers, arch["tokenizer_name"])
        config = model_class.config_class.from_pretrained(
            str(config_dir), local_files_only=True, num_labels=arch["num_classes"]
        )
        # As detoxify does, minus its hub look-up: weights from the checkpoint, architecture from the local config.
        model = model_class.from_pretrained(None, config=config, state_dict=state_dict, local_files_only=True)
        tokenizer = tokenizer_class.from_pretrained(str(config_dir), local_files_only=True)
        # The package's predictor, given the model and tokenizer we loaded (its constructor would go online).
        detoxify = Detoxify.__new__(Detoxify)
        detoxify.model, detoxify.tokenizer, detoxify.device = model.to("cpu"), tokenizer, "cpu"
        detoxify.class_names = [renames.get(name, name) for name in classes]
        self._detoxify = detoxify
        self.class_names = detoxify.class_names

    def scores(self, text: str) -> dict[str, float]:
        return {name: float(value) for name, value in self._detoxify.predict(text).items()}

    def score(self, text: str) -> float:
        return max(self.scores(text).values(), default=0.0)
