"""HTTP behaviour of the Elasticsearch adapter: alias creation, bulk retries, 409 handling, reads.

Elasticsearch cannot be installed in this environment, so these tests run the adapter against a small real
HTTP server on a free loopback port (`http.server` in a thread) that records every request and answers
with Elasticsearch-shaped responses scripted per test. It stands in for Elasticsearch only for that reason;
the contract suite (`test_contract.py`) runs against a real cluster when ELASTICSEARCH_URL is set.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from connectors.search.elasticsearch_bodies import SCHEMA_VERSION, concrete_index_name, index_definition, search_body
from connectors.search.elasticsearch_index import BulkItemsFailed, ElasticsearchIndex
from connectors.search.port import GeoFilter, RangeBucket, SearchIndexUnavailable, SearchQuery
from schemas.geo import haversine_km
from tests.connectors.search.conftest import VehicleFactory

CURRENT = concrete_index_name("vehicles")


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [orjson.loads(line) for line in self.body.splitlines()]


Responder = Callable[[Recorded], tuple[int, Any]]


class FakeElasticsearch:
    """Records requests; `respond` (set by each test) maps a request to (status, JSON body)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.respond: Responder = lambda request: (404, {"error": {"type": "unscripted"}})
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                request = Recorded(self.command, url.path, parse_qs(url.query), self.rfile.read(length))
                fake.requests.append(request)
                status, body = fake.respond(request)
                payload = orjson.dumps(body)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("x-elastic-product", "Elasticsearch")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                """Silence the per-request log line."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[str]:
        return [f"{request.method} {request.path}" for request in self.requests]


@pytest.fixture
def fake_es() -> Iterator[FakeElasticsearch]:
    fake = FakeElasticsearch()
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
async def new_es_index(fake_es: FakeElasticsearch) -> AsyncIterator[ElasticsearchIndex]:
    index = ElasticsearchIndex(fake_es.url, alias="vehicles", backoff_seconds=0.001, max_retries=3)
    yield index
    await index.close()


@pytest.fixture
async def es_index(fake_es: FakeElasticsearch, new_es_index: ElasticsearchIndex) -> ElasticsearchIndex:
    """A started writer: its alias exists, and the requests of `start()` are forgotten."""
    fake_es.respond = lambda request: (200, {CURRENT: {"aliases": {"vehicles": {}}}})
    await new_es_index.start()
    fake_es.requests.clear()
    return new_es_index


def bulk_response(*statuses: int, operation: str = "index") -> dict[str, Any]:
    items = [
        {operation: {"_id": str(n), "status": status, **({"error": {"type": "x"}} if status >= 300 else {})}}
        for n, status in enumerate(statuses)
    ]
    return {"took": 1, "errors": any(status >= 300 for status in statuses), "items": items}


async def test_start_creates_the_versioned_index_behind_the_alias(
    fake_es: FakeElasticsearch, new_es_index: ElasticsearchIndex
) -> None:
    fake_es.respond = lambda request: (404, {}) if request.method == "GET" else (200, {"acknowledged": True})

    await new_es_index.start()

    assert fake_es.paths() == ["GET /_alias/vehicles", f"PUT /{CURRENT}"]
    assert fake_es.requests[1].json() == index_definition("vehicles")


@pytest.mark.parametrize("current", [CURRENT, f"vehicles_v{SCHEMA_VERSION + 1}", "vehicles_by_hand"])
async def test_start_leaves_a_current_newer_or_foreign_alias_alone(
    fake_es: FakeElasticsearch, new_es_index: ElasticsearchIndex, current: str
) -> None:
    fake_es.respond = lambda request: (200, {current: {"aliases": {"vehicles": {}}}})
    await new_es_index.start()
    assert fake_es.paths() == ["GET /_alias/vehicles"]


def migration_responder(*, created: tuple[int, Any], copied: dict[str, Any]) -> Responder:
    def respond(request: Recorded) -> tuple[int, Any]:
        if request.method == "GET":
            return 200, {"vehicles_v1": {"aliases": {"vehicles": {"is_write_index": True}}}}
        if request.method == "PUT":
            return created
        if request.path == "/_reindex":
            return 200, copied
        return 200, {"acknowledged": True}

    return respond


async def test_start_rebuilds_an_older_schema_version_and_moves_the_alias(
    fake_es: FakeElasticsearch, new_es_index: ElasticsearchIndex
) -> None:
    fake_es.respond = migration_responder(created=(200, {"acknowledged": True}), copied={"total": 3, "failures": []})

    await new_es_index.start()

    assert fake_es.paths() == ["GET /_alias/vehicles", f"PUT /{CURRENT}", "POST /_reindex", "POST /_aliases"]
    definition = index_definition("vehicles")
    del definition["aliases"]
    put, reindex, aliases = fake_es.requests[1:]
    assert put.json() == definition
    assert reindex.params == {"refresh": ["true"], "wait_for_completion": ["true"]}
    assert reindex.json() == {
        "conflicts": "proceed",
        "source": {"index": "vehicles_v1"},
        "dest": {"index": CURRENT, "version_type": "external"},
    }
    assert aliases.json() == {
        "actions": [
            {"remove": {"index": "vehicles_v1", "alias": "vehicles"}},
            {"add": {"index": CURRENT, "alias": "vehicles", "is_write_index": True}},
        ]
    }


async def test_a_migration_resumes_into_the_index_a_stopped_start_created(
    fake_es: FakeElasticsearch, new_es_index: ElasticsearchIndex
) -> None:
    exists = (400, {"error": {"type": "resource_already_exists_exception"}, "status": 400})
    fake_es.respond = migration_responder(created=exists, copied={"total": 3, "version_conflicts": 2})

    await new_es_index.start()

    assert fake_es.paths()[-2:] == ["POST /_reindex", "POST /_aliases"]


async def test_a_failed_reindex_keeps_the_alias_on_the_old_index(
    fake_es: FakeElasticsearch, new_es_index: ElasticsearchIndex
) -> None:
    failure = {"index": CURRENT, "id": "9", "cause": {"type": "mapper_parsing_exception"}}
    fake_es.respond = migration_responder(created=(200, {}), copied={"failures": [failure]})

    with pytest.raises(SearchIndexUnavailable, match="mapper_parsing_exception"):
        await new_es_index.start()

    assert "POST /_aliases" not in fake_es.paths()


async def test_start_adds_the_alias_to_an_index_left_without_it(
    fake_es: FakeElasticsearch, new_es_index: ElasticsearchIndex
) -> None:
    def respond(request: Recorded) -> tuple[int, Any]:
        if request.method == "GET":
            return 404, {}
        if request.method == "PUT":
            return 400, {"error": {"type": "resource_already_exists_exception"}, "status": 400}
        return 200, {"acknowledged": True}

    fake_es.respond = respond
    await new_es_index.start()

    assert fake_es.paths()[-1] == "POST /_aliases"
    assert fake_es.requests[-1].json() == {
        "actions": [{"add": {"index": CURRENT, "alias": "vehicles", "is_write_index": True}}]
    }


async def test_a_reader_does_not_create_indices(fake_es: FakeElasticsearch) -> None:
    reader = ElasticsearchIndex(fake_es.url, writer=False)
    await reader.start()
    await reader.close()
    assert fake_es.requests == []


async def test_the_first_write_starts_a_writer_once(
    fake_es: FakeElasticsearch, new_es_index: ElasticsearchIndex, vehicle: VehicleFactory
) -> None:
    def respond(request: Recorded) -> tuple[int, Any]:
        if request.method == "GET":
            return 200, {CURRENT: {"aliases": {"vehicles": {}}}}
        return 200, bulk_response(201)

    fake_es.respond = respond
    await new_es_index.upsert([vehicle(1)])
    await new_es_index.upsert([vehicle(2)])

    assert fake_es.paths() == ["GET /_alias/vehicles", "POST /vehicles/_bulk", "POST /vehicles/_bulk"]


async def test_bulk_retries_only_the_items_rejected_with_429(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex, vehicle: VehicleFactory
) -> None:
    answers = [bulk_response(201, 429, 409, 429), bulk_response(429, 200), bulk_response(201)]
    fake_es.respond = lambda request: (200, answers.pop(0))

    await es_index.upsert([vehicle(n, version=n + 1) for n in range(4)])

    bodies = [request.ndjson() for request in fake_es.requests]
    assert fake_es.paths() == ["POST /vehicles/_bulk"] * 3
    assert [line["index"]["_id"] for line in bodies[0][::2]] == ["0", "1", "2", "3"]
    assert [line["index"]["_id"] for line in bodies[1][::2]] == ["1", "3"]
    assert [line["index"]["_id"] for line in bodies[2][::2]] == ["1"]
    assert bodies[2][0] == {"index": {"_id": "1", "version": 2, "version_type": "external"}}


async def test_a_version_conflict_counts_as_success(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex, vehicle: VehicleFactory
) -> None:
    fake_es.respond = lambda request: (200, bulk_response(409, 409))
    await es_index.upsert([vehicle(1), vehicle(2)])
    assert len(fake_es.requests) == 1


async def test_persistent_429_gives_up_as_unavailable(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex, vehicle: VehicleFactory
) -> None:
    fake_es.respond = lambda request: (200, bulk_response(429))
    with pytest.raises(SearchIndexUnavailable, match="429"):
        await es_index.upsert([vehicle(1)])
    assert len(fake_es.requests) == 4


async def test_a_refused_document_fails_the_batch_with_its_id(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex, vehicle: VehicleFactory
) -> None:
    fake_es.respond = lambda request: (200, bulk_response(201, 400))
    with pytest.raises(BulkItemsFailed) as failed:
        await es_index.upsert([vehicle(1), vehicle(2)])
    assert [failure["id"] for failure in failed.value.failures] == ["2"]


async def test_a_rejected_request_is_retried_whole(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex, vehicle: VehicleFactory
) -> None:
    answers: list[tuple[int, Any]] = [(503, {"error": "unavailable"}), (429, {}), (200, bulk_response(201))]
    fake_es.respond = lambda request: answers.pop(0)

    await es_index.upsert([vehicle(1)])

    assert len(fake_es.requests) == 3
    assert fake_es.requests[0].body == fake_es.requests[2].body


async def test_bulk_requests_are_bounded_in_bytes(fake_es: FakeElasticsearch, vehicle: VehicleFactory) -> None:
    index = ElasticsearchIndex(fake_es.url, bulk_max_bytes=4000)
    fake_es.respond = lambda request: (200, {"errors": False, "items": []})

    await index.upsert([vehicle(n) for n in range(10)])
    await index.close()

    bulks = [request for request in fake_es.requests if request.path == "/vehicles/_bulk"]
    assert len(bulks) > 1
    assert all(len(request.body) <= 4000 for request in bulks)
    sent = [line["index"]["_id"] for request in bulks for line in request.ndjson()[::2]]
    assert sent == [str(n) for n in range(10)]


async def test_delete_treats_missing_documents_as_deleted(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex
) -> None:
    fake_es.respond = lambda request: (200, bulk_response(200, 404, operation="delete"))
    await es_index.delete(["1", "2"])
    assert fake_es.requests[0].ndjson() == [{"delete": {"_id": "1"}}, {"delete": {"_id": "2"}}]


async def test_get_and_get_many_read_sources(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex, vehicle: VehicleFactory
) -> None:
    stored = vehicle("a/1")

    def respond(request: Recorded) -> tuple[int, Any]:
        if request.path == "/vehicles/_mget":
            docs = [
                {"_id": i, "found": i == "a/1", **({"_source": stored.model_dump(mode="json")} if i == "a/1" else {})}
                for i in request.json()["ids"]
            ]
            return 200, {"docs": docs}
        if request.path == "/vehicles/_doc/a%2F1":
            return 200, {"_id": "a/1", "found": True, "_source": {**stored.model_dump(mode="json"), "visible": True}}
        return 404, {"_id": "x", "found": False}

    fake_es.respond = respond

    assert await es_index.get("a/1") == stored
    assert await es_index.get("x") is None
    assert await es_index.get_many(["a/1", "b", "a/1"]) == {"a/1": stored}
    assert fake_es.requests[-1].json() == {"ids": ["a/1", "b"]}


async def test_a_missing_index_is_unavailable_not_absent(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex
) -> None:
    fake_es.respond = lambda request: (404, {"error": {"type": "index_not_found_exception"}, "status": 404})
    with pytest.raises(SearchIndexUnavailable, match="missing"):
        await es_index.get("1")


async def test_search_posts_the_body_and_parses_hits_and_facets(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex, vehicle: VehicleFactory
) -> None:
    fake_es.respond = lambda request: (
        200,
        {
            "hits": {"total": {"value": 1}, "hits": [{"_source": vehicle(1).model_dump(mode="json")}]},
            "aggregations": {"terms:make": {"buckets": [{"key": "Toyota", "doc_count": 1}]}},
        },
    )

    result = await es_index.search(SearchQuery(text="toyota", facets=["make"]))

    assert fake_es.paths() == ["POST /vehicles/_search"]
    assert fake_es.requests[0].json()["aggs"] == {"terms:make": {"terms": {"field": "make", "size": 200}}}
    assert (result.total, result.hits, result.facets) == (1, [vehicle(1)], {"make": {"Toyota": 1}})


async def test_tombstone_older_than_runs_update_by_query(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex
) -> None:
    fake_es.respond = lambda request: (200, {"updated": 17, "version_conflicts": 1})

    assert await es_index.tombstone_older_than("pg.vehicles", 900) == 17

    request = fake_es.requests[0]
    assert request.path == "/vehicles/_update_by_query"
    assert request.params == {
        "conflicts": ["proceed"],
        "refresh": ["true"],
        "slices": ["auto"],
        "wait_for_completion": ["true"],
    }


async def test_update_partial_reindexes_with_the_new_version(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex, vehicle: VehicleFactory
) -> None:
    def respond(request: Recorded) -> tuple[int, Any]:
        if request.method == "GET":
            return 200, {"_id": "1", "found": True, "_source": vehicle(1, version=3).model_dump(mode="json")}
        return 200, bulk_response(200)

    fake_es.respond = respond
    await es_index.update_partial("1", {"currentBid": 9_000.0}, version=4)

    meta, source = fake_es.requests[-1].ndjson()
    assert meta == {"index": {"_id": "1", "version": 4, "version_type": "external"}}
    assert (source["currentBid"], source["version"]) == (9_000.0, 4)


async def test_flush_refreshes_and_health_reports_the_count(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex
) -> None:
    def respond(request: Recorded) -> tuple[int, Any]:
        if request.path == "/_cluster/health":
            return 200, {"cluster_name": "test", "status": "yellow"}
        if request.path == "/vehicles/_count":
            return 200, {"count": 1234}
        return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}

    fake_es.respond = respond
    await es_index.flush()
    health = await es_index.health()

    assert fake_es.paths()[0] == "POST /vehicles/_refresh"
    assert (health.ok, health.engine, health.documents) == (True, "elasticsearch", 1234)


async def test_an_unreachable_cluster_is_unhealthy() -> None:
    index = ElasticsearchIndex("http://127.0.0.1:9", max_retries=0, timeout_seconds=2)
    health = await index.health()
    await index.close()
    assert not health.ok


async def test_search_parses_disjunctive_facets_range_buckets_sort_values_and_distances(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex, vehicle: VehicleFactory
) -> None:
    near, far, nowhere = vehicle(3, lat=30.3, lon=-97.7), vehicle(1, lat=32.78, lon=-96.8), vehicle(2, lat=None)
    canned = {
        "took": 3,
        "timed_out": False,
        "hits": {
            "total": {"value": 3, "relation": "eq"},
            "max_score": None,
            "hits": [
                {
                    "_index": CURRENT,
                    "_id": "3",
                    "_score": None,
                    "_source": near.model_dump(mode="json"),
                    "sort": [4.93, "3"],
                },
                {
                    "_index": CURRENT,
                    "_id": "1",
                    "_score": None,
                    "_source": far.model_dump(mode="json"),
                    "sort": [292.9, "1"],
                },
                {
                    "_index": CURRENT,
                    "_id": "2",
                    "_score": None,
                    "_source": nowhere.model_dump(mode="json"),
                    "sort": ["Infinity", "2"],
                },
            ],
        },
        "aggregations": {
            "terms:make": {
                "doc_count": 3,
                "values": {
                    "doc_count_error_upper_bound": 0,
                    "sum_other_doc_count": 0,
                    "buckets": [{"key": "Toyota", "doc_count": 3}, {"key": "Honda", "doc_count": 2}],
                },
            },
            "terms:state": {"buckets": [{"key": "TX", "doc_count": 3}]},
            "ranges:asking_price": {
                "doc_count": 4,
                "values": {
                    "buckets": [
                        {"key": "0", "to": 10000.0, "doc_count": 0},
                        {"key": "1", "from": 10000.0, "to": 20000.0, "doc_count": 3},
                        {"key": "2", "from": 20000.0, "doc_count": 1},
                    ]
                },
            },
        },
    }
    fake_es.respond = lambda request: (200, canned)
    query = SearchQuery(
        filters={"make": ["Toyota"]},
        ranges={"asking_price": (None, 25_000)},
        geo=GeoFilter(30.27, -97.74, radius_km=500),
        facets=["make", "state"],
        range_facets={"asking_price": [10_000, 20_000]},
        sort=[("_distance", "asc")],
        search_after=[1.5, "7"],
        limit=3,
    )

    result = await es_index.search(query)

    assert fake_es.requests[0].json() == search_body(query)
    assert result.total == 3
    assert [hit.id for hit in result.hits] == ["3", "1", "2"]
    assert result.facets == {"make": {"Toyota": 3, "Honda": 2}, "state": {"TX": 3}}
    assert result.range_facets == {
        "asking_price": [RangeBucket(None, 10_000, 0), RangeBucket(10_000, 20_000, 3), RangeBucket(20_000, None, 1)]
    }
    assert result.sort_values == [[4.93, "3"], [292.9, "1"], ["Infinity", "2"]]
    assert result.distances_km == [
        pytest.approx(haversine_km(30.27, -97.74, 30.3, -97.7)),
        pytest.approx(haversine_km(30.27, -97.74, 32.78, -96.8)),
        None,
    ]


async def test_a_facet_only_search_returns_counts_without_hits(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex
) -> None:
    canned = {
        "hits": {"total": {"value": 41, "relation": "eq"}, "max_score": None, "hits": []},
        "aggregations": {"terms:year": {"buckets": [{"key": 2020, "doc_count": 41}]}},
    }
    fake_es.respond = lambda request: (200, canned)

    result = await es_index.search(SearchQuery(facets=["year"], limit=0))

    assert fake_es.requests[0].json()["size"] == 0
    assert (result.total, result.hits, result.facets, result.sort_values) == (41, [], {"year": {"2020": 41}}, [])


async def test_an_infinite_sort_value_goes_back_as_a_string(
    fake_es: FakeElasticsearch, es_index: ElasticsearchIndex
) -> None:
    fake_es.respond = lambda request: (200, {"hits": {"total": {"value": 0}, "hits": []}})

    await es_index.search(
        SearchQuery(geo=GeoFilter(0, 0), sort=[("_distance", "asc")], search_after=[float("inf"), "9"])
    )

    assert fake_es.requests[0].json()["search_after"] == ["Infinity", "9"]
