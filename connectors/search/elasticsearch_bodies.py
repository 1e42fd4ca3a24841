"""Request bodies of the Elasticsearch adapter, as pure functions so tests can assert them exactly.

The mapping mirrors the tantivy schema (`connectors.search.fields`): keyword fields for filters and
facets (make/model/trim also as `<field>.text`, analyzed like tantivy's text fields, and as `<field>.compact`,
the whole value lowercased without non-alphanumerics so "f150" finds an F-150), numeric fields,
`auction_ends_at` as a date, `description` as text, `location` as a geo_point, the keyword `id` (the final
sort tiebreak) and the derived `visible` flag. Stored `_source` is the whole `VehicleDocument` plus
`visible` and `location`, which reads ignore.

Search semantics shared with tantivy (`SearchQuery`): each word of the text must match one field, scored
by its best field (`dis_max`) with constant per-field weights so exact matches always outrank typo and
prefix matches; facets are disjunctive, so filters on faceted fields go to `post_filter` and each facet
counts under the other filters only; the sort always ends with the id, so `search_after` cursors are exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.search.fields import (
    AUCTION_ENDS_AT,
    FACET_SIZE,
    FLOAT_FIELDS,
    FUZZY_MIN_LENGTH,
    FUZZY_TEXT_SOURCES,
    INEXACT_WEIGHT,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    TEXT_FIELD_BOOSTS,
    VIN_KEY,
    document_lookup_keys,
    id_rank,
    keyword_value,
)
from connectors.search.port import (
    DISTANCE,
    RELEVANCE,
    FilterValue,
    GeoFilter,
    RangeBucket,
    SearchQuery,
    SearchResult,
)
from schemas.geo import haversine_km
from schemas.vehicle import VehicleDocument

# 2: words split on non-alphanumerics, `<field>.compact`, `auction_ends_at` as a date.
# 3: `id_rank`, the tie order shared with tantivy.
# 4: `vin_key`, the VIN as the ERP keys it, for the worker's lookups.
SCHEMA_VERSION = 4
# Ids per page of a `live_ids_by` lookup (Elasticsearch's default `max_result_window`).
LOOKUP_PAGE = 10_000
TEXT_ANALYZER = "vehicle_text"
WORD_TOKENIZER = "vehicle_words"
COMPACT_NORMALIZER = "vehicle_compact"
STRIP_CHAR_FILTER = "vehicle_strip_non_alphanumerics"
# Java regex: a word is a run of letters and digits, as tantivy's simple tokenizer splits.
NON_ALPHANUMERIC = "[^\\p{L}\\p{N}]"
# tantivy drops tokens of 40 bytes or more (remove_long); a query word that long constrains nothing there.
MAX_TOKEN_BYTES = 40
# The shared tie order (`fields.id_rank`): "9" before "10", as on tantivy.
ID_TIEBREAK: dict[str, Any] = {"id_rank": {"order": "asc"}}
DEFAULT_REFRESH_INTERVAL = "1s"
DEFAULT_BULK_MAX_BYTES = 5 * 1024 * 1024

# The painless script of `tombstone_older_than`: mark deleted, bump the version, record the position
# so a replayed older change cannot revive the document.
TOMBSTONE_SCRIPT = (
    "ctx._source.deleted = true; ctx._source.visible = false; "
    "ctx._source.version = ctx._source.version + 1; "
    "ctx._source.positions[params.source] = params.position;"
)


@dataclass(frozen=True)
class BulkAction:
    """One action of a `_bulk` body: its metadata line and, for index actions, the source line."""

    document_id: str
    payload: bytes


def concrete_index_name(alias: str, version: int = SCHEMA_VERSION) -> str:
    return f"{alias}_v{version}"


def schema_version_of(alias: str, index_name: str) -> int | None:
    """N of a concrete index named `<alias>_v<N>`, None for any other name."""
    suffix = index_name.removeprefix(f"{alias}_v")
    return int(suffix) if suffix != index_name and suffix.isdigit() else None


def reindex_body(sources: Sequence[str], destination: str) -> dict[str, Any]:
    """`POST /_reindex` copying older indices into a new one, keeping each document's external version.

    `conflicts: proceed` lets a resumed migration skip the documents it already copied.
    """
    return {
        "conflicts": "proceed",
        "source": {"index": ",".join(sources)},
        "dest": {"index": destination, "version_type": "external"},
    }


def swap_alias_body(alias: str, sources: Sequence[str], destination: str) -> dict[str, Any]:
    """`POST /_aliases`: one atomic move of the alias (readers and the write index) onto `destination`."""
    actions: list[dict[str, Any]] = [{"remove": {"index": source, "alias": alias}} for source in sources]
    actions.append({"add": {"index": destination, "alias": alias, "is_write_index": True}})
    return {"actions": actions}


def text_field(source: str) -> str:
    """The analyzed field searched for a text source (`make.text`, ..., `description`)."""
    return source if source == "description" else f"{source}.text"


def exact_fields(source: str) -> list[str]:
    """The fields a word of the text must equal to match a source exactly (compact form included)."""
    return [text_field(source)] if source == "description" else [f"{source}.text", f"{source}.compact"]


def analysis_settings() -> dict[str, Any]:
    return {
        "char_filter": {STRIP_CHAR_FILTER: {"type": "pattern_replace", "pattern": NON_ALPHANUMERIC, "replacement": ""}},
        "tokenizer": {WORD_TOKENIZER: {"type": "pattern", "pattern": f"{NON_ALPHANUMERIC}+"}},
        "analyzer": {
            TEXT_ANALYZER: {"type": "custom", "tokenizer": WORD_TOKENIZER, "filter": ["lowercase", "asciifolding"]}
        },
        "normalizer": {
            COMPACT_NORMALIZER: {
                "type": "custom",
                "char_filter": [STRIP_CHAR_FILTER],
                "filter": ["lowercase", "asciifolding"],
            }
        },
    }


def index_definition(alias: str, *, refresh_interval: str = DEFAULT_REFRESH_INTERVAL) -> dict[str, Any]:
    """Settings, mappings and write alias of a new concrete index (`PUT /<alias>_v<N>`)."""
    properties: dict[str, Any] = {"id": {"type": "keyword"}, "id_rank": {"type": "long"}}
    for name in KEYWORD_FIELDS:
        properties[name] = {"type": "keyword"}
        if name in TEXT_FIELD_BOOSTS:
            properties[name]["fields"] = {
                "text": {"type": "text", "analyzer": TEXT_ANALYZER},
                "compact": {"type": "keyword", "normalizer": COMPACT_NORMALIZER},
            }
    properties["description"] = {"type": "text", "analyzer": TEXT_ANALYZER}
    for name in INTEGER_FIELDS:
        properties[name] = {"type": "long"}
    for name in FLOAT_FIELDS:
        properties[name] = {"type": "double"}
    # A value that is not an ISO-8601 date leaves the document unsortable on it, never refused.
    properties[AUCTION_ENDS_AT] = {"type": "date", "ignore_malformed": True}
    properties["location"] = {"type": "geo_point"}
    properties["visible"] = {"type": "boolean"}
    properties["deleted"] = {"type": "boolean"}
    properties[VIN_KEY] = {"type": "keyword"}
    # Sources are open-ended (pg.vehicles, erp.inventory, ...): mapped as they appear, as longs.
    properties["positions"] = {"type": "object", "dynamic": True}
    return {
        "settings": {
            "index": {"refresh_interval": refresh_interval},
            "analysis": analysis_settings(),
        },
        # Other document fields stay in _source without being indexed.
        "mappings": {"dynamic": False, "properties": properties},
        "aliases": {alias: {"is_write_index": True}},
    }


def document_source(document: VehicleDocument) -> dict[str, Any]:
    source = document.model_dump(mode="json")
    source["visible"] = document.searchable
    source["id_rank"] = id_rank(document.id)
    source.update(document_lookup_keys(document))
    if document.lat is not None and document.lon is not None:
        source["location"] = {"lat": document.lat, "lon": document.lon}
    return source


def index_action(document: VehicleDocument) -> BulkAction:
    meta = {"index": {"_id": document.id, "version": document.version, "version_type": "external"}}
    payload = orjson.dumps(meta) + b"\n" + orjson.dumps(document_source(document)) + b"\n"
    return BulkAction(document.id, payload)


def delete_action(document_id: str) -> BulkAction:
    return BulkAction(document_id, orjson.dumps({"delete": {"_id": document_id}}) + b"\n")


def bulk_chunks(actions: Iterable[BulkAction], max_bytes: int = DEFAULT_BULK_MAX_BYTES) -> list[list[BulkAction]]:
    """Actions grouped into `_bulk` bodies of at most `max_bytes` (an action larger than that goes alone)."""
    chunks: list[list[BulkAction]] = []
    current: list[BulkAction] = []
    size = 0
    for action in actions:
        if current and size + len(action.payload) > max_bytes:
            chunks.append(current)
            current, size = [], 0
        current.append(action)
        size += len(action.payload)
    if current:
        chunks.append(current)
    return chunks


def bulk_body(actions: Sequence[BulkAction]) -> bytes:
    return b"".join(action.payload for action in actions)


def _filter_values(name: str, values: Sequence[FilterValue]) -> list[Any]:
    if name in INTEGER_FIELDS:
        return [int(value) for value in values if float(value).is_integer()]
    if name in FLOAT_FIELDS:
        return [float(value) for value in values]
    return [keyword_value(value) for value in values]


def text_tokens(text: str | None) -> list[str]:
    """The words of a text query, split on non-alphanumerics and lowercased as the index analyzer does.

    Elasticsearch folds each word again with the field's analyzer, so accents need no handling here.
    """
    words = "".join(char if char.isalnum() else " " for char in (text or "")).lower().split()
    return [word for word in words if len(word.encode("utf-8")) < MAX_TOKEN_BYTES]


def _weighted(match: dict[str, Any], boost: float) -> dict[str, Any]:
    # Constant scores: under BM25 a word common to most documents would score below a rare typo match.
    return {"constant_score": {"filter": {"multi_match": match}, "boost": boost}}


def word_clause(word: str, *, prefix: bool) -> dict[str, Any]:
    """One word of the text: it must match some source; the best-weighted alternative scores it."""
    alternatives: list[dict[str, Any]] = []
    for source, boost in TEXT_FIELD_BOOSTS.items():
        fields = exact_fields(source)
        alternatives.append(_weighted({"query": word, "fields": fields}, boost))
        if source not in FUZZY_TEXT_SOURCES:
            continue
        # Constant weights: 3 x INEXACT_WEIGHT stays below the lowest exact weight, so exact matches win.
        loose = boost * INEXACT_WEIGHT
        if len(word) >= FUZZY_MIN_LENGTH:
            fuzzy = {"query": word, "fields": fields, "fuzziness": 1, "prefix_length": 0, "fuzzy_transpositions": True}
            alternatives.append(_weighted(fuzzy, loose))
        if prefix:
            alternatives.append(_weighted({"query": word, "fields": fields, "type": "bool_prefix"}, loose))
    return {"dis_max": {"queries": alternatives}}


def text_clauses(query: SearchQuery) -> list[dict[str, Any]]:
    words = text_tokens(query.text)
    return [word_clause(word, prefix=query.prefix and n == len(words) - 1) for n, word in enumerate(words)]


def field_clauses(query: SearchQuery) -> dict[str, list[dict[str, Any]]]:
    """Filter and range clauses grouped by field (a field may have both)."""
    clauses: dict[str, list[dict[str, Any]]] = {}
    for name, values in query.filters.items():
        if values:
            clauses.setdefault(name, []).append({"terms": {name: _filter_values(name, values)}})
    for name, (low, high) in query.ranges.items():
        bounds = {key: bound for key, bound in (("gte", low), ("lte", high)) if bound is not None}
        if bounds:
            clauses.setdefault(name, []).append({"range": {name: bounds}})
    return clauses


def geo_distance_clause(geo: GeoFilter) -> dict[str, Any]:
    return {
        "geo_distance": {
            "distance": f"{geo.radius_km}km",
            "distance_type": "arc",
            "location": {"lat": geo.lat, "lon": geo.lon},
        }
    }


def sort_clauses(query: SearchQuery) -> list[dict[str, Any]]:
    """The requested order, then the id ascending so the order is total (and `search_after` exact)."""
    first = query.sort[0][0] if query.sort else RELEVANCE
    head: list[dict[str, Any]]
    if first == RELEVANCE:
        head = [{"_score": {"order": "desc"}}]
    elif first == DISTANCE and query.geo is not None:
        origin = {"lat": query.geo.lat, "lon": query.geo.lon}
        head = [{"_geo_distance": {"location": origin, "order": "asc", "unit": "km", "distance_type": "arc"}}]
    else:
        head = [{name: {"order": order, "missing": "_last"}} for name, order in query.sort]
    return [*head, ID_TIEBREAK]


def terms_facet_name(field: str) -> str:
    return f"terms:{field}"


def range_facet_name(field: str) -> str:
    return f"ranges:{field}"


def range_facet(field: str, edges: Sequence[float]) -> dict[str, Any]:
    """Buckets `[..e0), [e0..e1), ..., [en..)`, keyed by position (`from` inclusive, `to` exclusive)."""
    bounds = [None, *edges, None]
    ranges = []
    for n, (low, high) in enumerate(zip(bounds, bounds[1:], strict=False)):
        bucket: dict[str, Any] = {"key": str(n)}
        if low is not None:
            bucket["from"] = low
        if high is not None:
            bucket["to"] = high
        ranges.append(bucket)
    return {"range": {"field": field, "ranges": ranges}}


def _disjunctive(
    aggregation: dict[str, Any], field: str, faceted: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """`aggregation` under every post filter but those of `field` itself (they sit outside the main query)."""
    others = [clause for name, clauses in faceted.items() if name != field for clause in clauses]
    if not others:
        return aggregation
    return {"filter": {"bool": {"filter": others}}, "aggs": {"values": aggregation}}


def facet_aggregations(query: SearchQuery, faceted: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    aggregations: dict[str, Any] = {}
    for name in query.facets:
        terms = {"terms": {"field": name, "size": FACET_SIZE}}
        aggregations[terms_facet_name(name)] = _disjunctive(terms, name, faceted)
    for name, edges in query.range_facets.items():
        aggregations[range_facet_name(name)] = _disjunctive(range_facet(name, edges), name, faceted)
    return aggregations


def search_body(query: SearchQuery) -> dict[str, Any]:
    """`POST /<alias>/_search` of a validated query.

    Text words go to `must` (scored); filters of unfaceted fields, the geo radius and visibility to
    `filter`; filters of faceted fields to `post_filter`, so each facet can count without its own field's
    filter (disjunctive facets) while hits and total obey them all.
    """
    faceted_fields = {*query.facets, *query.range_facets}
    filters: list[dict[str, Any]] = [{"term": {"visible": True}}]
    faceted: dict[str, list[dict[str, Any]]] = {}
    for name, clauses in field_clauses(query).items():
        if name in faceted_fields:
            faceted[name] = clauses
        else:
            filters.extend(clauses)
    if query.geo is not None and query.geo.radius_km is not None:
        filters.append(geo_distance_clause(query.geo))
    boolean: dict[str, Any] = {"filter": filters}
    words = text_clauses(query)
    if words:
        boolean["must"] = words
    body: dict[str, Any] = {"query": {"bool": boolean}}
    if faceted:
        body["post_filter"] = {"bool": {"filter": [clause for clauses in faceted.values() for clause in clauses]}}
    if query.limit == 0:
        body.update(size=0, track_total_hits=True)
    elif query.search_after is not None:
        # Elasticsearch refuses `from` beside `search_after`: an offset past the cursor is skipped when parsing.
        body.update(size=query.offset + query.limit, track_total_hits=True)
        body["sort"] = sort_clauses(query)
        body["search_after"] = [json_safe(value) for value in query.search_after]
    else:
        body.update({"from": query.offset, "size": query.limit, "track_total_hits": True})
        body["sort"] = sort_clauses(query)
    aggregations = facet_aggregations(query, faceted)
    if aggregations:
        body["aggs"] = aggregations
    return body


def json_safe(value: Any) -> Any:
    """A sort value that survives JSON: the infinite distance of a hit without location becomes "Infinity".

    Elasticsearch reads such strings back as numbers in `search_after`; orjson would write null instead.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")
    return value


