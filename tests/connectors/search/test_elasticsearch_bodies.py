"""Exact Elasticsearch request bodies, built by pure functions (no server needed)."""

from __future__ import annotations

import orjson

from connectors.search.elasticsearch_bodies import (
    TOMBSTONE_SCRIPT,
    BulkAction,
    bulk_body,
    bulk_chunks,
    concrete_index_name,
    delete_action,
    index_action,
    index_definition,
    parse_search_response,
    search_body,
    tombstone_body,
)
from connectors.search.fields import FACET_SIZE, KEYWORD_FIELDS, NUMERIC_FIELDS
from connectors.search.port import SearchQuery
from tests.connectors.search.conftest import VehicleFactory


def lines(payload: bytes) -> list[dict[str, object]]:
    assert payload.endswith(b"\n")
    return [orjson.loads(line) for line in payload.splitlines()]


def test_index_action_uses_external_versioning(vehicle: VehicleFactory) -> None:
    document = vehicle(42, version=7, lat=30.5, lon=-97.5)

    meta, source = lines(index_action(document).payload)

    assert meta == {"index": {"_id": "42", "version": 7, "version_type": "external"}}
    assert source == {**document.model_dump(mode="json"), "visible": True, "location": {"lat": 30.5, "lon": -97.5}}


def test_tombstone_source_is_not_visible(vehicle: VehicleFactory) -> None:
    _, source = lines(index_action(vehicle(1, deleted=True, lat=None)).payload)
    assert source["visible"] is False
    assert source["deleted"] is True
    assert "location" not in source


def test_delete_action_is_one_line() -> None:
    assert lines(delete_action("9").payload) == [{"delete": {"_id": "9"}}]


def test_bulk_chunks_stay_under_the_byte_bound() -> None:
    actions = [BulkAction(str(n), b"x" * 99 + b"\n") for n in range(10)]

    chunks = bulk_chunks(actions, max_bytes=350)

    assert [[action.document_id for action in chunk] for chunk in chunks] == [
        ["0", "1", "2"],
        ["3", "4", "5"],
        ["6", "7", "8"],
        ["9"],
    ]
    assert all(len(bulk_body(chunk)) <= 350 for chunk in chunks)


def test_an_action_larger_than_the_bound_goes_alone() -> None:
    small, large = BulkAction("s", b"s\n"), BulkAction("l", b"l" * 1000 + b"\n")
    chunks = bulk_chunks([small, large, small], max_bytes=100)
    assert [[action.document_id for action in chunk] for chunk in chunks] == [["s"], ["l"], ["s"]]


def test_bulk_body_concatenates_ndjson_lines(vehicle: VehicleFactory) -> None:
    actions = [index_action(vehicle(1)), delete_action("2")]
    body = bulk_body(actions)
    assert body == actions[0].payload + actions[1].payload
    assert lines(body)[2] == {"delete": {"_id": "2"}}


def test_index_definition_maps_the_same_fields_as_tantivy() -> None:
    definition = index_definition("vehicles", refresh_interval="2s")

    assert concrete_index_name("vehicles") == "vehicles_v1"
    assert definition["aliases"] == {"vehicles": {"is_write_index": True}}
    assert definition["settings"]["index"] == {"refresh_interval": "2s"}
    assert definition["settings"]["analysis"]["analyzer"]["vehicle_text"] == {
        "type": "custom",
        "tokenizer": "standard",
        "filter": ["lowercase", "asciifolding"],
    }
    mappings = definition["mappings"]
    properties = mappings["properties"]
    assert mappings["dynamic"] is False
    assert properties["make"] == {
        "type": "keyword",
        "fields": {"text": {"type": "text", "analyzer": "vehicle_text"}},
    }
    assert properties["description"] == {"type": "text", "analyzer": "vehicle_text"}
    assert properties["location"] == {"type": "geo_point"}
    assert properties["year"] == {"type": "long"}
    assert properties["asking_price"] == {"type": "double"}
    assert properties["positions"] == {"type": "object", "dynamic": True}
    for name in KEYWORD_FIELDS:
        assert properties[name]["type"] == "keyword"
    for name in NUMERIC_FIELDS:
        assert properties[name]["type"] in {"long", "double"}
    assert properties["visible"] == properties["deleted"] == {"type": "boolean"}


def test_search_body_of_a_full_query() -> None:
    query = SearchQuery(
        text="toyota camry",
        filters={"make": ["Toyota", "Honda"], "dealer_id": [7], "year": [2019, 2020.0]},
        ranges={"asking_price": (10_000, None), "mileage": (None, None)},
        facets=["make", "year"],
        sort=[("asking_price", "asc"), ("year", "desc")],
        limit=10,
        offset=20,
    )

    assert search_body(query) == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"visible": True}},
                    {"terms": {"make": ["Toyota", "Honda"]}},
                    {"terms": {"dealer_id": ["7"]}},
                    {"terms": {"year": [2019, 2020]}},
                    {"range": {"asking_price": {"gte": 10_000}}},
                ],
                "must": [
                    {
                        "multi_match": {
                            "query": "toyota camry",
                            "fields": ["make.text^3", "model.text^3", "trim.text^2", "description"],
                            "type": "cross_fields",
                            "operator": "and",
                        }
                    }
                ],
            }
        },
        "from": 20,
        "size": 10,
        "track_total_hits": True,
        "sort": [
            {"asking_price": {"order": "asc", "missing": "_last"}},
            {"year": {"order": "desc", "missing": "_last"}},
        ],
        "aggs": {
            "make": {"terms": {"field": "make", "size": FACET_SIZE}},
            "year": {"terms": {"field": "year", "size": FACET_SIZE}},
        },
    }


def test_search_body_of_an_empty_query_matches_visible_documents() -> None:
    assert search_body(SearchQuery(text="  ", filters={"make": []})) == {
        "query": {"bool": {"filter": [{"term": {"visible": True}}]}},
        "from": 0,
        "size": 20,
        "track_total_hits": True,
    }


def test_search_body_sorts_by_relevance() -> None:
    assert search_body(SearchQuery(sort=[("_score", "desc")]))["sort"] == [{"_score": {"order": "desc"}}]


def test_parse_search_response(vehicle: VehicleFactory) -> None:
    document = vehicle(1)
    data = {
        "hits": {
            "total": {"value": 12, "relation": "eq"},
            "hits": [{"_id": "1", "_source": {**document.model_dump(mode="json"), "visible": True}}],
        },
        "aggregations": {
            "make": {"buckets": [{"key": "Toyota", "doc_count": 9}, {"key": "Honda", "doc_count": 3}]},
            "year": {"buckets": [{"key": 2020, "doc_count": 12}]},
        },
    }

    result = parse_search_response(data, ["make", "year", "state"])

    assert result.total == 12
    assert result.hits == [document]
    assert result.facets == {"make": {"Toyota": 9, "Honda": 3}, "year": {"2020": 12}, "state": {}}


def test_tombstone_body_is_a_scripted_update_by_query() -> None:
    assert tombstone_body("pg.vehicles", 500) == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"deleted": False}},
                    {"range": {"positions.pg.vehicles": {"lt": 500}}},
                ]
            }
        },
        "script": {
            "lang": "painless",
            "source": TOMBSTONE_SCRIPT,
            "params": {"source": "pg.vehicles", "position": 500},
        },
    }
