"""The indexed fields of a vehicle document, shared by every search adapter so their schemas agree.

The stored document is always the whole `VehicleDocument`; these catalogs name what is *indexed* beside it
and how `SearchQuery` fields are checked before an adapter translates them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from connectors.search.port import FilterValue, SearchQuery
from schemas.vehicle import VehicleDocument

# Exact-value fields: filters and term facets. Values are indexed verbatim (case kept), as strings.
KEYWORD_FIELDS: tuple[str, ...] = (
    "make",
    "model",
    "trim",
    "body_type",
    "fuel",
    "transmission",
    "drivetrain",
    "exterior_color",
    "state",
    "city",
    "status",
    "auction_status",
    "dealer_id",
    "zip",
)
INTEGER_FIELDS: tuple[str, ...] = ("year", "mileage", "version")
FLOAT_FIELDS: tuple[str, ...] = ("asking_price", "currentBid", "condition_grade", "lat", "lon")
NUMERIC_FIELDS: tuple[str, ...] = INTEGER_FIELDS + FLOAT_FIELDS

# Full-text sources and their weight in the text query (a make or model match outranks the description).
TEXT_FIELD_BOOSTS: dict[str, float] = {"make": 3.0, "model": 3.0, "trim": 2.0, "description": 1.0}

# Terms facets return at most this many values per field, the most frequent first.
FACET_SIZE = 200

# Deepest result a query may page to (offset + limit), as Elasticsearch's default `max_result_window`;
# deeper browsing belongs to search_after cursors.
MAX_RESULT_WINDOW = 10_000

# Sorting by this pseudo-field (or giving no sort) orders by text relevance.
RELEVANCE = "_score"


def keyword_value(value: FilterValue | None) -> str | None:
    """The indexed string of a keyword value (ids such as `dealer_id` are stored as strings)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def document_keywords(document: VehicleDocument) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in KEYWORD_FIELDS:
        value = getattr(document, name)
        if value is None:
            continue
        # Nearly every keyword is already a string; skip the conversion for them (hot path of indexing).
        values[name] = value if type(value) is str else keyword_value(value) or ""
    return values


def integer_bounds(low: float | None, high: float | None) -> tuple[int | None, int | None]:
    """Inclusive float bounds narrowed to the integers they contain."""
    return (None if low is None else math.ceil(low), None if high is None else math.floor(high))


def validate_query(query: SearchQuery) -> None:
    """Raise `ValueError` naming the first field a query cannot use; adapters call it before translating."""
    filterable = set(KEYWORD_FIELDS) | set(NUMERIC_FIELDS)
    for name in query.filters:
        if name not in filterable:
            raise ValueError(f"cannot filter on {name!r}; filterable fields: {sorted(filterable)}")
    for name in query.ranges:
        if name not in NUMERIC_FIELDS:
            raise ValueError(f"cannot range over {name!r}; numeric fields: {list(NUMERIC_FIELDS)}")
    for name in query.facets:
        if name not in filterable:
            raise ValueError(f"cannot facet on {name!r}; facet fields: {sorted(filterable)}")
    _validate_sort(query)
    if query.limit < 0 or query.offset < 0:
        raise ValueError("limit and offset must not be negative")
    if query.offset + query.limit > MAX_RESULT_WINDOW:
        raise ValueError(f"offset + limit must not exceed {MAX_RESULT_WINDOW}")


def apply_partial(document: VehicleDocument, fields: Mapping[str, Any], version: int) -> VehicleDocument:
    """`document` with `fields` set and `version` recorded, validated; unknown field names are refused."""
    unknown = set(fields) - set(VehicleDocument.model_fields)
    if unknown:
        raise ValueError(f"unknown vehicle document fields: {sorted(unknown)}")
    return VehicleDocument.model_validate({**document.model_dump(), **fields, "version": version})


def _validate_sort(query: SearchQuery) -> None:
    for name, order in query.sort:
        if name != RELEVANCE and name not in NUMERIC_FIELDS:
            raise ValueError(f"cannot sort on {name!r}; sort fields: {[RELEVANCE, *NUMERIC_FIELDS]}")
        if order not in ("asc", "desc"):
            raise ValueError(f"sort order of {name!r} must be 'asc' or 'desc', not {order!r}")
        if name == RELEVANCE and (order != "desc" or len(query.sort) > 1):
            raise ValueError(f"{RELEVANCE!r} sorts alone and descending (best match first)")
