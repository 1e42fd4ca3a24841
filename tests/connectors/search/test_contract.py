"""The `SearchIndex` contract, run on every backend: tantivy always, Elasticsearch when ELASTICSEARCH_URL is set."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.search.port import DISTANCE, GeoFilter, RangeBucket, SearchIndex, SearchQuery, SortOrder
from schemas.geo import haversine_km
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
    around = GeoFilter(30.27, -97.74, radius_km=10)
    narrowed = [
        SearchQuery(text="toyota camry", facets=["status"]),
        SearchQuery(text="toyota camry", facets=["status"], sort=[("year", "desc")]),
        SearchQuery(filters={"make": ["Toyota"]}, ranges={"year": (2000, None)}, facets=["status"]),
        SearchQuery(geo=around, facets=["status"], sort=[(DISTANCE, "asc")]),
    ]
    for query in narrowed:  # words, filters, ranges and radius match searchable documents only
        narrow = await search_index.search(query)
        assert [hit.id for hit in narrow.hits] == ["3"], query
        assert narrow.facets == {"status": {"active": 1}}, query


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
        # Disjunctive: the state counts ignore the state filter (NY is the in-auction Citroën).
        "state": {"TX": 3, "CA": 1, "WA": 1, "NY": 1},
    }


async def test_search_sorts_with_missing_values_last(catalog: SearchIndex) -> None:
    ascending = await catalog.search(SearchQuery(sort=[("asking_price", "asc")]))
    assert [hit.id for hit in ascending.hits] == ["6", "1", "3", "2", "4", "5"]
    descending = await catalog.search(SearchQuery(sort=[("mileage", "desc")]))
    assert [hit.id for hit in descending.hits] == ["1", "6", "2", "5", "4", "3"]


async def test_search_sort_ties_run_by_id(catalog: SearchIndex) -> None:
    result = await catalog.search(SearchQuery(sort=[("year", "desc")], limit=4, offset=1))
    assert [hit.id for hit in result.hits] == ["5", "2", "3", "6"]
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
    with pytest.raises(ValueError, match="sort"):
        await catalog.search(SearchQuery(sort=[("_score", "desc"), ("year", "asc")]))
    with pytest.raises(ValueError, match="sort"):
        await catalog.search(SearchQuery(sort=[("year", "desc"), ("asking_price", "asc")]))
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


# -- the extended query model: typos, prefixes, compact forms, geo, disjunctive and range facets, cursors ----

AUSTIN = GeoFilter(lat=30.27, lon=-97.74)
LOCATIONS = {
    "1": (30.27, -97.74),  # Austin
    "2": (32.78, -96.80),  # Dallas, 293 km
    "3": (29.76, -95.37),  # Houston, 235 km
    "4": (39.74, -104.99),  # Denver, 1242 km
    "6": (47.61, -122.33),  # Seattle, 2848 km
    "7": (30.30, -97.70),  # Austin, 5 km
    "8": (29.42, -98.49),  # San Antonio, 119 km
}


@pytest.fixture
async def showroom(search_index: SearchIndex, vehicle: VehicleFactory) -> SearchIndex:
    """Single-digit ids, so the id tiebreak orders alike as text and as numbers."""

    def car(n: int, make: str, model: str, trim: str | None, year: int, price: float | None, **fields: Any) -> Any:
        lat, lon = LOCATIONS.get(str(n), (None, None))
        return vehicle(n, make=make, model=model, trim=trim, year=year, asking_price=price, lat=lat, lon=lon, **fields)

    await search_index.upsert(
        [
            car(1, "Toyota", "Camry", "LE", 2019, 18_500.0),
            car(2, "Toyota", "Corolla", "L", 2020, 20_000.0),
            car(3, "Honda", "CR-V", "EX", 2021, 26_000.0, auction_ends_at="2030-01-02T10:00:00Z"),
            car(4, "Ford", "F-150", "XLT", 2021, 35_000.0, state="CO", auction_ends_at="2030-01-01T10:00:00Z"),
            car(5, "Suzuki", "Carry", None, 2018, 9_000.0, state="CA"),
            car(6, "Honda", "Civic", "Sport", 2020, 16_000.0, state="WA", auction_ends_at="2030-01-02T10:00:00Z"),
            car(7, "Toyota", "Camry", "SE", 2022, 24_000.0),
            car(8, "Honda", "Accord", "EX-L", 2019, None),
            car(9, "Toyota", "Camry", "XSE", 2023, 30_000.0, status="sold"),
        ]
    )
    await search_index.flush()
    return search_index


async def found(index: SearchIndex, text: str, *, prefix: bool = True) -> set[str]:
    return {hit.id for hit in (await index.search(SearchQuery(text=text, prefix=prefix))).hits}


async def test_text_words_of_five_letters_match_with_one_typo(showroom: SearchIndex) -> None:
    assert await found(showroom, "toyta") == {"1", "2", "7"}
    assert await found(showroom, "camyr toyota") == {"1", "7"}  # a transposition is one edit
    assert await found(showroom, "hnoda", prefix=False) == {"3", "6", "8"}
    assert await found(showroom, "cmry", prefix=False) == set()  # four letters: exact only
    assert await found(showroom, "toyotaa corola") == {"2"}
    assert await found(showroom, "camrys corolla") == set()  # every word must still match


async def test_the_last_word_matches_as_a_prefix(showroom: SearchIndex) -> None:
    assert await found(showroom, "cam") == {"1", "7"}
    assert await found(showroom, "toyota c") == {"1", "2", "7"}
    assert await found(showroom, "honda ci") == {"6"}
    assert await found(showroom, "cam", prefix=False) == set()
    assert await found(showroom, "cam toyota") == set()  # only the last word is a prefix


async def test_compact_forms_find_hyphenated_models(showroom: SearchIndex) -> None:
    for text in ("f150", "F-150", "f 150", "ford F150"):
        assert await found(showroom, text, prefix=False) == {"4"}, text
    assert await found(showroom, "crv", prefix=False) == {"3"}
    assert await found(showroom, "honda cr-v", prefix=False) == {"3"}
    assert await found(showroom, "f15") == {"4"}


async def test_exact_matches_rank_above_typo_matches(showroom: SearchIndex) -> None:
    result = await showroom.search(SearchQuery(text="camry"))

    ids = [hit.id for hit in result.hits]
    # Exact scores may differ a little between engines (BM25 or constant); the Suzuki Carry, a typo away, is last.
    assert (set(ids[:2]), ids[2:]) == ({"1", "7"}, ["5"])
    assert result.total == 3


async def test_facets_ignore_their_own_field_filter_only(showroom: SearchIndex) -> None:
    toyotas = await showroom.search(SearchQuery(filters={"make": ["Toyota"]}, facets=["make", "state"]))
    assert {hit.id for hit in toyotas.hits} == {"1", "2", "7"}
    assert toyotas.total == 3
    assert toyotas.facets == {"make": {"Toyota": 3, "Honda": 3, "Ford": 1, "Suzuki": 1}, "state": {"TX": 3}}

    both = await showroom.search(
        SearchQuery(filters={"make": ["Toyota", "Honda"], "state": ["TX"]}, facets=["make", "state"], limit=0)
    )
    assert both.total == 5
    assert both.facets == {"make": {"Toyota": 3, "Honda": 2}, "state": {"TX": 5, "WA": 1}}


async def test_unfaceted_filters_and_text_narrow_every_facet(showroom: SearchIndex) -> None:
    result = await showroom.search(SearchQuery(text="honda", filters={"state": ["TX"]}, facets=["make", "year"]))

    assert result.total == 2
    assert result.facets == {"make": {"Honda": 2}, "year": {"2019": 1, "2021": 1}}


async def test_range_facets_count_half_open_buckets_disjunctively(showroom: SearchIndex) -> None:
    result = await showroom.search(
        SearchQuery(
            ranges={"asking_price": (None, 20_000)},
            facets=["make"],
            range_facets={"asking_price": [10_000, 20_000], "year": [2020, 2021]},
        )
    )

    assert {hit.id for hit in result.hits} == {"1", "2", "5", "6"}
    assert result.facets == {"make": {"Toyota": 2, "Suzuki": 1, "Honda": 1}}
    assert result.range_facets == {
        # Ignores its own range; 20,000 opens the upper bucket; the Accord has no price.
        "asking_price": [
            RangeBucket(None, 10_000, 1),
            RangeBucket(10_000, 20_000, 2),
            RangeBucket(20_000, None, 4),
        ],
        # Obeys the price range: 2018, 2019 / 2020, 2020 / none.
        "year": [RangeBucket(None, 2020, 2), RangeBucket(2020, 2021, 2), RangeBucket(2021, None, 0)],
    }


async def test_a_radius_keeps_nearby_vehicles_and_distance_sorts_nearest_first(showroom: SearchIndex) -> None:
    within = await showroom.search(
        SearchQuery(geo=GeoFilter(AUSTIN.lat, AUSTIN.lon, radius_km=250), sort=[("_distance", "asc")])
    )
    assert [hit.id for hit in within.hits] == ["1", "7", "8", "3"]
    assert within.total == 4

    everywhere = await showroom.search(SearchQuery(geo=AUSTIN, sort=[("_distance", "asc")]))
    assert [hit.id for hit in everywhere.hits] == ["1", "7", "8", "3", "2", "4", "6", "5"]
    expected = [
        None if hit.lat is None or hit.lon is None else haversine_km(AUSTIN.lat, AUSTIN.lon, hit.lat, hit.lon)
        for hit in everywhere.hits
    ]
    assert everywhere.distances_km == [None if km is None else pytest.approx(km, abs=0.01) for km in expected]
    assert everywhere.distances_km[-1] is None


async def test_distances_come_with_any_sort_when_the_query_has_a_location(showroom: SearchIndex) -> None:
    result = await showroom.search(SearchQuery(geo=AUSTIN, sort=[("year", "desc")], limit=2))

    assert [hit.id for hit in result.hits] == ["7", "3"]
    assert result.distances_km == [pytest.approx(5.09, abs=0.01), pytest.approx(235.13, abs=0.01)]
    assert (await showroom.search(SearchQuery(limit=2))).distances_km == []


async def test_auction_end_sorts_with_ties_by_id_and_missing_last(showroom: SearchIndex) -> None:
    ascending = await showroom.search(SearchQuery(sort=[("auction_ends_at", "asc")]))
    assert [hit.id for hit in ascending.hits] == ["4", "3", "6", "1", "2", "5", "7", "8"]
    descending = await showroom.search(SearchQuery(sort=[("auction_ends_at", "desc")]))
    assert [hit.id for hit in descending.hits] == ["3", "6", "4", "1", "2", "5", "7", "8"]


async def test_relevance_ties_run_by_id(showroom: SearchIndex) -> None:
    result = await showroom.search(SearchQuery(filters={"state": ["TX"]}))
    assert [hit.id for hit in result.hits] == ["1", "2", "3", "7", "8"]
    assert [values[-1] for values in result.sort_values] == ["1", "2", "3", "7", "8"]


@pytest.mark.parametrize(
    "sort",
    [
        [("year", "desc")],
        [("asking_price", "asc")],
        [("auction_ends_at", "asc")],
        [("_distance", "asc")],
    ],
)
async def test_search_after_pages_through_the_same_order_as_offsets(
    showroom: SearchIndex, sort: list[tuple[str, SortOrder]]
) -> None:
    everything = await showroom.search(SearchQuery(geo=AUSTIN, sort=sort, limit=100))
    assert len(everything.sort_values) == len(everything.hits) == 8
    assert all(len(values) == len(sort) + 1 for values in everything.sort_values)

    pages: list[list[str]] = []
    cursor: list[Any] | None = None
    while True:
        page = await showroom.search(SearchQuery(geo=AUSTIN, sort=sort, limit=3, search_after=cursor))
        assert page.total == 8
        if not page.hits:
            break
        pages.append([hit.id for hit in page.hits])
        cursor = page.sort_values[-1]

    assert [len(page) for page in pages] == [3, 3, 2]
    assert [n for page in pages for n in page] == [hit.id for hit in everything.hits]


async def test_search_refuses_what_the_extended_model_cannot_answer(showroom: SearchIndex) -> None:
    with pytest.raises(ValueError, match="location"):
        await showroom.search(SearchQuery(sort=[("_distance", "asc")]))
    with pytest.raises(ValueError, match="search_after"):
        await showroom.search(SearchQuery(sort=[("year", "asc")], search_after=[2020]))
    with pytest.raises(ValueError, match="ascending"):
        await showroom.search(SearchQuery(range_facets={"year": [2021, 2020]}))


async def test_live_ids_by_dealer_and_vin_count_every_live_flushed_document(
    search_index: SearchIndex, vehicle: VehicleFactory
) -> None:
    await search_index.upsert(
        [
            vehicle(1, dealer_id=7, vin=" 1hgcm82633a004352 "),
            vehicle(2, dealer_id=7, status="sold", vin="1HGCM82633A004352"),  # not searchable, still listed
            vehicle(10, dealer_id=7, vin=None),
            vehicle(3, dealer_id=7, deleted=True, vin="1HGCM82633A004352"),  # a tombstone: gone
            vehicle(4, dealer_id=8, vin="JH4KA7561PC008269"),
        ]
    )
    await search_index.flush()

    assert await search_index.live_ids_by("dealer_id", ["7", "9", "7"]) == {"7": ["1", "2", "10"]}
    assert await search_index.live_ids_by("vin", ["1HGCM82633A004352", "JH4KA7561PC008269", "NONE"]) == {
        "1HGCM82633A004352": ["1", "2"],
        "JH4KA7561PC008269": ["4"],
    }
    assert await search_index.live_ids_by("vin", []) == {}
    await search_index.upsert([vehicle(4, dealer_id=7, vin="JH4KA7561PC008269", version=2)])  # moved to dealer 7
    await search_index.flush()
    assert await search_index.live_ids_by("dealer_id", ["7", "8"]) == {"7": ["1", "2", "4", "10"]}
    with pytest.raises(ValueError, match="cannot look documents up by 'make'"):
        await search_index.live_ids_by("make", ["Toyota"])
