"""The indexed fields of a vehicle document, shared by every search adapter so their schemas agree.

The stored document is always the whole `VehicleDocument`; these catalogs name what is *indexed* beside it
and how `SearchQuery` fields are checked before an adapter translates them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.search.port import DISTANCE, RELEVANCE, FilterValue, SearchQuery
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
# The range facets' standard bucket edges (the search API's): the embedded engine also indexes which of these
# buckets each value falls in, and counts a facet with exactly these edges from that.
STANDARD_RANGE_EDGES: dict[str, tuple[float, ...]] = {
    "asking_price": (5_000, 10_000, 15_000, 20_000, 30_000, 40_000, 60_000, 80_000),
    "year": (2000, 2005, 2010, 2015, 2018, 2020, 2022, 2024),
    "mileage": (10_000, 30_000, 50_000, 75_000, 100_000, 150_000),
}
NUMERIC_FIELDS: tuple[str, ...] = INTEGER_FIELDS + FLOAT_FIELDS

# What `SearchIndex.live_ids_by` looks documents up by, and the indexed field that holds it: the worker finds a
# dealer's vehicles, and the vehicles of an ERP VIN, in the index instead of keeping reverse maps of its own.
VIN_KEY = "vin_key"
LOOKUP_FIELDS: dict[str, str] = {"dealer_id": "dealer_id", "vin": VIN_KEY}

# The text sources whose words also match with one typo (5+ letters) or as a typed prefix.
FUZZY_TEXT_SOURCES: tuple[str, ...] = ("make", "model", "trim")
FUZZY_MIN_LENGTH = 5
# How much a typo or prefix match weighs against an exact one of the same field.
INEXACT_WEIGHT = 0.3

# Full-text sources and their weight in the text query (a make or model match outranks the description).
TEXT_FIELD_BOOSTS: dict[str, float] = {"make": 3.0, "model": 3.0, "trim": 2.0, "description": 1.0}

# Terms facets return at most this many values per field, the most frequent first.
FACET_SIZE = 200

# Deepest result a query may page to (offset + limit), as Elasticsearch's default `max_result_window`;
# deeper browsing belongs to search_after cursors.
MAX_RESULT_WINDOW = 10_000

MAX_RADIUS_KM = 5000.0

# Sortable beside the numeric fields: when a vehicle's auction ends (ISO-8601 in the document).
AUCTION_ENDS_AT = "auction_ends_at"
SORT_FIELDS: tuple[str, ...] = ("asking_price", "currentBid", "year", "mileage", "condition_grade", AUCTION_ENDS_AT)

# Most buckets a range facet may ask for.
MAX_RANGE_BUCKETS = 50


def keyword_value(value: FilterValue | None) -> str | None:
    """The indexed string of a keyword value (ids such as `dealer_id` are stored as strings)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def vin_key(vin: str | None) -> str | None:
    """A VIN as the ERP keys it: trimmed, upper case (None when blank)."""
    if not vin:
        return None
    return vin.strip().upper() or None


def validate_lookup(field_name: str) -> str:
    """The indexed field of a `live_ids_by` lookup; `ValueError` for a field documents cannot be looked up by."""
    if field_name not in LOOKUP_FIELDS:
        raise ValueError(f"cannot look documents up by {field_name!r}; lookup fields: {sorted(LOOKUP_FIELDS)}")
    return LOOKUP_FIELDS[field_name]


def document_lookup_keys(document: VehicleDocument) -> dict[str, str]:
    """The indexed lookup fields beside the keywords (`VIN_KEY`), absent when the document has no VIN."""
    vin = vin_key(document.vin)
    return {VIN_KEY: vin} if vin else {}


def document_keywords(document: VehicleDocument) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in KEYWORD_FIELDS:
        value = getattr(document, name)
        if value is None:
            continue
        # Nearly every keyword is already a string; skip the conversion for them (hot path of indexing).
        values[name] = value if type(value) is str else keyword_value(value) or ""
    return values


# Ties of every sort break by this rank: numeric ids (all PostgreSQL ids) numerically, any other id after them.
ID_RANK_LAST = (1 << 32) - 1


def id_rank(document_id: str) -> int:
    """The id's place in the tie order, the same in every engine ("9" before "10")."""
    if document_id.isdigit():
        number = int(document_id)
        if number < ID_RANK_LAST:
            return number
    return ID_RANK_LAST


def compact_text(value: str) -> str:
    """`value` lowercased without non-alphanumerics ("F-150" -> "f150"): indexed beside the words of make,
    model and trim so "f150", "f-150" and "f 150" all find an F-150."""
    return "".join(character for character in value.lower() if character.isalnum())


