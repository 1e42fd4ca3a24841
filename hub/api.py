"""The `auction-hub api` process: one FastAPI app serving every HTTP service of the hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from connectors.search.factory import open_search_index
from connectors.search.port import SearchIndex, SearchIndexUnavailable
from hub.errors import install_error_handlers
from search_api.routes import router as search_router
from search_api.service import VehicleSearchService
from search_api.settings import ApiSettings


def create_app(settings: ApiSettings, index: SearchIndex | None = None) -> FastAPI:
    """`index` lets tests hand in an open index; by default the lifespan opens a reader."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        search_index = index or await open_search_index(settings, writer=False)
        app.state.search_index = search_index
        app.state.search_service = VehicleSearchService(
            search_index, reader_refresh_ms=settings.reader_refresh_ms, retry_after_s=settings.retry_after_s
        )
        try:
            yield
        finally:
            if index is None:
                await search_index.close()

    app = FastAPI(title="auction-hub", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(search_router)

    @app.get("/health", tags=["ops"])
    async def health() -> Any:
        """Liveness and the search index's state."""
        try:
            state = await app.state.search_index.health()
        except SearchIndexUnavailable as exc:
            return JSONResponse({"status": "degraded", "index": {"ok": False, "detail": str(exc)}}, status_code=503)
        body = {"status": "ok" if state.ok else "degraded", "index": state.__dict__}
        return JSONResponse(body, status_code=200 if state.ok else 503)

    return app
