"""The query model on the embedded engine: text a buyer types, disjunctive facets, radius, ordering, paging."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.search import tantivy_index
from connectors.search.fields import STANDARD_RANGE_EDGES, id_rank
from connectors.search.port import DISTANCE, GeoFilter, RangeBucket, SearchQuery, SearchResult, SortOrder
from connectors.search.tantivy_index import FACET_THREAD_COUNT, FACET_THREADS, SEARCH_THREADS, TantivyIndex
from schemas.geo import haversine_km
from schemas.vehicle import VehicleDocument
from tests.connectors.search.conftest import make_vehicle

CARS = [
    ("Toyota", "Camry", "LE"),
    ("Toyota", "Corolla", "SE"),
    ("Ford", "F-150", "XLT"),
    ("Ford", "Mustang", "GT"),
    ("Honda", "CR-V", "EX"),
    ("Honda", "Civic", "Sport"),
    ("Chevrolet", "Camaro", "SS"),
]


@pytest.fixture
async def showroom(index_dir: Path) -> AsyncIterator[TantivyIndex]:
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert(
        [
            make_vehicle(n, make=make, model=model, trim=trim, description=f"{make} {model} for sale")
            for n, (make, model, trim) in enumerate(CARS)
        ]
    )
    await index.flush()
    yield index
    await index.close()


async def models_found(index: TantivyIndex, text: str, **options: Any) -> list[str]:
    result = await index.search(SearchQuery(text=text, **options))
    return [f"{hit.make} {hit.model}" for hit in result.hits]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("camry", "Toyota Camry"),
        ("toyta camry", "Toyota Camry"),  # one typo in a word of five letters or more
        ("Toyota Camri", "Toyota Camry"),
        ("f-150", "Ford F-150"),
        ("f150", "Ford F-150"),
        ("F 150", "Ford F-150"),
        ("crv", "Honda CR-V"),
        ("honda cr-v", "Honda CR-V"),
        ("mustang gt", "Ford Mustang"),
    ],
)
async def test_what_a_buyer_types_finds_the_car(showroom: TantivyIndex, text: str, expected: str) -> None:
    assert (await models_found(showroom, text, prefix=False))[0] == expected


async def test_the_last_word_matches_as_a_prefix_for_type_ahead(showroom: TantivyIndex) -> None:
    assert await models_found(showroom, "toyota cam") == ["Toyota Camry"]
    assert set(await models_found(showroom, "cam")) == {"Toyota Camry", "Chevrolet Camaro"}
    assert await models_found(showroom, "cam", prefix=False) == []


async def test_short_words_need_no_typo_and_exact_beats_fuzzy(showroom: TantivyIndex) -> None:
    assert await models_found(showroom, "civc", prefix=False) == []  # four letters: no typo allowed
    # "camaro" is exact for the Camaro and one edit away from nothing else; "camry" one edit from "camr?".
    assert (await models_found(showroom, "camaro", prefix=False))[0] == "Chevrolet Camaro"


async def test_every_word_must_match(showroom: TantivyIndex) -> None:
    assert await models_found(showroom, "toyota mustang", prefix=False) == []


# -- facets, ranges and filters against brute force ----------------------------------------------------

MAKES = ["Toyota", "Honda", "Ford"]
STATES = ["TX", "CA", "WA"]
PRICE_EDGES = [10_000.0, 20_000.0]
rows = st.lists(
    st.tuples(
        st.sampled_from(MAKES),
        st.sampled_from(STATES),
        st.integers(2015, 2020),
        st.one_of(st.none(), st.integers(5, 30).map(lambda k: k * 1000.0)),
        st.sampled_from(["active", "in_auction", "sold"]),
        st.booleans(),
    ),
    max_size=40,
)


async def search_new_index(
    path: Path, documents: Sequence[VehicleDocument], query: SearchQuery, *, times: int = 1
) -> list[SearchResult]:
    """`query` run `times` over a new index of `documents`."""
    index = TantivyIndex(path, writer=True)
    await index.upsert(documents)
    await index.flush()
    results = [await index.search(query) for _ in range(times)]
    await index.close()
    return results


def in_range(value: float | None, low: float | None, high: float | None) -> bool:
    if low is None and high is None:
        return True
    return value is not None and (low is None or value >= low) and (high is None or value <= high)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=rows,
    makes=st.lists(st.sampled_from(MAKES), max_size=2, unique=True),
    states=st.lists(st.sampled_from(STATES), max_size=2, unique=True),
    price=st.tuples(st.none() | st.integers(5, 30), st.none() | st.integers(5, 30)),
)
def test_facet_counts_are_disjunctive_and_equal_brute_force(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[str, str, int, float | None, str, bool]],
    makes: list[str],
    states: list[str],
    price: tuple[int | None, int | None],
) -> None:
    documents = [
        make_vehicle(n, make=make, state=state, year=year, asking_price=amount, status=status, deleted=deleted)
        for n, (make, state, year, amount, status, deleted) in enumerate(rows)
    ]
    low, high = (None if bound is None else bound * 1000.0 for bound in price)
    query = SearchQuery(
        filters={"make": makes, "state": states},
        ranges={"asking_price": (low, high)},
        facets=["make", "state", "year"],
        range_facets={"asking_price": PRICE_EDGES, "year": [2017, 2019]},
        limit=100,
    )

    result, again = asyncio.run(search_new_index(tmp_path_factory.mktemp("prop"), documents, query, times=2))
    assert again.facets == result.facets  # served from the aggregation cache: the same answer
    assert again.range_facets == result.range_facets

    def matches(document: VehicleDocument, *, ignore: str = "") -> bool:
        return (
            document.searchable
            and (ignore == "make" or not makes or document.make in makes)
            and (ignore == "state" or not states or document.state in states)
            and (ignore == "asking_price" or in_range(document.asking_price, low, high))
        )

    expected = [document for document in documents if matches(document)]
    assert result.total == len(expected)
    assert {hit.id for hit in result.hits} == {document.id for document in expected}
    for name in ("make", "state", "year"):
        counted = [d for d in documents if matches(d, ignore=name)]
        assert result.facets[name] == dict(Counter(str(getattr(d, name)) for d in counted)), name
    priced = [d.asking_price for d in documents if matches(d, ignore="asking_price")]
    assert result.range_facets["asking_price"] == [
        RangeBucket(None, 10_000.0, sum(1 for p in priced if p is not None and p < 10_000)),
        RangeBucket(10_000.0, 20_000.0, sum(1 for p in priced if p is not None and 10_000 <= p < 20_000)),
        RangeBucket(20_000.0, None, sum(1 for p in priced if p is not None and p >= 20_000)),
    ]
    years = [d.year for d in expected if d.year is not None]
    assert [bucket.count for bucket in result.range_facets["year"]] == [
        sum(1 for y in years if y < 2017),
        sum(1 for y in years if 2017 <= y < 2019),
        sum(1 for y in years if y >= 2019),
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            st.none() | st.sampled_from(["live", "upcoming", "closed"]),
            st.none() | st.integers(1, 4),
            st.none() | st.integers(2, 5).map(float),
            st.none() | st.integers(0, 200).map(lambda k: k * 1000),
            st.booleans(),
        ),
        max_size=30,
    ),
    statuses=st.lists(st.sampled_from(["live", "upcoming", "closed"]), max_size=2, unique=True),
)
def test_facets_count_neither_hidden_vehicles_nor_missing_values(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[str | None, int | None, float | None, int | None, bool]],
    statuses: list[str],
) -> None:
    """Every document has the facet columns (hidden ones, and ones without the value, hold a no-value marker):
    the counts are those of the visible documents that have a value, as brute force counts them."""
    documents = [
        make_vehicle(n, auction_status=status, dealer_id=dealer, condition_grade=grade, mileage=miles, deleted=gone)
        for n, (status, dealer, grade, miles, gone) in enumerate(rows)
    ]
    query = SearchQuery(
        filters={"auction_status": statuses},
        facets=["auction_status", "dealer_id", "condition_grade"],
        range_facets={"mileage": STANDARD_RANGE_EDGES["mileage"]},
    )
    [result] = asyncio.run(search_new_index(tmp_path_factory.mktemp("missing"), documents, query))

    visible = [document for document in documents if document.searchable]
    chosen = [document for document in visible if not statuses or document.auction_status in statuses]
    assert result.total == len(chosen)
    assert result.facets["auction_status"] == dict(Counter(d.auction_status for d in visible if d.auction_status))
    assert result.facets["dealer_id"] == dict(Counter(str(d.dealer_id) for d in chosen if d.dealer_id is not None))
    grades = Counter(f"{d.condition_grade:g}" for d in chosen if d.condition_grade is not None)
    assert result.facets["condition_grade"] == dict(grades)
    edges = [None, *STANDARD_RANGE_EDGES["mileage"], None]
    assert [bucket.count for bucket in result.range_facets["mileage"]] == [
        sum(1 for d in chosen if d.mileage is not None and in_range(d.mileage, low, high - 1 if high else None))
        for low, high in zip(edges, edges[1:], strict=False)
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(st.integers(2015, 2020), st.none() | st.integers(500, 3000).map(lambda cents: cents * 10.0)),
        max_size=30,
    ),
    years=st.tuples(st.none() | st.integers(2015, 2020), st.none() | st.integers(2015, 2020)),
    prices=st.tuples(st.none() | st.integers(50, 300), st.none() | st.integers(50, 300)),
    fraction=st.sampled_from([0.0, 0.5, 0.99]),
)
def test_the_search_facets_counted_within_a_range_field_pass_equal_brute_force(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, float | None]],
    years: tuple[int | None, int | None],
    prices: tuple[int | None, int | None],
    fraction: float,
) -> None:
    """The search's own facets are counted inside a range bucket of a range-constrained field's pass: bounds
    included at both ends, on integer and float fields, a fractional bound on an integer field."""
    documents = [
        make_vehicle(n, year=year, asking_price=price, make=MAKES[n % 3]) for n, (year, price) in enumerate(rows)
    ]
    year_low = None if years[0] is None else years[0] - fraction
    year_high = None if years[1] is None else years[1] + fraction
    price_low, price_high = (None if bound is None else bound * 100.0 for bound in prices)
    query = SearchQuery(
        ranges={"year": (year_low, year_high), "asking_price": (price_low, price_high)},
        facets=["make"],
        range_facets={"year": [2017, 2019], "asking_price": STANDARD_RANGE_EDGES["asking_price"]},
    )
    [result] = asyncio.run(search_new_index(tmp_path_factory.mktemp("fold"), documents, query))
    chosen = [
        d
        for d in documents
        if in_range(d.year, year_low, year_high) and in_range(d.asking_price, price_low, price_high)
    ]
    assert result.total == len(chosen)
    assert result.facets["make"] == dict(Counter(d.make for d in chosen))
    priced = [d for d in documents if in_range(d.year, year_low, year_high)]
    assert sum(bucket.count for bucket in result.range_facets["asking_price"]) == sum(
        1 for d in priced if d.asking_price is not None
    )
    dated = [d for d in documents if in_range(d.asking_price, price_low, price_high)]
    assert sum(bucket.count for bucket in result.range_facets["year"]) == len(dated)


async def test_a_terms_facet_names_its_most_frequent_values_without_the_no_value_marker(
    index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tantivy_index, "FACET_SIZE", 2)
    documents = [make_vehicle(n, auction_status=None) for n in range(9)]
    documents += [make_vehicle(n, auction_status="live") for n in range(10, 13)]
    documents += [make_vehicle(n, auction_status="upcoming") for n in range(20, 22)]
    documents += [make_vehicle(30, auction_status="closed")]
    query = SearchQuery(facets=["auction_status"], limit=0)
    [result] = await search_new_index(index_dir, documents, query)
    assert result.facets["auction_status"] == {"live": 3, "upcoming": 2}
    [everything] = await search_new_index(index_dir.parent / "all", documents[9:], query)
    assert everything.facets["auction_status"] == {"live": 3, "upcoming": 2}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prices=st.lists(st.none() | st.integers(0, 6_000_000).map(lambda cents: cents / 100), min_size=1, max_size=30),
    grades=st.lists(st.none() | st.integers(10, 50).map(lambda tenths: tenths / 10), min_size=30, max_size=30),
    edges=st.lists(st.integers(1, 60), min_size=1, max_size=4, unique=True).map(sorted),
    aligned=st.booleans(),
)
def test_numeric_facets_equal_brute_force_at_and_a_cent_off_the_edges(
    tmp_path_factory: pytest.TempPathFactory,
    prices: list[float | None],
    grades: list[float | None],
    edges: list[int],
    aligned: bool,
) -> None:
    """Range buckets are half-open at edges on whole thousands and a cent off them, for prices with cents; a float
    field's terms facet keys its values as the API shows them ("4" for 4.0)."""
    bounds = [edge * 1000.0 if aligned else edge * 1000.0 + 0.01 for edge in edges]
    documents = [make_vehicle(n, asking_price=price, condition_grade=grades[n]) for n, price in enumerate(prices)]

    query = SearchQuery(facets=["condition_grade"], range_facets={"asking_price": bounds}, limit=0)
    (result,) = asyncio.run(search_new_index(tmp_path_factory.mktemp("steps"), documents, query))

    lows: list[float | None] = [None, *bounds]
    highs: list[float | None] = [*bounds, None]
    expected = [
        RangeBucket(
            low,
            high,
            sum(
                1
                for price in prices
                if price is not None and (low is None or price >= low) and (high is None or price < high)
            ),
        )
        for low, high in zip(lows, highs, strict=True)
    ]
    assert result.range_facets["asking_price"] == expected
    graded = Counter(str(grade) for grade in grades[: len(prices)] if grade is not None)
    assert result.facets["condition_grade"] == {key.removesuffix(".0"): count for key, count in graded.items()}


