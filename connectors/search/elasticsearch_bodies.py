"""Request bodies of the Elasticsearch adapter, as pure functions so tests can assert them exactly.

The mapping mirrors the tantivy schema (`connectors.search.fields`): keyword fields for filters and
facets (make/model/trim also as `<field>.text`), numeric fields, `description` as text, `location` as a
geo_point, and the derived `visible` flag. Stored `_source` is the whole `VehicleDocument` plus `visible`
and `location`, which reads ignore.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.search.fields import (
    FACET_SIZE,
    FLOAT_FIELDS,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    RELEVANCE,
    TEXT_FIELD_BOOSTS,
    keyword_value,
)
from connectors.search.port import FilterValue, SearchQuery, SearchResult
from schemas.vehicle import VehicleDocument

SCHEMA_VERSION = 1
TEXT_ANALYZER = "vehicle_text"
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


def text_field(source: str) -> str:
    """The analyzed field searched for a text source (`make.text`, ..., `description`)."""
    return source if source == "description" else f"{source}.text"


def index_definition(alias: str, *, refresh_interval: str = DEFAULT_REFRESH_INTERVAL) -> dict[str, Any]:
    """Settings, mappings and write alias of a new concrete index (`PUT /<alias>_v<N>`)."""
    properties: dict[str, Any] = {"id": {"type": "keyword"}}
    for name in KEYWORD_FIELDS:
        properties[name] = {"type": "keyword"}
        if name in TEXT_FIELD_BOOSTS:
            properties[name]["fields"] = {"text": {"type": "text", "analyzer": TEXT_ANALYZER}}
    properties["description"] = {"type": "text", "analyzer": TEXT_ANALYZER}
    for name in INTEGER_FIELDS:
        properties[name] = {"type": "long"}
    for name in FLOAT_FIELDS:
        properties[name] = {"type": "double"}
    properties["location"] = {"type": "geo_point"}
    properties["visible"] = {"type": "boolean"}
    properties["deleted"] = {"type": "boolean"}
    # Sources are open-ended (pg.vehicles, erp.inventory, ...): mapped as they appear, as longs.
    properties["positions"] = {"type": "object", "dynamic": True}
    return {
        "settings": {
            "index": {"refresh_interval": refresh_interval},
            "analysis": {
                "analyzer": {
                    TEXT_ANALYZER: {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}
                }
            },
        },
        # Other document fields stay in _source without being indexed.
        "mappings": {"dynamic": False, "properties": properties},
        "aliases": {alias: {"is_write_index": True}},
    }


def document_source(document: VehicleDocument) -> dict[str, Any]:
    source = document.model_dump(mode="json")
    source["visible"] = document.searchable
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


def search_body(query: SearchQuery) -> dict[str, Any]:
    """`POST /<alias>/_search`: text in `must` (scored), everything else in `filter` (cached, unscored)."""
    filters: list[dict[str, Any]] = [{"term": {"visible": True}}]
    for name, values in query.filters.items():
        if values:
            filters.append({"terms": {name: _filter_values(name, values)}})
    for name, (low, high) in query.ranges.items():
        bounds = {key: bound for key, bound in (("gte", low), ("lte", high)) if bound is not None}
        if bounds:
            filters.append({"range": {name: bounds}})
    boolean: dict[str, Any] = {"filter": filters}
    if query.text and query.text.strip():
        fields = [
            text_field(source) if boost == 1.0 else f"{text_field(source)}^{boost:g}"
            for source, boost in TEXT_FIELD_BOOSTS.items()
        ]
        # cross_fields + and: every word must match, each in any of the fields ("toyota camry").
        boolean["must"] = [
            {"multi_match": {"query": query.text, "fields": fields, "type": "cross_fields", "operator": "and"}}
        ]
    body: dict[str, Any] = {
        "query": {"bool": boolean},
        "from": query.offset,
        "size": query.limit,
        "track_total_hits": True,
    }
    if query.sort:
        body["sort"] = [
            {"_score": {"order": order}} if name == RELEVANCE else {name: {"order": order, "missing": "_last"}}
            for name, order in query.sort
        ]
    if query.facets:
        body["aggs"] = {name: {"terms": {"field": name, "size": FACET_SIZE}} for name in query.facets}
    return body


def parse_search_response(data: dict[str, Any], facets: Sequence[str]) -> SearchResult:
    hits = [VehicleDocument.model_validate(hit["_source"]) for hit in data["hits"]["hits"]]
    aggregations = data.get("aggregations", {})
    counts = {
        name: {
            keyword_value(bucket["key"]) or "": bucket["doc_count"]
            for bucket in aggregations.get(name, {}).get("buckets", [])
        }
        for name in facets
    }
    return SearchResult(total=data["hits"]["total"]["value"], hits=hits, facets=counts)


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
