"""Search use cases over the SearchIndex port; knows nothing of HTTP."""

from __future__ import annotations

import time

from connectors.search.port import SearchIndex, SearchIndexUnavailable, SearchQuery, SearchResult
from hub.errors import NotFound, ServiceUnavailable
from schemas.vehicle import VehicleDocument


class VehicleSearchService:
    """Reads only the search index, never PostgreSQL: search keeps working when the write path is down."""

    def __init__(self, index: SearchIndex, *, reader_refresh_ms: int = 50, retry_after_s: int = 5) -> None:
        self.index = index
        self.reader_refresh_s = reader_refresh_ms / 1000
        self.retry_after_s = retry_after_s
        self._refreshed_at = 0.0

    async def _fresh_reader(self) -> None:
        now = time.monotonic()
        if now - self._refreshed_at >= self.reader_refresh_s:
            self._refreshed_at = now
            await self.index.refresh_reader()

    def _unavailable(self, exc: SearchIndexUnavailable) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"the search index is unavailable ({exc}); retry in {self.retry_after_s}s",
            headers={"Retry-After": str(self.retry_after_s)},
        )

    async def get_vehicle(self, vehicle_id: str) -> VehicleDocument:
        try:
            await self._fresh_reader()
            document = await self.index.get(vehicle_id)
        except SearchIndexUnavailable as exc:
            raise self._unavailable(exc) from exc
        if document is None or document.deleted:
            raise NotFound(f"vehicle {vehicle_id!r} not found")
        return document

    async def search(self, query: SearchQuery) -> SearchResult:
        try:
            await self._fresh_reader()
            return await self.index.search(query)
        except SearchIndexUnavailable as exc:
            raise self._unavailable(exc) from exc