def near_edges(edges: Sequence[float], offsets: Sequence[float]) -> st.SearchStrategy[float | None]:
    return st.none() | st.sampled_from([edge + offset for edge in edges for offset in offsets])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            near_edges(STANDARD_RANGE_EDGES["asking_price"], (-0.01, 0, 0.01)) | st.floats(0, 200_000),
            near_edges(STANDARD_RANGE_EDGES["year"], (-1, 0, 1)),
            near_edges(STANDARD_RANGE_EDGES["mileage"], (-1, 0, 1)) | st.integers(0, 400_000),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    ),
    filtered=st.booleans(),
)
def test_standard_range_facets_equal_brute_force_at_and_beside_the_edges(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[float | None, Any, Any, bool]], filtered: bool
) -> None:
    """Facets with the standard edges count the bucket each value was indexed in; with a range filter on the
    field, its own facet still counts every visible document (disjunctive)."""
    documents = [
        make_vehicle(
            n,
            asking_price=price,
            year=None if year is None else int(year),
            mileage=None if mileage is None else int(mileage),
            status="active" if visible else "sold",
        )
        for n, (price, year, mileage, visible) in enumerate(rows)
    ]
    query = SearchQuery(
        ranges={"year": (2015, None)} if filtered else {},
        range_facets={name: list(edges) for name, edges in STANDARD_RANGE_EDGES.items()},
        limit=0,
    )

    (result,) = asyncio.run(search_new_index(tmp_path_factory.mktemp("standard"), documents, query))
    for name, edges in STANDARD_RANGE_EDGES.items():
        counted = [
            getattr(document, name)
            for document in documents
            if document.searchable
            and (name == "year" or not filtered or (document.year is not None and document.year >= 2015))
        ]
        values = [value for value in counted if value is not None]
        bounds = list(zip([None, *edges], [*edges, None], strict=True))
        expected = [
            RangeBucket(low, high, sum(1 for v in values if (low is None or v >= low) and (high is None or v < high)))
            for low, high in bounds
        ]
        assert result.range_facets[name] == expected, name