def epoch_seconds(iso_timestamp: str | None) -> int | None:
    """An ISO-8601 timestamp as Unix seconds (UTC when it has no offset); None when absent or unreadable."""
    if not iso_timestamp:
        return None
    try:
        moment = datetime.fromisoformat(iso_timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def integer_bounds(low: float | None, high: float | None) -> tuple[int | None, int | None]:
    """Inclusive float bounds narrowed to the integers they contain."""
    return (None if low is None else math.ceil(low), None if high is None else math.floor(high))


def validate_query(query: SearchQuery) -> None:
    """Raise `ValueError` naming the first field a query cannot use; adapters call it before translating."""
    filterable = set(KEYWORD_FIELDS) | set(NUMERIC_FIELDS)
    for name in query.filters:
        if name not in filterable:
            raise ValueError(f"cannot filter on {name!r}; filterable fields: {sorted(filterable)}")
    for name, (low, high) in query.ranges.items():
        if name not in NUMERIC_FIELDS:
            raise ValueError(f"cannot range over {name!r}; numeric fields: {list(NUMERIC_FIELDS)}")
        if any(bound is not None and not math.isfinite(bound) for bound in (low, high)):
            raise ValueError(f"range bounds of {name!r} must be finite numbers")
    _validate_facets(query, filterable)
    _validate_geo(query)
    _validate_sort(query)
    if query.limit < 0 or query.offset < 0:
        raise ValueError("limit and offset must not be negative")
    if query.offset + query.limit > MAX_RESULT_WINDOW:
        raise ValueError(f"offset + limit must not exceed {MAX_RESULT_WINDOW}")


def _validate_facets(query: SearchQuery, filterable: set[str]) -> None:
    for name in query.facets:
        if name not in filterable:
            raise ValueError(f"cannot facet on {name!r}; facet fields: {sorted(filterable)}")
    for name, edges in query.range_facets.items():
        if name not in NUMERIC_FIELDS:
            raise ValueError(f"cannot bucket {name!r}; numeric fields: {list(NUMERIC_FIELDS)}")
        if not edges or len(edges) > MAX_RANGE_BUCKETS or list(edges) != sorted(set(edges)):
            raise ValueError(f"bucket edges of {name!r} must be 1 to {MAX_RANGE_BUCKETS} strictly ascending numbers")


def _validate_geo(query: SearchQuery) -> None:
    geo = query.geo
    if geo is None:
        return
    if not (-90 <= geo.lat <= 90 and -180 <= geo.lon <= 180):
        raise ValueError("latitude must lie in [-90, 90] and longitude in [-180, 180]")
    if geo.radius_km is not None and not (0 < geo.radius_km <= MAX_RADIUS_KM):
        raise ValueError(f"radius must be above 0 and at most {MAX_RADIUS_KM} km")


def _validate_sort(query: SearchQuery) -> None:
    names = [name for name, _ in query.sort]
    for name, order in query.sort:
        if name not in (RELEVANCE, DISTANCE) and name not in SORT_FIELDS:
            raise ValueError(f"cannot sort on {name!r}; sort fields: {[RELEVANCE, DISTANCE, *SORT_FIELDS]}")
        if order not in ("asc", "desc"):
            raise ValueError(f"sort order of {name!r} must be 'asc' or 'desc', not {order!r}")
    if len(names) > 1:
        raise ValueError("sort on one field (the document id always breaks ties)")
    if RELEVANCE in names and (query.sort[0] != (RELEVANCE, "desc") or len(names) > 1):
        raise ValueError(f"{RELEVANCE!r} sorts alone and descending (best match first)")
    if DISTANCE in names:
        if query.geo is None:
            raise ValueError("sorting by distance needs a location (geo)")
        if query.sort[0] != (DISTANCE, "asc") or len(names) > 1:
            raise ValueError(f"{DISTANCE!r} sorts ascending (nearest first)")
    _validate_search_after(query, names)


def _validate_search_after(query: SearchQuery, names: list[str]) -> None:
    if query.search_after is not None:
        if not query.sort or names[0] == RELEVANCE:
            raise ValueError("search_after needs a sort on fields or distance, not relevance")
        if len(query.search_after) != len(query.sort) + 1:
            raise ValueError("search_after must hold one value per sort field plus the id")
        if query.offset:
            raise ValueError("search_after pages start right after the cursor; offset must be 0")


def apply_partial(document: VehicleDocument, fields: Mapping[str, Any], version: int) -> VehicleDocument:
    """`document` with `fields` set and `version` recorded, validated; unknown field names are refused."""
    unknown = set(fields) - set(VehicleDocument.model_fields)
    if unknown:
        raise ValueError(f"unknown vehicle document fields: {sorted(unknown)}")
    return VehicleDocument.model_validate({**document.model_dump(), **fields, "version": version})
