"""The `SearchIndex` contract, run on every backend: tantivy always, Elasticsearch when ELASTICSEARCH_URL is set."""

from __future__ import annotations

import pytest

from connectors.search.port import SearchIndex, SearchQuery
from tests.connectors.search.conftest import Backend, VehicleFactory


async def test_get_many_sees_unflushed_writes_on_the_writer(search_index: SearchIndex, vehicle: VehicleFactory) -> None:
    documents = [vehicle(n, year=2010 + n) for n in range(5)]
    await search_index.upsert(documents)

    assert await search_index.get("3") == documents[3]
    assert await search_index.get_many(["0", "4", "missing", "4"]) == {"0": documents[0], "4": documents[4]}

    await search_index.flush()
    assert await search_index.get_many([d.id for d in documents]) == {d.id: d for d in documents}
    assert await search_index.get("missing") is None


async def test_get_many_mixes_flushed_and_pending_documents(search_index: SearchIndex, vehicle: VehicleFactory) -> None:
    await search_index.upsert([vehicle(1), vehicle(2)])
    await search_index.flush()
    newer = vehicle(2, mileage=50_000, version=2)
    await search_index.upsert([newer, vehicle(3)])

    found = await search_index.get_many(["1", "2", "3"])

    assert set(found) == {"1", "2", "3"}
    assert found["2"] == newer


async def test_upsert_replaces_the_whole_document(search_index: SearchIndex, vehicle: VehicleFactory) -> None:
    await search_index.upsert([vehicle(1, make="Toyota", trim="LE")])
    await search_index.flush()
    replacement = vehicle(1, make="Honda", trim=None, version=2)
    await search_index.upsert([replacement])
    await search_index.flush()

    assert await search_index.get("1") == replacement
    result = await search_index.search(SearchQuery(facets=["make"]))
    assert result.total == 1
    assert result.facets == {"make": {"Honda": 1}}


async def test_tombstones_are_gettable_but_never_searched(search_index: SearchIndex, vehicle: VehicleFactory) -> None:
    tombstone = vehicle(1, deleted=True, version=3)
    sold = vehicle(2, status="sold")
    await search_index.upsert([tombstone, sold, vehicle(3)])
    await search_index.flush()

    assert await search_index.get("1") == tombstone
    assert await search_index.get("2") == sold
    result = await search_index.search(SearchQuery(facets=["status"]))
    assert [hit.id for hit in result.hits] == ["3"]
    assert result.total == 1
    assert result.facets == {"status": {"active": 1}}


async def test_delete_removes_documents_at_once_for_the_writer(
    search_index: SearchIndex, vehicle: VehicleFactory
) -> None:
    await search_index.upsert([vehicle(1), vehicle(2)])
    await search_index.flush()

    await search_index.delete(["1", "never-existed"])

    assert await search_index.get("1") is None
    await search_index.flush()
    assert await search_index.get_many(["1", "2"]) == {"2": vehicle(2)}
    assert (await search_index.search(SearchQuery())).total == 1


async def test_update_partial_sets_fields_and_version(search_index: SearchIndex, vehicle: VehicleFactory) -> None:
    await search_index.upsert([vehicle(1, version=4)])
    await search_index.update_partial("1", {"currentBid": 12_000.0, "auction_status": "open"}, version=5)
    await search_index.flush()

    updated = await search_index.get("1")
    assert updated is not None
    assert (updated.currentBid, updated.auction_status, updated.version) == (12_000.0, "open", 5)
    result = await search_index.search(SearchQuery(ranges={"currentBid": (11_000, None)}))
    assert [hit.id for hit in result.hits] == ["1"]
    with pytest.raises(KeyError):
        await search_index.update_partial("missing", {"currentBid": 1.0}, version=1)
    with pytest.raises(ValueError, match="unknown"):
        await search_index.update_partial("1", {"no_such_field": 1}, version=6)


async def test_tombstone_older_than_marks_only_older_live_documents(
    search_index: SearchIndex, vehicle: VehicleFactory
) -> None:
    await search_index.upsert(
        [
            vehicle(1, positions={"pg.vehicles": 10}, version=2),
            vehicle(2, positions={"pg.vehicles": 99, "pg.dealers": 5}),
            vehicle(3, positions={"pg.vehicles": 100}),
            vehicle(4, positions={"pg.dealers": 1}),
            vehicle(5, positions={"pg.vehicles": 1}, deleted=True),
        ]
    )

    marked = await search_index.tombstone_older_than("pg.vehicles", 100)
    await search_index.flush()

    assert marked == 2
    found = await search_index.get_many(["1", "2", "3", "4", "5"])
    assert {n for n, document in found.items() if document.deleted} == {"1", "2", "5"}
    assert found["1"].version == 3
    assert found["1"].positions == {"pg.vehicles": 100}
    assert found["2"].positions == {"pg.vehicles": 100, "pg.dealers": 5}
    assert found["5"].version == 1
    assert sorted(hit.id for hit in (await search_index.search(SearchQuery())).hits) == ["3", "4"]