async def test_a_repeated_page_is_the_same_until_a_commit_changes_it(index_dir: Path) -> None:
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert([make_vehicle(n, make="Ford", year=2010 + n) for n in range(1, 6)])
    await index.flush()
    query = SearchQuery(
        filters={"make": ["Ford"]},
        sort=[("year", "desc")],
        limit=3,
        facets=["make", "state"],
        range_facets={"year": [2012, 2014]},
    )
    first = await index.search(query)
    # What a caller does with its answer does not reach the next one (facets come from a per-generation cache).
    first.sort_values.clear()
    first.facets["make"]["Ford"] = 0
    first.facets["state"].clear()
    first.range_facets["year"].clear()
    again = await index.search(query)
    assert [hit.id for hit in again.hits] == ["5", "4", "3"]
    assert [values[0] for values in again.sort_values] == [2015, 2014, 2013]
    assert again.facets == {"make": {"Ford": 5}, "state": {"TX": 5}}
    assert [bucket.count for bucket in again.range_facets["year"]] == [1, 2, 2]
    await index.upsert([make_vehicle(9, make="Ford", year=2024)])
    await index.flush()
    after = await index.search(query)
    assert [hit.id for hit in after.hits] == ["9", "5", "4"]
    assert after.total == 6
    await index.close()


