"""Exact Elasticsearch request bodies, built by pure functions (no server needed)."""

from __future__ import annotations

import orjson
import pytest

from connectors.search.elasticsearch_bodies import (
    LOOKUP_PAGE,
    SCHEMA_VERSION,
    TOMBSTONE_SCRIPT,
    BulkAction,
    bulk_body,
    bulk_chunks,
    concrete_index_name,
    delete_action,
    index_action,
    index_definition,
    live_ids_body,
    parse_live_ids_page,
    parse_search_response,
    reindex_body,
    schema_version_of,
    search_body,
    swap_alias_body,
    text_tokens,
    tombstone_body,
    word_clause,
)
from connectors.search.fields import FACET_SIZE, INEXACT_WEIGHT, KEYWORD_FIELDS, NUMERIC_FIELDS, SORT_FIELDS
from connectors.search.port import GeoFilter, RangeBucket, SearchQuery
from schemas.geo import haversine_km
from schemas.vehicle import VehicleDocument
from tests.connectors.search.conftest import VehicleFactory


def lines(payload: bytes) -> list[dict[str, object]]:
    assert payload.endswith(b"\n")
    return [orjson.loads(line) for line in payload.splitlines()]


def test_index_action_uses_external_versioning(vehicle: VehicleFactory) -> None:
    document = vehicle(42, version=7, lat=30.5, lon=-97.5)

    meta, source = lines(index_action(document).payload)

    assert meta == {"index": {"_id": "42", "version": 7, "version_type": "external"}}
    assert source == {
        **document.model_dump(mode="json"), "visible": True, "location": {"lat": 30.5, "lon": -97.5}, "id_rank": 42,
    }  # fmt: skip


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

    assert concrete_index_name("vehicles") == f"vehicles_v{SCHEMA_VERSION}"
    assert SCHEMA_VERSION == 4
    assert definition["aliases"] == {"vehicles": {"is_write_index": True}}
    assert definition["settings"]["index"] == {"refresh_interval": "2s"}
    assert definition["settings"]["analysis"] == {
        "char_filter": {
            "vehicle_strip_non_alphanumerics": {
                "type": "pattern_replace",
                "pattern": "[^\\p{L}\\p{N}]",
                "replacement": "",
            }
        },
        "tokenizer": {"vehicle_words": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}},
        "analyzer": {
            "vehicle_text": {"type": "custom", "tokenizer": "vehicle_words", "filter": ["lowercase", "asciifolding"]}
        },
        "normalizer": {
            "vehicle_compact": {
                "type": "custom",
                "char_filter": ["vehicle_strip_non_alphanumerics"],
                "filter": ["lowercase", "asciifolding"],
            }
        },
    }
    mappings = definition["mappings"]
    properties = mappings["properties"]
    assert mappings["dynamic"] is False
    for name in ("make", "model", "trim"):
        assert properties[name] == {
            "type": "keyword",
            "fields": {
                "text": {"type": "text", "analyzer": "vehicle_text"},
                "compact": {"type": "keyword", "normalizer": "vehicle_compact"},
            },
        }
    assert properties["id"] == {"type": "keyword"}
    assert properties["id_rank"] == {"type": "long"}
    assert properties["description"] == {"type": "text", "analyzer": "vehicle_text"}
    assert properties["auction_ends_at"] == {"type": "date", "ignore_malformed": True}
    assert properties["location"] == {"type": "geo_point"}
    assert properties["year"] == {"type": "long"}
    assert properties["asking_price"] == {"type": "double"}
    assert properties["positions"] == {"type": "object", "dynamic": True}
    for name in KEYWORD_FIELDS:
        assert properties[name]["type"] == "keyword"
    for name in NUMERIC_FIELDS:
        assert properties[name]["type"] in {"long", "double"}
    for name in SORT_FIELDS:
        assert properties[name]["type"] in {"long", "double", "date"}
    assert properties["visible"] == properties["deleted"] == {"type": "boolean"}


