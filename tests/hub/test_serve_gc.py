"""The API process freezes what startup allocated, so full collections under load skip the imported modules."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.serve import app_from_environment


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process goes on collecting as before


def test_the_worker_factory_freezes_the_startup_objects(
    unfrozen: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUCTION_HUB_INDEX_PATH", str(tmp_path / "index"))
    assert gc.get_freeze_count() == 0
    app = app_from_environment()
    assert app.routes
    # Every module the app imported and every route object: tens of thousands, out of the collector's walk.
    assert gc.get_freeze_count() > 20_000