async def test_the_first_positions_of_a_browse_are_kept_and_pages_past_them_searched(
    index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tantivy_index, "FIRST_HITS", 10)
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert([make_vehicle(n, make="Ford", asking_price=1000.0 * (n % 7) + n) for n in range(1, 31)])
    await index.upsert([make_vehicle(n, make="Kia") for n in range(40, 45)])
    await index.flush()
    evaluated: list[int | None] = []  # per evaluation of the clauses: the total it was given
    by_field, first_positions = index._by_field, index._first_positions

    def counted(*args: Any, total: int | None = None) -> tuple[int, list[Any]]:
        evaluated.append(total)
        return by_field(*args, total=total)

    def counted_positions(*args: Any) -> Any:
        evaluated.append(None)
        return first_positions(*args)

    monkeypatch.setattr(index, "_by_field", counted)
    monkeypatch.setattr(index, "_first_positions", counted_positions)
    expected = sorted(range(1, 31), key=lambda n: 1000.0 * (n % 7) + n)
    pages = []
    cursors = {}
    for offset, limit in [(0, 4), (4, 4), (8, 2), (0, 10), (8, 4), (10, 5), (28, 5)]:
        query = SearchQuery(filters={"make": ["Ford"]}, sort=[("asking_price", "asc")], offset=offset, limit=limit)
        result = await index.search(query)
        cursors[offset + limit] = result.sort_values[-1]
        assert result.total == 30
        assert [hit.id for hit in result.hits] == [str(n) for n in expected[offset : offset + limit]], (offset, limit)
        pages.append(len(evaluated))
    assert pages == [1, 1, 1, 1, 2, 3, 4]  # within the first 10: one evaluation; past them, one each
    # A cursor page within the kept positions costs no evaluation; past them, it takes the kept total: one
    # evaluation, no count search.
    within = SearchQuery(filters={"make": ["Ford"]}, sort=[("asking_price", "asc")], search_after=cursors[4], limit=5)
    kept = await index.search(within)
    assert (kept.total, [hit.id for hit in kept.hits]) == (30, [str(n) for n in expected[4:9]])
    assert kept.sort_values == (await index.search(replace(within, search_after=None, offset=4))).sort_values
    assert len(evaluated) == 4
    cursor = SearchQuery(filters={"make": ["Ford"]}, sort=[("asking_price", "asc")], search_after=cursors[15], limit=5)
    deeper = await index.search(cursor)
    assert deeper.total == 30
    assert [hit.id for hit in deeper.hits] == [str(n) for n in expected[15:20]]
    assert evaluated[-1] == 30
    straddling = replace(within, search_after=cursors[8], limit=4)  # positions 8-11: past the first 10
    assert [hit.id for hit in (await index.search(straddling)).hits] == [str(n) for n in expected[8:12]]
    assert evaluated[-1] == 30
    await index.close()