def test_text_tokens_split_on_non_alphanumerics() -> None:
    assert text_tokens("  Toyota CR-V, f_150!  Citroën ") == ["toyota", "cr", "v", "f", "150", "citroën"]
    assert text_tokens("x" * 39 + " " + "y" * 40) == ["x" * 39]
    assert text_tokens(None) == text_tokens(" -- ") == []


def weighted(fields: list[str], boost: float, **match: object) -> dict[str, object]:
    return {"constant_score": {"filter": {"multi_match": {**match, "fields": fields}}, "boost": boost}}


MAKE, MODEL, TRIM = ["make.text", "make.compact"], ["model.text", "model.compact"], ["trim.text", "trim.compact"]
FUZZY = {"fuzziness": 1, "prefix_length": 0, "fuzzy_transpositions": True}


def test_a_long_last_word_matches_exactly_with_a_typo_or_as_a_prefix() -> None:
    assert word_clause("camry", prefix=True) == {
        "dis_max": {
            "queries": [
                weighted(MAKE, 3.0, query="camry"),
                weighted(MAKE, 3.0 * INEXACT_WEIGHT, query="camry", **FUZZY),
                weighted(MAKE, 3.0 * INEXACT_WEIGHT, query="camry", type="bool_prefix"),
                weighted(MODEL, 3.0, query="camry"),
                weighted(MODEL, 3.0 * INEXACT_WEIGHT, query="camry", **FUZZY),
                weighted(MODEL, 3.0 * INEXACT_WEIGHT, query="camry", type="bool_prefix"),
                weighted(TRIM, 2.0, query="camry"),
                weighted(TRIM, 2.0 * INEXACT_WEIGHT, query="camry", **FUZZY),
                weighted(TRIM, 2.0 * INEXACT_WEIGHT, query="camry", type="bool_prefix"),
                weighted(["description"], 1.0, query="camry"),
            ]
        }
    }


def test_a_short_inner_word_matches_exactly_only() -> None:
    assert word_clause("f150", prefix=False) == {
        "dis_max": {
            "queries": [
                weighted(MAKE, 3.0, query="f150"),
                weighted(MODEL, 3.0, query="f150"),
                weighted(TRIM, 2.0, query="f150"),
                weighted(["description"], 1.0, query="f150"),
            ]
        }
    }


def test_only_the_last_word_is_a_prefix_and_only_when_asked() -> None:
    def prefixed(query: SearchQuery) -> list[bool]:
        return [
            "bool_prefix" in orjson.dumps(clause).decode() for clause in search_body(query)["query"]["bool"]["must"]
        ]

    assert prefixed(SearchQuery(text="toyota ca")) == [False, True]
    assert prefixed(SearchQuery(text="toyota ca", prefix=False)) == [False, False]


def test_search_body_of_text_filters_and_disjunctive_facets() -> None:
    query = SearchQuery(
        text="toyota CR-V",
        filters={"make": ["Toyota", "Honda"], "dealer_id": [7], "year": [2019, 2020.0], "state": []},
        ranges={"asking_price": (10_000, None), "mileage": (None, None), "year": (2015, 2021)},
        facets=["make", "year", "state"],
        sort=[("asking_price", "asc")],
        limit=10,
        offset=20,
    )

    body = search_body(query)

    assert body == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"visible": True}},
                    {"terms": {"dealer_id": ["7"]}},
                    {"range": {"asking_price": {"gte": 10_000}}},
                ],
                "must": [
                    word_clause("toyota", prefix=False),
                    word_clause("cr", prefix=False),
                    word_clause("v", prefix=True),
                ],
            }
        },
        "post_filter": {
            "bool": {
                "filter": [
                    {"terms": {"make": ["Toyota", "Honda"]}},
                    {"terms": {"year": [2019, 2020]}},
                    {"range": {"year": {"gte": 2015, "lte": 2021}}},
                ]
            }
        },
        "from": 20,
        "size": 10,
        "track_total_hits": True,
        "sort": [
            {"asking_price": {"order": "asc", "missing": "_last"}},
            {"id_rank": {"order": "asc"}},
        ],
        "aggs": {
            "terms:make": {
                "filter": {
                    "bool": {
                        "filter": [
                            {"terms": {"year": [2019, 2020]}},
                            {"range": {"year": {"gte": 2015, "lte": 2021}}},
                        ]
                    }
                },
                "aggs": {"values": {"terms": {"field": "make", "size": FACET_SIZE}}},
            },
            "terms:year": {
                "filter": {"bool": {"filter": [{"terms": {"make": ["Toyota", "Honda"]}}]}},
                "aggs": {"values": {"terms": {"field": "year", "size": FACET_SIZE}}},
            },
            "terms:state": {
                "filter": {
                    "bool": {
                        "filter": [
                            {"terms": {"make": ["Toyota", "Honda"]}},
                            {"terms": {"year": [2019, 2020]}},
                            {"range": {"year": {"gte": 2015, "lte": 2021}}},
                        ]
                    }
                },
                "aggs": {"values": {"terms": {"field": "state", "size": FACET_SIZE}}},
            },
        },
    }


