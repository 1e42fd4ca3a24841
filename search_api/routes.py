"""HTTP routes of the search API (thin: decode, call the service, shape the response, cache headers)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from hub.errors import described_pattern
from hub.query_params import query_model
from search_api.deps import SearchServiceDep
from search_api.query import SearchParams
from search_api.schemas import vehicle_body

router = APIRouter(prefix="/api/v1", tags=["search"])

# Short enough that a CDN serves a price or status change within seconds, long enough to absorb a spike.
CACHE_CONTROL = "public, max-age=5, stale-while-revalidate=30"


def cached_json(request: Request, body: Any) -> Response:
    """JSON with a weak ETag of its bytes; `304 Not Modified` when the client already holds it."""
    content = orjson.dumps(body)
    etag = f'W/"{hashlib.blake2b(content, digest_size=12).hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="application/json", headers=headers)


VEHICLE_ID_PATTERN = described_pattern(r"^[A-Za-z0-9_\-]+$", "letters, digits, _ and - only")


search_params, SEARCH_PARAMETERS_OPENAPI = query_model(SearchParams)


@router.get("/vehicles", openapi_extra=SEARCH_PARAMETERS_OPENAPI)
async def search_vehicles(
    request: Request, params: Annotated[SearchParams, Depends(search_params)], service: SearchServiceDep
) -> Response:
    """Faceted vehicle search: `{data, facets, pagination}`. Facet-only requests (`limit=0`) are cacheable."""
    body = await service.search_vehicles(params)
    if params.limit == 0:
        return cached_json(request, body)
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/vehicles/suggest")
async def suggest(
    q: Annotated[str, Query(min_length=1, max_length=100, description="what the buyer has typed so far")],
    service: SearchServiceDep,
    limit: Annotated[int, Query(ge=1, le=20)] = 8,
) -> dict[str, Any]:
    """Type-ahead for the search box: makes and make+model pairs matching the typed text."""
    return {"data": await service.suggest(q, limit)}


@router.get("/vehicles/{vehicle_id}")
async def get_vehicle(
    request: Request,
    vehicle_id: Annotated[str, Path(min_length=1, max_length=64, pattern=VEHICLE_ID_PATTERN)],
    service: SearchServiceDep,
) -> Response:
    """One vehicle's document: vehicle, dealer, current bid and approved questions."""
    return cached_json(request, vehicle_body(await service.get_vehicle(vehicle_id)))