# -- location ------------------------------------------------------------------------------------------

DALLAS = GeoFilter(lat=32.7767, lon=-96.7970)


def scattered(count: int, seed: int) -> list[VehicleDocument]:
    """Vehicles on a few hundred lots across Texas and its neighbours, some without a location."""
    generator = random.Random(seed)
    lots = [(generator.uniform(28.0, 37.0), generator.uniform(-104.0, -90.0)) for _ in range(120)]
    documents = []
    for n in range(count):
        lat, lon = generator.choice(lots) if generator.random() > 0.05 else (None, None)
        documents.append(make_vehicle(n, lat=lat, lon=lon, asking_price=float(generator.randint(5, 40) * 1000)))
    return documents


@pytest.fixture
async def texas(index_dir: Path) -> AsyncIterator[tuple[TantivyIndex, list[VehicleDocument]]]:
    index = TantivyIndex(index_dir, writer=True)
    documents = scattered(600, seed=7)
    await index.upsert(documents)
    await index.flush()
    yield index, documents
    await index.close()


def distance(document: VehicleDocument, origin: GeoFilter = DALLAS) -> float | None:
    if document.lat is None or document.lon is None:
        return None
    return haversine_km(origin.lat, origin.lon, document.lat, document.lon)


@pytest.mark.parametrize("locations", ["in memory", "from the index"])
@pytest.mark.parametrize("radius_km", [25.0, 150.0, 400.0, 2000.0])
async def test_radius_filter_equals_haversine(
    texas: tuple[TantivyIndex, list[VehicleDocument]],
    radius_km: float,
    locations: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if locations == "from the index":  # more distinct locations than the in-memory table takes
        monkeypatch.setattr(tantivy_index, "LOCATION_TABLE_SIZE", 10)
    index, documents = texas
    geo = GeoFilter(DALLAS.lat, DALLAS.lon, radius_km)
    result = await index.search(SearchQuery(geo=geo, limit=1000, facets=["state"]))
    expected = {d.id for d in documents if (km := distance(d)) is not None and km <= radius_km}
    assert {hit.id for hit in result.hits} == expected
    assert result.total == len(expected)
    assert sum(result.facets["state"].values()) == len(expected)
    assert all(km is not None and km <= radius_km for km in result.distances_km)


async def test_a_radius_finds_a_location_first_seen_after_earlier_searches(index_dir: Path) -> None:
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert([make_vehicle(1, lat=30.27, lon=-97.74)])  # Austin
    await index.flush()
    around_dallas = SearchQuery(geo=GeoFilter(DALLAS.lat, DALLAS.lon, 50.0))
    assert (await index.search(around_dallas)).total == 0
    await index.upsert([make_vehicle(2, lat=32.90, lon=-96.90)])  # a new lot north of Dallas
    await index.flush()
    assert [hit.id for hit in (await index.search(around_dallas)).hits] == ["2"]
    await index.close()


async def test_distance_sort_pages_nearest_first_then_by_id(
    texas: tuple[TantivyIndex, list[VehicleDocument]],
) -> None:
    index, documents = texas
    located = [d for d in documents if d.lat is not None]
    unlocated = [d for d in documents if d.lat is None]
    expected = [d.id for d in sorted(located, key=lambda d: (distance(d), id_rank(d.id)))]
    expected += [d.id for d in sorted(unlocated, key=lambda d: id_rank(d.id))]
    sort: list[tuple[str, SortOrder]] = [(DISTANCE, "asc")]

    by_offset = await page_through(index, SearchQuery(geo=DALLAS, sort=sort, limit=37), cursor=False)
    by_cursor = await page_through(index, SearchQuery(geo=DALLAS, sort=sort, limit=37), cursor=True)
    assert by_offset == expected
    assert by_cursor == expected


async def page_through(index: TantivyIndex, query: SearchQuery, *, cursor: bool) -> list[str]:
    seen: list[str] = []
    after: Sequence[Any] | None = None
    while True:
        offset = 0 if cursor else len(seen)
        page = await index.search(
            SearchQuery(**{**query.__dict__, "offset": offset, "search_after": after if cursor else None})
        )
        if not page.hits:
            return seen
        assert page.total == query_total(page)
        seen += [hit.id for hit in page.hits]
        after = page.sort_values[-1]


def query_total(page: Any) -> int:
    return int(page.total)


@pytest.mark.parametrize(
    ("field", "order"),
    [("asking_price", "asc"), ("asking_price", "desc"), ("year", "desc"), ("mileage", "asc")],
)
@pytest.mark.parametrize("kept", [60, 1000])  # a browse's first positions kept: some of the pages, all of them
async def test_field_sorts_page_every_document_exactly_once(
    index_dir: Path, field: str, order: SortOrder, kept: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tantivy_index, "FIRST_HITS", kept)
    generator = random.Random(field + order)
    documents = [
        make_vehicle(
            n,
            asking_price=None if n % 9 == 0 else float(generator.randint(1, 6) * 5000),  # ties and missing
            year=generator.randint(2015, 2018),
            mileage=generator.randint(0, 3) * 10_000,
        )
        for n in range(250)
    ]
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert(documents)
    await index.flush()

    def order_key(document: VehicleDocument) -> tuple[int, float, int]:
        value = getattr(document, field)
        if value is None:
            return (1, 0.0, id_rank(document.id))
        return (0, value if order == "asc" else -value, id_rank(document.id))

    expected = [d.id for d in sorted(documents, key=order_key)]
    query = SearchQuery(sort=[(field, order)], limit=23)
    assert await page_through(index, query, cursor=False) == expected
    assert await page_through(index, query, cursor=True) == expected
    await index.close()


async def test_ending_soonest_orders_by_auction_end(index_dir: Path) -> None:
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert(
        [
            make_vehicle(1, auction_ends_at="2026-11-24T18:00:00Z"),
            make_vehicle(2, auction_ends_at="2026-11-24T12:30:00+00:00"),
            make_vehicle(3),  # no auction: last
            make_vehicle(4, auction_ends_at="2026-11-25T09:00:00Z"),
        ]
    )
    await index.flush()
    result = await index.search(SearchQuery(sort=[("auction_ends_at", "asc")]))
    assert [hit.id for hit in result.hits] == ["2", "1", "4", "3"]
    await index.close()


async def test_search_after_the_last_page_is_empty_and_total_stays(index_dir: Path) -> None:
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert([make_vehicle(n, asking_price=1000.0 * n) for n in range(1, 6)])
    await index.flush()
    result = await index.search(SearchQuery(sort=[("asking_price", "asc")], search_after=[5000.0, "5"], limit=10))
    assert result.total == 5
    assert result.hits == []
    with pytest.raises(ValueError, match="search_after"):
        await index.search(SearchQuery(search_after=[1.0, "1"]))
    await index.close()


# -- facet passes on the facet threads --------------------------------------------------------------------


def assorted(count: int, seed: int) -> list[VehicleDocument]:
    generator = random.Random(seed)
    return [
        make_vehicle(
            n,
            make=generator.choice(MAKES),
            state=generator.choice(STATES),
            body_type=generator.choice(["sedan", "suv", "pickup"]),
            year=generator.randint(2014, 2022),
            asking_price=float(generator.randint(5, 40) * 1000),
        )
        for n in range(count)
    ]


async def test_concurrent_searches_get_the_facets_of_their_own_search(index_dir: Path) -> None:
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert(assorted(300, seed=5))
    await index.flush()
    queries = [
        SearchQuery(
            filters={"make": [make], "state": [state]},
            ranges={"asking_price": (None, 20_000.0)} if make == "Ford" else {},
            facets=["make", "state", "body_type", "year"],
            range_facets={"asking_price": PRICE_EDGES},
        )
        for make in MAKES
        for state in STATES
    ]
    alone = [await index.search(query) for query in queries]
    index._new_generation()  # empty the aggregation cache: the concurrent round computes every pass again
    together = await asyncio.gather(*(index.search(query) for query in queries * 3))
    for number, result in enumerate(together):
        expected = alone[number % len(queries)]
        assert (result.total, result.facets, result.range_facets) == (
            expected.total,
            expected.facets,
            expected.range_facets,
        )
    await index.close()


async def test_a_search_does_not_wait_for_busy_facet_threads(index_dir: Path) -> None:
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert(assorted(50, seed=6))
    await index.flush()
    release = threading.Event()
    blockers = [FACET_THREADS.submit(release.wait) for _ in range(FACET_THREAD_COUNT)]
    try:
        query = SearchQuery(filters={"make": ["Ford"]}, facets=["make", "state"], range_facets={"year": [2018]})
        result = await asyncio.wait_for(index.search(query), timeout=10)  # the caller runs every pass itself
        assert result.facets["make"]["Ford"] == result.total > 0
        assert sum(result.facets["state"].values()) == result.total
    finally:
        release.set()
        for blocker in blockers:
            blocker.result()
    await index.close()


async def test_a_search_cancelled_while_waiting_for_a_search_thread_never_runs(
    index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert(assorted(20, seed=8))
    await index.flush()
    ran: list[SearchQuery] = []
    search_sync = index._search_sync

    def counted(query: SearchQuery) -> SearchResult:
        ran.append(query)
        return search_sync(query)

    monkeypatch.setattr(index, "_search_sync", counted)
    release = threading.Event()
    blockers = [SEARCH_THREADS.submit(release.wait) for _ in range(FACET_THREAD_COUNT)]
    try:
        waiting = asyncio.create_task(index.search(SearchQuery(filters={"make": ["Ford"]})))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        release.set()
        for blocker in blockers:
            blocker.result()
    assert (await index.search(SearchQuery())).total == 20
    assert len(ran) == 1  # only the search after the release
    await index.close()


@pytest.mark.parametrize("text", ["camry", "toyta camry", "toyota cam", "cam", "f150", "f-150 xlt", "honda cr", "civc"])
async def test_text_facets_count_exactly_the_documents_the_text_matches(index_dir: Path, text: str) -> None:
    """Facet passes evaluate the words again, without the filter of their own field: the same documents."""
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert(
        [
            make_vehicle(n, make=make, model=model, trim=trim, state=STATES[n % 3], description=f"{make} {model}")
            for n, (make, model, trim) in enumerate(CARS * 3)
        ]
    )
    await index.flush()
    result = await index.search(SearchQuery(text=text, facets=["make", "state"], limit=100))
    assert sum(result.facets["make"].values()) == result.total == len(result.hits)
    by_year = await index.search(SearchQuery(text=text, sort=[("year", "desc")], limit=100))
    assert sorted(hit.id for hit in by_year.hits) == sorted(hit.id for hit in result.hits)
    filtered = await index.search(SearchQuery(text=text, filters={"state": ["TX"]}, facets=["make", "state"]))
    for state, count in filtered.facets["state"].items():  # disjunctive: each state's count is its own search
        assert count == (await index.search(SearchQuery(text=text, filters={"state": [state]}))).total, state
    assert sum(filtered.facets["make"].values()) == filtered.total
    await index.close()