def test_facets_without_filters_on_faceted_fields_are_plain_terms() -> None:
    body = search_body(SearchQuery(filters={"state": ["TX"]}, facets=["make"]))

    assert "post_filter" not in body
    assert body["query"]["bool"]["filter"] == [{"term": {"visible": True}}, {"terms": {"state": ["TX"]}}]
    assert body["aggs"] == {"terms:make": {"terms": {"field": "make", "size": FACET_SIZE}}}


def test_search_body_of_an_empty_query_sorts_by_relevance_then_id() -> None:
    assert search_body(SearchQuery(text="  ", filters={"make": []})) == {
        "query": {"bool": {"filter": [{"term": {"visible": True}}]}},
        "from": 0,
        "size": 20,
        "track_total_hits": True,
        "sort": [{"_score": {"order": "desc"}}, {"id_rank": {"order": "asc"}}],
    }
    assert search_body(SearchQuery(sort=[("_score", "desc")]))["sort"] == [
        {"_score": {"order": "desc"}},
        {"id_rank": {"order": "asc"}},
    ]


def test_search_body_of_a_radius_sorted_by_distance() -> None:
    query = SearchQuery(geo=GeoFilter(lat=30.27, lon=-97.74, radius_km=150.5), sort=[("_distance", "asc")], limit=5)

    assert search_body(query) == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"visible": True}},
                    {
                        "geo_distance": {
                            "distance": "150.5km",
                            "distance_type": "arc",
                            "location": {"lat": 30.27, "lon": -97.74},
                        }
                    },
                ]
            }
        },
        "from": 0,
        "size": 5,
        "track_total_hits": True,
        "sort": [
            {
                "_geo_distance": {
                    "location": {"lat": 30.27, "lon": -97.74},
                    "order": "asc",
                    "unit": "km",
                    "distance_type": "arc",
                }
            },
            {"id_rank": {"order": "asc"}},
        ],
    }


def test_a_location_without_radius_filters_nothing() -> None:
    body = search_body(SearchQuery(geo=GeoFilter(lat=1.0, lon=2.0), sort=[("year", "desc")]))
    assert body["query"] == {"bool": {"filter": [{"term": {"visible": True}}]}}
    assert body["sort"] == [{"year": {"order": "desc", "missing": "_last"}}, {"id_rank": {"order": "asc"}}]


def test_search_body_continues_after_a_cursor() -> None:
    query = SearchQuery(sort=[("auction_ends_at", "asc")], search_after=[1_893_456_000_000, "42"], limit=10, offset=0)

    body = search_body(query)

    assert body["sort"] == [{"auction_ends_at": {"order": "asc", "missing": "_last"}}, {"id_rank": {"order": "asc"}}]
    assert body["search_after"] == [1_893_456_000_000, "42"]
    assert body["size"] == 10
    assert "from" not in body