def _buckets(aggregations: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    aggregation = aggregations.get(name, {})
    return list(aggregation.get("values", aggregation).get("buckets", []))


def _range_buckets(edges: Sequence[float], buckets: list[dict[str, Any]]) -> list[RangeBucket]:
    counts = {bucket.get("key"): int(bucket["doc_count"]) for bucket in buckets}
    bounds = [None, *(float(edge) for edge in edges), None]
    return [
        RangeBucket(low, high, counts.get(str(n), 0))
        for n, (low, high) in enumerate(zip(bounds, bounds[1:], strict=False))
    ]


def distance_km(geo: GeoFilter, document: VehicleDocument) -> float | None:
    if document.lat is None or document.lon is None:
        return None
    return haversine_km(geo.lat, geo.lon, document.lat, document.lon)


def parse_search_response(data: dict[str, Any], query: SearchQuery) -> SearchResult:
    raw_hits = data["hits"]["hits"]
    if query.search_after is not None:
        raw_hits = raw_hits[query.offset :]
    hits = [VehicleDocument.model_validate(hit["_source"]) for hit in raw_hits]
    aggregations = data.get("aggregations", {})
    facets = {
        name: {
            keyword_value(bucket["key"]) or "": bucket["doc_count"]
            for bucket in _buckets(aggregations, terms_facet_name(name))
        }
        for name in query.facets
    }
    range_facets = {
        name: _range_buckets(edges, _buckets(aggregations, range_facet_name(name)))
        for name, edges in query.range_facets.items()
    }
    geo = query.geo
    return SearchResult(
        total=data["hits"]["total"]["value"],
        hits=hits,
        facets=facets,
        range_facets=range_facets,
        sort_values=[[json_safe(value) for value in hit.get("sort", [])] for hit in raw_hits],
        distances_km=[distance_km(geo, hit) for hit in hits] if geo is not None else [],
    )


def live_ids_body(indexed: str, values: Sequence[str], search_after: Sequence[Any] | None = None) -> dict[str, Any]:
    """`POST /<alias>/_search`: one page of the live documents holding one of `values` in `indexed`, in id
    order, with no `_source` (the value comes from doc values)."""
    body: dict[str, Any] = {
        "size": LOOKUP_PAGE,
        "_source": False,
        "track_total_hits": False,
        "query": {"bool": {"filter": [{"terms": {indexed: list(values)}}, {"term": {"deleted": False}}]}},
        "docvalue_fields": [indexed],
        "sort": [{"id_rank": "asc"}, {"id": "asc"}],
    }
    if search_after is not None:
        body["search_after"] = list(search_after)
    return body


def parse_live_ids_page(data: Mapping[str, Any], indexed: str) -> tuple[dict[str, list[str]], list[Any] | None]:
    """The ids per value of one `live_ids_body` page, and the `search_after` of the next page (None: last)."""
    hits = data.get("hits", {}).get("hits", [])
    found: dict[str, list[str]] = {}
    for hit in hits:
        for value in hit.get("fields", {}).get(indexed, []):
            found.setdefault(str(value), []).append(hit["_id"])
    after = hits[-1].get("sort") if len(hits) >= LOOKUP_PAGE else None
    return found, after


def tombstone_body(source: str, position: int) -> dict[str, Any]:
    """`POST /<alias>/_update_by_query`: live documents whose `positions[source]` is below `position`."""
    return {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"deleted": False}},
                    {"range": {f"positions.{source}": {"lt": position}}},
                ]
            }
        },
        "script": {
            "lang": "painless",
            "source": TOMBSTONE_SCRIPT,
            "params": {"source": source, "position": position},
        },
    }
