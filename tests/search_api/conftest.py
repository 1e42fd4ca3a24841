"""The search API in process over the `index` fixture each test module fills."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connectors.search.port import SearchIndex
from hub.api import create_app
from search_api.settings import ApiSettings


@pytest.fixture
async def client(index: SearchIndex, index_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiSettings(index_path=index_dir), index=index)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http