def test_a_cursor_with_an_offset_fetches_the_skipped_hits_too() -> None:
    body = search_body(
        SearchQuery(
            sort=[("_distance", "asc")], geo=GeoFilter(0, 0), search_after=[float("inf"), "5"], offset=3, limit=2
        )
    )
    assert (body["size"], body["search_after"]) == (5, ["Infinity", "5"])
    assert "from" not in body


def test_search_body_of_range_facets() -> None:
    query = SearchQuery(
        ranges={"asking_price": (None, 20_000)},
        filters={"body_type": ["suv"]},
        range_facets={"asking_price": [10_000, 20_000.5], "year": [2020]},
    )

    body = search_body(query)

    assert body["query"]["bool"]["filter"] == [{"term": {"visible": True}}, {"terms": {"body_type": ["suv"]}}]
    assert body["post_filter"] == {"bool": {"filter": [{"range": {"asking_price": {"lte": 20_000}}}]}}
    assert body["aggs"] == {
        "ranges:asking_price": {
            "range": {
                "field": "asking_price",
                "ranges": [
                    {"key": "0", "to": 10_000},
                    {"key": "1", "from": 10_000, "to": 20_000.5},
                    {"key": "2", "from": 20_000.5},
                ],
            }
        },
        "ranges:year": {
            "filter": {"bool": {"filter": [{"range": {"asking_price": {"lte": 20_000}}}]}},
            "aggs": {
                "values": {"range": {"field": "year", "ranges": [{"key": "0", "to": 2020}, {"key": "1", "from": 2020}]}}
            },
        },
    }


def test_search_body_of_a_facet_only_query() -> None:
    assert search_body(SearchQuery(filters={"make": ["Ford"]}, facets=["make"], limit=0, offset=40)) == {
        "query": {"bool": {"filter": [{"term": {"visible": True}}]}},
        "post_filter": {"bool": {"filter": [{"terms": {"make": ["Ford"]}}]}},
        "size": 0,
        "track_total_hits": True,
        "aggs": {"terms:make": {"terms": {"field": "make", "size": FACET_SIZE}}},
    }


def source(document: VehicleDocument) -> dict[str, object]:
    return {**document.model_dump(mode="json"), "visible": True}


def test_parse_search_response(vehicle: VehicleFactory) -> None:
    near, nowhere = vehicle(1, lat=30.3, lon=-97.7), vehicle(2, lat=None, lon=None)
    data = {
        "hits": {
            "total": {"value": 12, "relation": "eq"},
            "hits": [
                {"_id": "1", "_source": source(near), "sort": [4.2, "1"]},
                {"_id": "2", "_source": source(nowhere), "sort": ["Infinity", "2"]},
            ],
        },
        "aggregations": {
            "terms:make": {
                "doc_count": 30,
                "values": {"buckets": [{"key": "Toyota", "doc_count": 9}, {"key": "Honda", "doc_count": 3}]},
            },
            "terms:year": {"buckets": [{"key": 2020, "doc_count": 12}]},
            "ranges:asking_price": {
                "buckets": [
                    {"key": "0", "to": 10_000.0, "doc_count": 2},
                    {"key": "2", "from": 20_000.0, "doc_count": 5},
                ]
            },
        },
    }
    query = SearchQuery(
        geo=GeoFilter(30.27, -97.74),
        sort=[("_distance", "asc")],
        facets=["make", "year", "state"],
        range_facets={"asking_price": [10_000, 20_000]},
    )

    result = parse_search_response(data, query)

    assert result.total == 12
    assert result.hits == [near, nowhere]
    assert result.facets == {"make": {"Toyota": 9, "Honda": 3}, "year": {"2020": 12}, "state": {}}
    assert result.range_facets == {
        "asking_price": [
            RangeBucket(None, 10_000.0, 2),
            RangeBucket(10_000.0, 20_000.0, 0),
            RangeBucket(20_000.0, None, 5),
        ]
    }
    assert result.sort_values == [[4.2, "1"], ["Infinity", "2"]]
    assert result.distances_km == [pytest.approx(haversine_km(30.27, -97.74, 30.3, -97.7)), None]


