"""Search use cases over the SearchIndex port; knows nothing of HTTP."""

from __future__ import annotations

import time
from typing import Any

from connectors.search.port import SearchIndex, SearchIndexUnavailable, SearchQuery, SearchResult
from hub.errors import InvalidParameter, NotFound, ServiceUnavailable
from schemas.vehicle import VehicleDocument
from search_api.query import SearchParams, build_query, response_body, suggestion_texts


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
        except ValueError as exc:  # the query is valid but this index cannot answer it (e.g. too wide a radius)
            raise InvalidParameter("query", str(exc)) from exc

    async def search_vehicles(self, params: SearchParams) -> dict[str, Any]:
        """The faceted search of a buyer: `{data, facets, pagination}`."""
        query = build_query(params)
        return response_body(params, query, await self.search(query))

    async def suggest(self, text: str, limit: int) -> list[dict[str, Any]]:
        """Makes and make+model pairs for what a buyer has typed so far, most listed first."""
        result = await self.search(SearchQuery(text=text, prefix=True, facets=["make", "model"], limit=0))
        top_models = sorted(result.facets.get("model", {}).items(), key=lambda item: -item[1])[:limit]
        pairs: list[tuple[str, str, int]] = []
        for model, count in top_models:
            makes = await self.search(
                SearchQuery(text=text, prefix=True, filters={"model": [model]}, facets=["make"], limit=0)
            )
            for make, make_count in makes.facets.get("make", {}).items():
                pairs.append((make, model, make_count if len(makes.facets["make"]) > 1 else count))
        pairs.sort(key=lambda pair: -pair[2])
        return suggestion_texts(text, result.facets.get("make", {}), pairs)[:limit]
