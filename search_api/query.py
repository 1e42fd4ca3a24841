"""Buyer search parameters -> `SearchQuery`, and search results -> the API's response body (no HTTP here).

Parameter names are the API's (`price_min`, `color`, `sort=-price`); `FIELD_OF` maps them to document fields.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Sequence
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.search.fields import MAX_RESULT_WINDOW, STANDARD_RANGE_EDGES
from connectors.search.port import DISTANCE, RELEVANCE, GeoFilter, SearchQuery, SearchResult, SortOrder
from hub.errors import InvalidParameter
from marketplace.catalog import (
    catalog_spelling,
    city_spelling,
    color_spelling,
    location_for_zip,
    pick_list_spelling,
)
from search_api.schemas import hit_bodies

MAX_LIMIT = 100
DEFAULT_LIMIT = 20

# API filter parameter -> document field (terms filters and facets).
TERM_FILTERS: dict[str, str] = {
    "make": "make",
    "model": "model",
    "condition": "condition_grade",
    "body_type": "body_type",
    "fuel": "fuel",
    "transmission": "transmission",
    "drivetrain": "drivetrain",
    "color": "exterior_color",
    "state": "state",
    "city": "city",
    "dealer_id": "dealer_id",
    "auction_status": "auction_status",
}
# API range prefix -> document field (`price_min`/`price_max` bound `asking_price`).
RANGE_FILTERS: dict[str, str] = {
    "year": "year",
    "price": "asking_price",
    "mileage": "mileage",
    "current_bid": "currentBid",
    "condition": "condition_grade",
}
# Range facets: API name -> (field, bucket edges).
RANGE_FACETS: dict[str, tuple[str, tuple[float, ...]]] = {
    "price": ("asking_price", STANDARD_RANGE_EDGES["asking_price"]),
    "year": ("year", STANDARD_RANGE_EDGES["year"]),
    "mileage": ("mileage", STANDARD_RANGE_EDGES["mileage"]),
}
SORTS: dict[str, tuple[str, SortOrder]] = {
    "relevance": (RELEVANCE, "desc"),
    "price": ("asking_price", "asc"),
    "-price": ("asking_price", "desc"),
    "current_bid": ("currentBid", "asc"),
    "-current_bid": ("currentBid", "desc"),
    "year": ("year", "asc"),
    "-year": ("year", "desc"),
    "mileage": ("mileage", "asc"),
    "-mileage": ("mileage", "desc"),
    "distance": (DISTANCE, "asc"),
    "ending_soonest": ("auction_ends_at", "asc"),
}
SortName = Literal[
    "relevance",
    "price",
    "-price",
    "current_bid",
    "-current_bid",
    "year",
    "-year",
    "mileage",
    "-mileage",
    "distance",
    "ending_soonest",
]
Bound = Field(default=None, ge=0)


class SearchParams(BaseModel):
    """Query parameters of `GET /api/v1/vehicles`; repeat a filter (`make=Ford&make=Toyota`) to accept several."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(default=None, max_length=200, description="words of make, model, trim or description")
    make: list[str] = []
    model: list[str] = []
    condition: list[float] = []
    body_type: list[str] = []
    fuel: list[str] = []
    transmission: list[str] = []
    drivetrain: list[str] = []
    color: list[str] = []
    state: list[str] = []
    city: list[str] = []
    dealer_id: list[int] = []
    auction_status: list[Literal["upcoming", "live", "closed"]] = []
    year_min: int | None = Bound
    year_max: int | None = Bound
    price_min: float | None = Bound
    price_max: float | None = Bound
    mileage_min: int | None = Bound
    mileage_max: int | None = Bound
    current_bid_min: float | None = Bound
    current_bid_max: float | None = Bound
    condition_min: float | None = Field(default=None, ge=0, le=5)
    condition_max: float | None = Field(default=None, ge=0, le=5)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    zip: str | None = Field(default=None, description="a US ZIP code (5 digits), instead of lat/lon")
    radius_km: float | None = Field(default=None, gt=0, le=5000)
    sort: SortName | None = Field(default=None, description="default: relevance with q, else -year")
    page: int = Field(default=1, ge=1)
    limit: int = Field(default=DEFAULT_LIMIT, ge=0, le=MAX_LIMIT, description="0: facets only")
    cursor: str | None = Field(default=None, max_length=512, description="next_cursor of the previous page")
    facets: bool = Field(default=True, description="false: skip facet counts")

    # Filter values as the documents spell them, whatever case the buyer typed ("toyota", "ny", "Pickup truck").
    @field_validator("make", "model")
    @classmethod
    def _catalog_spelling(cls, values: list[str]) -> list[str]:
        return [catalog_spelling(value) for value in values]

    @field_validator("zip")
    @classmethod
    def _zip_code(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{5}", value.strip()):
            raise ValueError("a US ZIP code is 5 digits, e.g. 10001")
        return None if value is None else value.strip()

    @field_validator("color")
    @classmethod
    def _color_spelling(cls, values: list[str]) -> list[str]:
        return [color_spelling(value) for value in values]

    @field_validator("city")
    @classmethod
    def _city_spelling(cls, values: list[str]) -> list[str]:
        return [city_spelling(value) for value in values]

    @field_validator("state")
    @classmethod
    def _state_code(cls, values: list[str]) -> list[str]:
        return [value.strip().upper() for value in values]

    @field_validator("body_type", "fuel", "transmission", "drivetrain")
    @classmethod
    def _pick_list_value(cls, values: list[str]) -> list[str]:
        return [pick_list_spelling(value) for value in values]


def build_query(params: SearchParams) -> SearchQuery:
    """The engine query of a buyer's parameters; `InvalidParameter` names what cannot be served."""
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for name, field in RANGE_FILTERS.items():
        low, high = getattr(params, f"{name}_min"), getattr(params, f"{name}_max")
        if low is not None and high is not None and low > high:
            raise InvalidParameter(f"{name}_min", f"must not exceed {name}_max ({low} > {high})")
        if low is not None or high is not None:
            ranges[field] = (low, high)
    sort_name = params.sort or ("relevance" if params.q else "-year")
    geo = _geo(params, needs_location=sort_name == "distance")
    filters = {field: list(getattr(params, name)) for name, field in TERM_FILTERS.items() if getattr(params, name)}
    offset, search_after = _position(params, sort_name)
    return SearchQuery(
        text=params.q,
        filters=filters,
        ranges=ranges,
        geo=geo,
        facets=list(dict.fromkeys(TERM_FILTERS.values())) if params.facets else [],
        range_facets=dict(RANGE_FACETS.values()) if params.facets else {},
        sort=[SORTS[sort_name]],
        limit=params.limit,
        offset=offset,
        search_after=search_after,
    )


def _geo(params: SearchParams, *, needs_location: bool) -> GeoFilter | None:
    if (params.lat is None) != (params.lon is None):
        raise InvalidParameter("lat" if params.lat is None else "lon", "give lat and lon together")
    if params.zip is not None and params.lat is not None:
        raise InvalidParameter("zip", "give either zip or lat/lon, not both")
    lat, lon = params.lat, params.lon
    if params.zip is not None:
        location = location_for_zip(params.zip)
        if location is None:
            raise InvalidParameter("zip", f"unknown ZIP code {params.zip!r}; give lat and lon instead")
        lat, lon = location.lat, location.lon
    if lat is None or lon is None:
        if params.radius_km is not None:
            raise InvalidParameter("radius_km", "a radius needs a location: lat and lon, or zip")
        if needs_location:
            raise InvalidParameter("sort", "sorting by distance needs a location: lat and lon, or zip")
        return None
    return GeoFilter(lat=lat, lon=lon, radius_km=params.radius_km)


def _position(params: SearchParams, sort_name: str) -> tuple[int, list[Any] | None]:
    """(offset, search_after) of the requested page: a cursor wins over `page`."""
    if params.cursor is None:
        offset = (params.page - 1) * params.limit
        if offset + params.limit > MAX_RESULT_WINDOW:
            raise InvalidParameter(
                "page", f"page * limit must not exceed {MAX_RESULT_WINDOW}; page deeper with the cursor parameter"
            )
        return offset, None
    cursor = decode_cursor(params.cursor)
    if cursor.get("sort") != sort_name:
        raise InvalidParameter("cursor", "this cursor belongs to another sort order; start again from page 1")
    if "offset" in cursor:  # relevance pages by offset (scores are not a stable position)
        offset = cursor["offset"]
        if not isinstance(offset, int) or not 0 <= offset <= MAX_RESULT_WINDOW - params.limit:
            raise InvalidParameter("cursor", f"relevance results end at {MAX_RESULT_WINDOW}; narrow the search")
        return offset, None
    after = cursor.get("after")
    if not isinstance(after, list) or len(after) != 2 or not isinstance(after[1], str):
        raise InvalidParameter("cursor", "malformed cursor; use next_cursor of a previous page as it is")
    return 0, after


def encode_cursor(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameter("cursor", "malformed cursor; use next_cursor of a previous page as it is") from exc
    if not isinstance(payload, dict):
        raise InvalidParameter("cursor", "malformed cursor; use next_cursor of a previous page as it is")
    return payload


def next_cursor(params: SearchParams, query: SearchQuery, result: SearchResult) -> str | None:
    if not result.hits or query.limit == 0:
        return None
    sort_name = params.sort or ("relevance" if params.q else "-year")
    if sort_name == "relevance":
        offset = query.offset + len(result.hits)
        if offset >= result.total or offset + query.limit > MAX_RESULT_WINDOW:
            return None
        return encode_cursor({"sort": sort_name, "offset": offset})
    if len(result.hits) < query.limit:
        return None
    return encode_cursor({"sort": sort_name, "after": result.sort_values[-1]})


def response_body(params: SearchParams, query: SearchQuery, result: SearchResult) -> dict[str, Any]:
    """`{data, facets, pagination}`: the shape every list endpoint of the API answers with."""
    data = hit_bodies(result.hits)
    if result.distances_km:
        for body, distance in zip(data, result.distances_km, strict=True):
            body["distance_km"] = None if distance is None else round(distance, 2)
    limit = params.limit
    pages = math.ceil(result.total / limit) if limit else 0
    return {
        "data": data,
        "facets": facets_body(result),
        "pagination": {
            "page": params.page if params.cursor is None else None,
            "limit": limit,
            "total": result.total,
            "pages": pages,
            "next_cursor": next_cursor(params, query, result),
        },
    }


def facets_body(result: SearchResult) -> dict[str, list[dict[str, Any]]]:
    body: dict[str, list[dict[str, Any]]] = {}
    for name, field in TERM_FILTERS.items():
        if field in result.facets:
            counts = result.facets[field]
            body[name] = [
                {"value": value, "count": count}
                for value, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            ]
    for name, (field, _) in RANGE_FACETS.items():
        if field in result.range_facets:
            body[name] = [
                {"from": bucket.low, "to": bucket.high, "count": bucket.count} for bucket in result.range_facets[field]
            ]
    return body


def suggestion_texts(text: str, makes: dict[str, int], models: Sequence[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """Type-ahead suggestions: makes the typed text starts, then make+model pairs, most listed first."""
    typed = text.strip().lower()
    suggestions = [
        {"text": make, "make": make, "model": None, "count": count}
        for make, count in sorted(makes.items(), key=lambda item: -item[1])
        if make.lower().startswith(typed) or typed.startswith(make.lower())
    ]
    suggestions += [
        {"text": f"{make} {model}", "make": make, "model": model, "count": count} for make, model, count in models
    ]
    return suggestions