def test_parse_without_geo_has_no_distances_and_json_safe_sort_values(vehicle: VehicleFactory) -> None:
    data = {
        "hits": {"total": {"value": 1}, "hits": [{"_source": source(vehicle(1)), "sort": [float("-inf"), "1"]}]},
    }
    result = parse_search_response(data, SearchQuery(sort=[("asking_price", "desc")]))
    assert (result.distances_km, result.sort_values, result.range_facets) == ([], [["-Infinity", "1"]], {})


def test_parse_drops_the_offset_fetched_after_a_cursor(vehicle: VehicleFactory) -> None:
    hits = [{"_source": source(vehicle(n)), "sort": [n, str(n)]} for n in range(5)]
    data = {"hits": {"total": {"value": 9}, "hits": hits}}

    result = parse_search_response(data, SearchQuery(sort=[("year", "asc")], search_after=[0, "0"], offset=3))

    assert [hit.id for hit in result.hits] == ["3", "4"]
    assert result.sort_values == [[3, "3"], [4, "4"]]


def test_schema_versions_and_migration_bodies() -> None:
    assert schema_version_of("vehicles", "vehicles_v1") == 1
    assert schema_version_of("vehicles", "vehicles_v12") == 12
    assert schema_version_of("vehicles", "vehicles_old") is None
    assert schema_version_of("vehicles", "cars_v1") is None
    assert reindex_body(["vehicles_v1"], "vehicles_v2") == {
        "conflicts": "proceed",
        "source": {"index": "vehicles_v1"},
        "dest": {"index": "vehicles_v2", "version_type": "external"},
    }
    assert swap_alias_body("vehicles", ["vehicles_v1"], "vehicles_v2") == {
        "actions": [
            {"remove": {"index": "vehicles_v1", "alias": "vehicles"}},
            {"add": {"index": "vehicles_v2", "alias": "vehicles", "is_write_index": True}},
        ]
    }


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


def test_documents_carry_their_vin_as_the_erp_keys_it(vehicle: VehicleFactory) -> None:
    _, source = lines(index_action(vehicle(1, vin=" jh4ka7561pc008269")).payload)
    assert source["vin_key"] == "JH4KA7561PC008269"
    _, without = lines(index_action(vehicle(2, vin=None)).payload)
    assert "vin_key" not in without
    assert index_definition("vehicles")["mappings"]["properties"]["vin_key"] == {"type": "keyword"}


def test_live_ids_body_pages_live_documents_in_id_order_without_source() -> None:
    first = live_ids_body("vin_key", ["A1", "B2"])
    assert first == {
        "size": LOOKUP_PAGE,
        "_source": False,
        "track_total_hits": False,
        "query": {"bool": {"filter": [{"terms": {"vin_key": ["A1", "B2"]}}, {"term": {"deleted": False}}]}},
        "docvalue_fields": ["vin_key"],
        "sort": [{"id_rank": "asc"}, {"id": "asc"}],
    }
    assert live_ids_body("dealer_id", ["7"], [42, "42"])["search_after"] == [42, "42"]


def test_live_ids_pages_group_ids_by_value_and_say_where_the_next_page_starts() -> None:
    hits = [{"_id": "1", "fields": {"vin_key": ["A1"]}, "sort": [1, "1"]}, {"_id": "2", "fields": {"vin_key": ["B2"]}}]
    assert parse_live_ids_page({"hits": {"hits": hits}}, "vin_key") == ({"A1": ["1"], "B2": ["2"]}, None)
    full = [{"_id": str(n), "fields": {"dealer_id": ["7"]}, "sort": [n, str(n)]} for n in range(LOOKUP_PAGE)]
    found, after = parse_live_ids_page({"hits": {"hits": full}}, "dealer_id")
    assert len(found["7"]) == LOOKUP_PAGE
    assert after == [LOOKUP_PAGE - 1, str(LOOKUP_PAGE - 1)]