@pytest.fixture
async def catalog(search_index: SearchIndex, vehicle: VehicleFactory) -> SearchIndex:
    await search_index.upsert(
        [
            vehicle(1, make="Toyota", model="Camry", year=2018, asking_price=15_000.0, mileage=60_000, state="TX"),
            vehicle(2, make="Toyota", model="Corolla", year=2020, asking_price=17_000.0, mileage=30_000, state="CA"),
            vehicle(3, make="Honda", model="Civic", year=2020, asking_price=16_000.0, mileage=None, state="TX"),
            vehicle(4, make="Honda", model="Accord", year=2022, asking_price=24_000.0, mileage=10_000, state="WA"),
            vehicle(5, make="Ford", model="F-150", year=2021, asking_price=None, mileage=20_000, state="TX"),
            vehicle(
                6,
                make="Citroën",
                model="C4",
                year=2019,
                asking_price=12_000.0,
                mileage=45_000,
                state="NY",
                status="in_auction",
                description="Panoramic roof, Toyota-sourced hybrid parts",
            ),
            vehicle(7, make="Toyota", model="Camry", year=2021, status="draft"),
        ]
    )
    await search_index.flush()
    return search_index


async def test_search_text_matches_every_word_across_fields(catalog: SearchIndex) -> None:
    async def ids(text: str) -> set[str]:
        return {hit.id for hit in (await catalog.search(SearchQuery(text=text))).hits}

    assert await ids("toyota") == {"1", "2", "6"}
    assert await ids("TOYOTA camry") == {"1"}
    assert await ids("citroen") == {"6"}
    assert await ids("f-150") == {"5"}
    assert await ids("panoramic roof") == {"6"}
    assert await ids("") == {"1", "2", "3", "4", "5", "6"}
    assert await ids("tesla") == set()


async def test_search_relevance_prefers_make_over_description(catalog: SearchIndex) -> None:
    result = await catalog.search(SearchQuery(text="toyota", limit=1))
    assert result.hits[0].id in {"1", "2"}
    assert result.total == 3


async def test_search_filters_or_within_and_across_fields(catalog: SearchIndex) -> None:
    result = await catalog.search(SearchQuery(filters={"make": ["Toyota", "Honda"], "state": ["TX"]}))
    assert {hit.id for hit in result.hits} == {"1", "3"}
    assert result.total == 2

    by_year = await catalog.search(SearchQuery(filters={"year": [2020, 2022], "dealer_id": [7]}))
    assert {hit.id for hit in by_year.hits} == {"2", "3", "4"}
    empty = await catalog.search(SearchQuery(filters={"make": ["toyota"]}))
    assert empty.total == 0


async def test_search_ranges_are_inclusive_and_open_ended(catalog: SearchIndex) -> None:
    result = await catalog.search(SearchQuery(ranges={"asking_price": (15_000, 17_000)}))
    assert {hit.id for hit in result.hits} == {"1", "2", "3"}
    newer = await catalog.search(SearchQuery(ranges={"year": (2020.5, None), "mileage": (None, 20_000)}))
    assert {hit.id for hit in newer.hits} == {"4", "5"}


async def test_search_facets_count_matching_visible_documents(catalog: SearchIndex) -> None:
    result = await catalog.search(
        SearchQuery(filters={"state": ["TX", "CA", "WA"]}, facets=["make", "year", "state"], limit=0)
    )
    assert result.total == 5
    assert result.hits == []
    assert result.facets == {
        "make": {"Toyota": 2, "Honda": 2, "Ford": 1},
        "year": {"2020": 2, "2018": 1, "2021": 1, "2022": 1},
        "state": {"TX": 3, "CA": 1, "WA": 1},
    }


async def test_search_sorts_with_missing_values_last(catalog: SearchIndex) -> None:
    ascending = await catalog.search(SearchQuery(sort=[("asking_price", "asc")]))
    assert [hit.id for hit in ascending.hits] == ["6", "1", "3", "2", "4", "5"]
    descending = await catalog.search(SearchQuery(sort=[("mileage", "desc")]))
    assert [hit.id for hit in descending.hits] == ["1", "6", "2", "5", "4", "3"]


async def test_search_sorts_on_several_fields(catalog: SearchIndex) -> None:
    result = await catalog.search(SearchQuery(sort=[("year", "desc"), ("asking_price", "asc")], limit=4, offset=1))
    assert [hit.id for hit in result.hits] == ["5", "3", "2", "6"]
    assert result.total == 6


async def test_search_paginates_with_limit_and_offset(catalog: SearchIndex) -> None:
    pages = [
        await catalog.search(SearchQuery(sort=[("asking_price", "desc")], limit=2, offset=offset))
        for offset in (0, 2, 4, 6)
    ]
    assert [[hit.id for hit in page.hits] for page in pages] == [["4", "2"], ["3", "1"], ["6", "5"], []]
    assert {page.total for page in pages} == {6}


async def test_search_refuses_what_it_cannot_answer(catalog: SearchIndex) -> None:
    with pytest.raises(ValueError, match="vin"):
        await catalog.search(SearchQuery(filters={"vin": ["X"]}))
    with pytest.raises(ValueError, match="make"):
        await catalog.search(SearchQuery(sort=[("make", "asc")]))
    with pytest.raises(ValueError, match="alone"):
        await catalog.search(SearchQuery(sort=[("_score", "desc"), ("year", "asc")]))
    with pytest.raises(ValueError, match="10000"):
        await catalog.search(SearchQuery(limit=100, offset=9_950))


async def test_health_counts_stored_documents(catalog: SearchIndex) -> None:
    health = await catalog.health()
    assert health.ok
    assert health.documents == 7
    assert health.engine in {"tantivy", "elasticsearch"}


async def test_a_reader_sees_flushed_writes_after_refresh(backend: Backend, vehicle: VehicleFactory) -> None:
    writer = await backend.open(writer=True)
    reader = await backend.open(writer=False)
    await writer.upsert([vehicle(1)])
    assert (await reader.search(SearchQuery())).total == 0

    await writer.flush()
    await reader.refresh_reader()

    assert (await reader.search(SearchQuery())).total == 1
    assert await reader.get("1") == vehicle(1)
