"""The embedded search engine: a tantivy index in a local directory, one writer process and many readers.

The writer (the stream worker) holds tantivy's directory lock; readers (API workers) open the same
directory without a writer and pick up each commit through tantivy's reload-on-commit policy, or at once
with `refresh_reader()`.

Each document is stored whole as the JSON `VehicleDocument` (`doc`, so `get` returns exactly what was
written) beside indexed copies of the fields search needs (`tantivy_schema`).

The directory is versioned (`<index_path>/<index_name>_v<SCHEMA_VERSION>`): a schema change starts an empty
index that the indexer fills by replaying its topics, never a mixed one.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import tantivy

from connectors.search.fields import (
    FACET_SIZE,
    FLOAT_FIELDS,
    FUZZY_MIN_LENGTH,
    FUZZY_TEXT_SOURCES,
    ID_RANK_LAST,
    INEXACT_WEIGHT,
    INTEGER_FIELDS,
    STANDARD_RANGE_EDGES,
    TEXT_FIELD_BOOSTS,
    apply_partial,
    integer_bounds,
    keyword_value,
    validate_lookup,
    validate_query,
)
from connectors.search.port import (
    DISTANCE,
    RELEVANCE,
    FilterValue,
    GeoFilter,
    IndexHealth,
    RangeBucket,
    SearchIndex,
    SearchIndexUnavailable,
    SearchQuery,
    SearchResult,
    StoredHits,
)
from connectors.search.tantivy_schema import (
    FACET_COLUMNS,
    GEO_POINT,
    ID_KEY,
    INTEGER_COLUMNS,
    LOOKUP_COLUMNS,
    NAMES_TEXT,
    NO_VALUE,
    SCHEMA_VERSION,
    STEP_COLUMNS,
    TEXT_FIELDS,
    TEXT_TOKENIZER,
    VISIBLE,
    build_schema,
    index_json,
    indexed_text,
    lookup_keys,
    parse_geo_point,
    text_analyzer,
)
from connectors.search.tantivy_sorting import cursor_key, id_rank, sort_key_field
from connectors.search.tantivy_text import VOCABULARY_SIZE, TextVocabulary
from schemas.geo import EARTH_RADIUS_KM, haversine_km
from schemas.vehicle import VehicleDocument

DEFAULT_HEAP_BYTES = 128 * 1024 * 1024
# Two indexing threads. One gave half the segments to merge and a 300,000-vehicle snapshot 1-2% faster; its worse
# freshness runs (2026-12-06) were taken while the bench still measured the snapshot's follow-up work, so not kept.
DEFAULT_WRITER_THREADS = 2
DEFAULT_MAX_PENDING = 10_000
# Writes and id lookups run on the caller's thread whatever their size: handing them to a thread pool
# made the worker's threads fight over the GIL (measured: 1,163 -> 1,524 snapshot rows/s without the hop).
# Searches, commits and scans still run in a thread so the API's event loop stays responsive.
INLINE_BATCH = 10**9
TOMBSTONE_BATCH = 1000
SCAN_PAGE = 50_000
# The range bucket a facet pass counts the search's own facets in (`_fold_main`).
FOLDED = "within"
# Facet passes' counts, as searches answer them, and location aggregations, each kept per index generation.
AGGREGATION_CACHE_SIZE = 512
# The first positions of browses sorted by a field (filters only), and how many browses keep them, per generation
# (~16 KB each): a buyer's first 50 pages of 20, by offset or by cursor.
FIRST_HITS = 1000
FIRST_HITS_CACHE_SIZE = 256
# Most ids a lookup gathers in one terms aggregation (tantivy refuses more than 65,000 buckets); past it, a
# lookup reads the matching documents page by page.
MAX_LOOKUP_BUCKETS = 60_000
# Most distinct vehicle locations a radius filter or distance sort considers (tantivy's bucket limit is 65,000).
MAX_GEO_POINTS = 60_000
# Most distinct locations kept in memory for radius filters (vehicles sit on dealer lots: the 1M bench index has
# 500); a radius over an index with more asks the index for the locations in its bounding box instead.
LOCATION_TABLE_SIZE = 20_000
# The writer keeps the stored JSON of its latest writes (~1.1 KiB each; bytes, which the garbage collector never
# scans, unlike ~5.6 KiB of model objects that slowed the 1M snapshot): a vehicle changed again soon after (a live
# auction, an ERP feed) is read back without a search and a stored-document fetch.
RECENT_DOCUMENTS = 20_000
ID_TERM_SET_FROM = 256
# Most values a filter matches with term queries; past it, one term set query.
MAX_LAZY_TERMS = 64
# Shared by every index handle of the process (a reindex opens a new one while searches finish on the old).
FACET_THREAD_COUNT = os.cpu_count() or 1
FACET_THREADS = ThreadPoolExecutor(FACET_THREAD_COUNT, thread_name_prefix="tantivy-facets")


# Searches run here, at most one per core at once; the rest wait in its queue.
SEARCH_THREADS = ThreadPoolExecutor(FACET_THREAD_COUNT, thread_name_prefix="tantivy-search")


T = TypeVar("T")


class IndexLocked(SearchIndexUnavailable):
    """Another process (or handle) already writes this index directory."""


def bounding_box(geo: GeoFilter, radius_km: float) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """Latitude and longitude bounds enclosing the circle; no longitude bounds near a pole or the 180th meridian."""
    angular = radius_km / EARTH_RADIUS_KM
    lat_delta = math.degrees(angular)
    lat_bounds = (geo.lat - lat_delta, geo.lat + lat_delta)
    if lat_bounds[0] <= -90 or lat_bounds[1] >= 90 or angular >= math.pi / 2:
        return lat_bounds, None
    lon_delta = math.degrees(math.asin(min(1.0, math.sin(angular) / math.cos(math.radians(geo.lat)))))
    if geo.lon - lon_delta < -180 or geo.lon + lon_delta > 180:
        return lat_bounds, None
    return lat_bounds, (geo.lon - lon_delta, geo.lon + lon_delta)


@dataclass(frozen=True)
class _Clause:
    """One constraint of a search: `field` names the facet it belongs to (None: text and location); `unscored`
    matches the same documents as `query`, more cheaply, where scores are not read."""

    field: str | None
    key: Hashable
    query: tantivy.Query
    unscored: tantivy.Query | None = None

    @property
    def matching(self) -> tantivy.Query:
        return self.query if self.unscored is None else self.unscored


@dataclass(frozen=True)
class _Locations:
    """Distinct document locations `(lat, lon, geo_point key)` sorted by latitude, with the latitudes alone for
    bisecting a radius's latitude band."""

    lats: list[float]
    points: list[tuple[float, float, str]]


class _Recent(Generic[T]):
    """Results read from the index by (generation, key), the least recently used dropped past `size`
    (`TantivyIndex._cached`; the callers hold the cache lock). A result may be None."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: OrderedDict[Hashable, T] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self.values

    def take(self, key: Hashable) -> T:
        self.values.move_to_end(key)
        return self.values[key]

    def put(self, key: Hashable, value: T) -> None:
        self.values[key] = value
        while len(self.values) > self.size:
            self.values.popitem(last=False)


@dataclass(frozen=True)
class _Positions:
    """A browse's total and its first positions in order: each one's sort key and address (segment << 32 | doc),
    16 bytes a position instead of ~125 as Python tuples of key and address (measured)."""

    total: int
    keys: array[int]
    places: array[int]

    @classmethod
    def of(cls, total: int, hits: Sequence[tuple[int, Any]]) -> _Positions:
        keys = array("Q", (key for key, _ in hits))
        places = array("Q", (address.segment_ord << 32 | address.doc for _, address in hits))
        return cls(total, keys, places)

    def after(self, key: int) -> int:
        """The position of the first kept key past `key` (a cursor's)."""
        return bisect_right(self.keys, key)

    def page(self, start: int, limit: int) -> list[Any] | None:
        """The addresses of positions `start` to `start + limit`, or None where they run past the kept ones."""
        end = start + limit
        if end > len(self.places) and len(self.places) < self.total:
            return None
        return [tantivy.DocAddress(place >> 32, place & 0xFFFFFFFF) for place in self.places[start:end]]


@dataclass(frozen=True)
class _FacetPass:
    """One aggregation of the facets: the facet fields `names` counted over `matching`; with `within`, also the
    facets of the search itself, counted in a range bucket of the one field the pass leaves out (`_fold_main`)."""

    names: list[str]
    key: Hashable
    matching: tantivy.Query
    aggregations: dict[str, Any]
    within: dict[str, float] | None = None

    def counts(self, result: dict[str, Any]) -> dict[str, Any]:
        """Each facet's aggregation result by its name (`terms:<field>`, `steps:<field>`, `range:<field>`)."""
        if self.within is None:
            return result
        spec = self.within
        inner: dict[str, Any] = next(
            (
                bucket
                for bucket in result[FOLDED]["buckets"]
                if bucket.get("from") == spec.get("from") and bucket.get("to") == spec.get("to")
            ),
            {name: {"buckets": []} for name in self.aggregations[FOLDED]["aggs"]},  # no documents at all
        )
        return {**result, **inner}

    def read(self, result: dict[str, Any], query: SearchQuery) -> _FacetCounts:
        """The facets this pass counts, as the search answers them (what `query` asks of them is in `key`)."""
        counts = self.counts(result)
        facets: dict[str, dict[str, int]] = {}
        range_facets: dict[str, list[RangeBucket]] = {}
        for name in self.names:
            if name in query.facets:
                facets[name] = _facet_counts(counts[f"terms:{name}"]["buckets"])
            if name in query.range_facets:
                edges = list(query.range_facets[name])
                bounds = list(zip([None, *edges], [*edges, None], strict=True))
                # Buckets without documents are absent from a steps aggregation (and from a range one over an
                # empty index): count by position or bounds, absent ones as zero.
                if f"steps:{name}" in counts:
                    steps = {bucket["key"]: bucket["doc_count"] for bucket in counts[f"steps:{name}"]["buckets"]}
                    found = {bound: steps.get(step, 0) for step, bound in enumerate(bounds)}
                else:
                    found = {
                        (bucket.get("from"), bucket.get("to")): bucket["doc_count"]
                        for bucket in counts[f"range:{name}"]["buckets"]
                    }
                range_facets[name] = [RangeBucket(low, high, found.get((low, high), 0)) for low, high in bounds]
        return _FacetCounts(facets, range_facets)


@dataclass(frozen=True)
class _FacetCounts:
    """What one facet pass counted, by facet: kept per index generation and copied into each result."""

    facets: dict[str, dict[str, int]]
    range_facets: dict[str, list[RangeBucket]]

    def copy_into(self, result: SearchResult) -> None:
        for name, counts in self.facets.items():
            result.facets[name] = dict(counts)
        for name, buckets in self.range_facets.items():
            result.range_facets[name] = list(buckets)


class TantivyIndex(SearchIndex):
    """`SearchIndex` over a tantivy directory.

    Visibility: `get`/`get_many` on the writer see every accepted write at once (unflushed ones from a
    pending map); `search` and other processes see writes after `flush()` commits them (readers within
    ~0.5 s by tantivy's reload-on-commit, at once after `refresh_reader()`). The writer also commits by
    itself when `max_pending` documents are waiting, and `close()` commits what is left.

    Thread-safety: writes, reads of the pending map and commits are serialized by a lock, so the
    handle may be shared by threads; tantivy searches run concurrently.
    """

    engine = "tantivy"

    def __init__(
        self,
        path: Path,
        *,
        writer: bool,
        heap_bytes: int = DEFAULT_HEAP_BYTES,
        writer_threads: int = DEFAULT_WRITER_THREADS,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.path = path
        self._schema = build_schema()
        self._analyzer = text_analyzer()
        self._max_pending = max_pending
        self._lock = threading.Lock()
        # id -> stored JSON, or None for a physical delete, until the next commit.
        self._pending: dict[str, bytes | None] = {}
        # id -> stored JSON of the writer's latest writes, newest last (RECENT_DOCUMENTS); a delete removes its entry.
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._dirty = False
        # Bumped whenever this handle's searcher may see other documents; keys the aggregation cache.
        self._generation = 0
        self._meta_stamp: bytes | None = None
        self._cache_lock = threading.Lock()
        self._aggregation_cache: _Recent[dict[str, Any]] = _Recent(AGGREGATION_CACHE_SIZE)
        self._facet_cache: _Recent[_FacetCounts] = _Recent(AGGREGATION_CACHE_SIZE)
        self._first_hits: _Recent[_Positions] = _Recent(FIRST_HITS_CACHE_SIZE)
        self._location_table: _Recent[_Locations | None] = _Recent(1)
        self._vocabularies: _Recent[dict[str, TextVocabulary | None]] = _Recent(1)
        self._searches_lock = threading.Lock()
        self._searches = 0  # running now: facet passes go to the facet threads only while cores are spare
        self._index = self._open_index()
        self._writer: tantivy.IndexWriter | None = None
        if writer:
            self._writer = self._open_writer(heap_bytes, writer_threads)
            # The writer reloads itself right after each commit, so it needs no background reloads.
            self._index.config_reader(reload_policy="manual")
        else:
            # Readers reload in `refresh_reader()` only, so each generation is one searcher.
            self._index.config_reader(reload_policy="manual")
            self._meta_stamp = self._read_meta_stamp()

    def _open_index(self) -> tantivy.Index:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            index = tantivy.Index(self._schema, path=str(self.path), reuse=True)
        except (OSError, ValueError) as exc:
            if "schema does not match" in str(exc):
                raise SearchIndexUnavailable(
                    f"the tantivy index at {self.path} has another schema than version {SCHEMA_VERSION} "
                    "of this code; delete that directory and let the indexer rebuild it"
                ) from exc
            raise SearchIndexUnavailable(f"cannot open the tantivy index at {self.path}: {exc}") from exc
        index.register_tokenizer(TEXT_TOKENIZER, self._analyzer)
        return index

    def _open_writer(self, heap_bytes: int, threads: int) -> tantivy.IndexWriter:
        try:
            return self._index.writer(heap_size=heap_bytes, num_threads=threads)
        except ValueError as exc:
            if "LockBusy" in str(exc):
                raise IndexLocked(
                    f"the tantivy index at {self.path} is already open for writing (tantivy's writer lock "
                    "is held by another process or handle); run a single stream worker per index directory"
                ) from exc
            raise SearchIndexUnavailable(f"cannot open a writer on {self.path}: {exc}") from exc

    def _require_writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            raise SearchIndexUnavailable(f"the tantivy index at {self.path} was opened read-only (writer=False)")
        return self._writer

    async def _run(self, size: int, work: Callable[[], T]) -> T:
        if size < INLINE_BATCH:
            return work()
        return await asyncio.to_thread(work)

    # -- writes ---------------------------------------------------------------------------------------

    async def upsert(self, documents: Sequence[VehicleDocument]) -> None:
        if documents:
            await self._run(len(documents), lambda: self._upsert_sync(documents))

    def _upsert_sync(self, documents: Sequence[VehicleDocument]) -> None:
        with self._lock:
            self._upsert_locked(documents)

    def _upsert_locked(self, documents: Sequence[VehicleDocument]) -> None:
        writer = self._require_writer()
        for document in documents:
            stored = document.__pydantic_serializer__.to_json(document)
            writer.delete_documents_by_term("id", document.id)
            writer.add_json(index_json(document, stored))
            self._pending[document.id] = stored
            self._remember(document.id, stored)
        self._dirty = True
        if len(self._pending) >= self._max_pending:
            self._commit_locked()

    async def update_partial(self, document_id: str, fields: Mapping[str, Any], version: int) -> None:
        current = await self.get(document_id)
        if current is None:
            raise KeyError(f"no vehicle document {document_id!r} to update")
        await self.upsert([apply_partial(current, fields, version)])

    async def delete(self, document_ids: Sequence[str]) -> None:
        if document_ids:
            await self._run(len(document_ids), lambda: self._delete_sync(document_ids))

    def _delete_sync(self, document_ids: Sequence[str]) -> None:
        with self._lock:
            writer = self._require_writer()
            for document_id in document_ids:
                writer.delete_documents_by_term("id", document_id)
                self._pending[document_id] = None
                self._recent.pop(document_id, None)
            self._dirty = True
            if len(self._pending) >= self._max_pending:
                self._commit_locked()

    async def tombstone_older_than(self, source: str, position: int) -> int:
        return await asyncio.to_thread(self._tombstone_sync, source, position)

    def _tombstone_sync(self, source: str, position: int) -> int:
        # A full scan of live documents: this runs on a TRUNCATE only, and keeps per-source positions out
        # of the schema (their names are open-ended).
        with self._lock:
            self._require_writer()
            self._commit_locked()
            searcher = self._index.searcher()
            # Constant scores make the hit order the document order, so offset pages over this one
            # searcher are stable while marked documents are rewritten.
            live = tantivy.Query.const_score_query(tantivy.Query.term_query(self._schema, "deleted", False), 1.0)
            count = _count(searcher.search(live, 1, count=True))
            marked = 0
            batch: list[VehicleDocument] = []
            for offset in range(0, count, SCAN_PAGE):
                for _, address in searcher.search(live, SCAN_PAGE, offset=offset).hits:
                    _, stored = _stored(searcher.doc(address))
                    applied = orjson.loads(stored).get("positions", {}).get(source)
                    if applied is None or applied >= position:
                        continue
                    batch.append(_tombstone(VehicleDocument.model_validate_json(stored), source, position))
                    marked += 1
                    if len(batch) >= TOMBSTONE_BATCH:
                        self._upsert_locked(batch)
                        batch = []
            if batch:
                self._upsert_locked(batch)
            self._commit_locked()
            return marked

    async def flush(self) -> None:
        if self._dirty:
            await asyncio.to_thread(self._flush_sync)

    def _flush_sync(self) -> None:
        with self._lock:
            self._commit_locked()

    def _commit_locked(self) -> None:
        if not self._dirty:
            return
        writer = self._require_writer()
        try:
            writer.commit()
        except ValueError as exc:
            raise SearchIndexUnavailable(f"commit of the tantivy index at {self.path} failed: {exc}") from exc
        # Reload before forgetting pending writes, so a read never falls between the two.
        self._index.reload()
        self._new_generation()
        self._pending.clear()
        self._dirty = False

    # -- reads ----------------------------------------------------------------------------------------

    async def get(self, document_id: str) -> VehicleDocument | None:
        return (await self.get_many([document_id])).get(document_id)

    async def get_many(self, document_ids: Sequence[str]) -> dict[str, VehicleDocument]:
        if not document_ids:
            return {}
        return await self._run(len(document_ids), lambda: self._get_many_sync(document_ids))

    def _remember(self, document_id: str, stored: bytes) -> None:
        recent = self._recent
        recent[document_id] = stored
        recent.move_to_end(document_id)
        if len(recent) > RECENT_DOCUMENTS:
            recent.popitem(last=False)

    def _get_many_sync(self, document_ids: Sequence[str]) -> dict[str, VehicleDocument]:
        wanted = set(document_ids)
        found: dict[str, bytes] = {}
        with self._lock:
            for document_id in wanted & self._pending.keys():
                stored = self._pending[document_id]
                if stored is not None:
                    found[document_id] = stored
            unsettled = wanted - self._pending.keys()
            for document_id in unsettled & self._recent.keys():
                found[document_id] = self._recent[document_id]
            committed = unsettled - self._recent.keys()
            if committed:
                searcher = self._index.searcher()
                for address in self._addresses_of(searcher, list(committed)):
                    document_id, stored = _stored(searcher.doc(address))
                    found[document_id] = stored
        return {document_id: VehicleDocument.model_validate_json(stored) for document_id, stored in found.items()}

    def _addresses_of(self, searcher: tantivy.Searcher, document_ids: list[str]) -> list[Any]:
        """Where the documents of these ids are. A term-set query costs ~0.3 ms to set up at 1M documents, a term
        query ~5 us: one term query per id up to ID_TERM_SET_FROM ids (measured break-even ~300), one set beyond."""
        if len(document_ids) >= ID_TERM_SET_FROM:
            query = tantivy.Query.term_set_query(self._schema, "id", document_ids)
            return [address for _, address in searcher.search(query, len(document_ids), count=False).hits]
        addresses = []
        for document_id in document_ids:
            query = tantivy.Query.term_query(self._schema, "id", document_id)
            addresses += [address for _, address in searcher.search(query, 1, count=False).hits]
        return addresses

    async def live_ids_by(self, field: str, values: Sequence[str]) -> dict[str, list[str]]:
        indexed = validate_lookup(field)
        indexed = LOOKUP_COLUMNS.get(indexed, indexed)
        wanted = list(dict.fromkeys(values))
        if not wanted:
            return {}
        return await self._run(len(wanted), lambda: self._live_ids_by_sync(indexed, wanted))

    def _live_ids_by_sync(self, indexed: str, values: list[str]) -> dict[str, list[str]]:
        searcher = self._index.searcher()
        matching = self._live_matching(indexed, values)
        total = _count(searcher.search(matching, 1, count=True))
        if total == 0:
            return {}
        if total + len(values) <= MAX_LOOKUP_BUCKETS:
            # Ids and values from fast fields: no stored document is read.
            found = self._single_member_lookup(searcher, matching, indexed, values, total)
            if found is not None:
                return found
            return self._nested_lookup(searcher, matching, indexed, values, total)
        found_paged: dict[str, list[str]] = {}
        for offset in range(0, total, SCAN_PAGE):
            for _, address in searcher.search(matching, SCAN_PAGE, offset=offset).hits:
                document_id, stored = _stored(searcher.doc(address))
                document = VehicleDocument.model_validate_json(stored)
                value = lookup_keys(document).get(indexed)
                if value is not None:
                    found_paged.setdefault(value, []).append(document_id)
        return {value: sorted(ids, key=id_rank) for value, ids in found_paged.items()}

    def _live_matching(self, indexed: str, values: list[str]) -> tantivy.Query:
        return _conjunction_of(
            [
                tantivy.Query.term_set_query(self._schema, indexed, values),
                tantivy.Query.term_query(self._schema, "deleted", False),
            ]
        )

    def _nested_lookup(
        self, searcher: tantivy.Searcher, matching: tantivy.Query, indexed: str, values: list[str], total: int
    ) -> dict[str, list[str]]:
        ids = {"terms": {"field": "id", "size": total}}
        aggregation = {"by": {"terms": {"field": indexed, "size": len(values)}, "aggs": {"ids": ids}}}
        result: dict[str, Any] = searcher.aggregate(matching, aggregation)
        return {
            _bucket_key(bucket["key"]): sorted(
                (_bucket_key(hit["key"]) for hit in bucket["ids"]["buckets"]), key=id_rank
            )
            for bucket in result["by"]["buckets"]
        }

    def _single_member_lookup(
        self, searcher: tantivy.Searcher, matching: tantivy.Query, indexed: str, values: list[str], total: int
    ) -> dict[str, list[str]] | None:
        """The lookup when most values have one live document (a VIN): a value's only document is named by the
        smallest id rank under it, which is ~10x cheaper than a terms aggregation of ids under every value; values
        with more documents go through `_nested_lookup`. None if the ranks do not name the documents (ids that
        are not canonical numbers): the caller then looks everything up the nested way.

        The check is exact: the ranks' ids, with the nested lookup's, must be distinct and be the set of matching
        ids. A document whose id is not the decimal of its rank ("007") would have its rank's id ("7") either
        missing from that set or reported twice.
        """
        aggregation = {
            "by": {"terms": {"field": indexed, "size": len(values)}, "aggs": {"rank": {"min": {"field": ID_KEY}}}},
            "ids": {"terms": {"field": "id", "size": total}},
        }
        result: dict[str, Any] = searcher.aggregate(matching, aggregation)
        found: dict[str, list[str]] = {}
        shared: list[str] = []
        for bucket in result["by"]["buckets"]:
            value, rank = _bucket_key(bucket["key"]), bucket["rank"]["value"]
            if bucket["doc_count"] == 1 and rank is not None and rank < ID_RANK_LAST:
                found[value] = [str(int(rank))]
            else:
                shared.append(value)
        if shared:
            found.update(self._nested_lookup(searcher, self._live_matching(indexed, shared), indexed, shared, total))
        named = [document_id for ids in found.values() for document_id in ids]
        live = {_bucket_key(bucket["key"]) for bucket in result["ids"]["buckets"]}
        if len(named) != total or len(live) != total or set(named) != live:
            return None
        return found

    async def search(self, query: SearchQuery) -> SearchResult:
        """Runs on a search thread (`SEARCH_THREADS`); a search cancelled before its turn never runs."""
        validate_query(query)
        return await asyncio.get_running_loop().run_in_executor(SEARCH_THREADS, self._search_sync, query)

    def _search_sync(self, query: SearchQuery) -> SearchResult:
        with self._searches_lock:
            self._searches += 1
            spare_cores = self._searches < FACET_THREAD_COUNT
        try:
            return self._search_counted(query, spare_cores)
        finally:
            with self._searches_lock:
                self._searches -= 1

    def _search_counted(self, query: SearchQuery, spare_cores: bool) -> SearchResult:
        searcher = self._index.searcher()
        generation = self._generation
        clauses = self._clauses(searcher, generation, query)
        facets = self._start_facets(searcher, generation, clauses, query, spare_cores)
        try:
            result = self._hits(searcher, generation, clauses, query)
        except BaseException:
            for _, pending in facets:
                if isinstance(pending, Future):
                    pending.cancel()  # one already running finishes into the facet cache
            raise
        self._finish_facets(searcher, generation, facets, query, result)
        return result

    def _hits(
        self, searcher: tantivy.Searcher, generation: int, clauses: Sequence[_Clause], query: SearchQuery
    ) -> SearchResult:
        matching = _conjunction(clauses)
        sort_name, sort_order = query.sort[0] if query.sort else (RELEVANCE, "desc")
        if sort_name == DISTANCE and query.geo is not None:  # validate_query requires the location
            total, addresses = self._by_distance(searcher, generation, clauses, query, query.geo)
            scores: list[float | None] = [None] * len(addresses)
        elif sort_name == RELEVANCE:
            total, scored = self._by_relevance(searcher, _conjunction(clauses, scored=True), query)
            scores, addresses = [score for score, _ in scored], [address for _, address in scored]
        else:
            total, addresses = self._sorted_page(searcher, generation, clauses, matching, query, sort_name, sort_order)
            scores = [None] * len(addresses)
        hits = StoredHits([_stored(searcher.doc(address))[1] for address in addresses])
        result = SearchResult(total=total, hits=hits)
        result.sort_values = [
            _sort_values(sort_name, fields, score, query.geo) for fields, score in zip(hits.fields, scores, strict=True)
        ]
        if query.geo is not None:
            result.distances_km = [_distance(query.geo, fields) for fields in hits.fields]
        return result

    # -- ordering -------------------------------------------------------------------------------------

    def _by_relevance(
        self, searcher: tantivy.Searcher, matching: tantivy.Query, query: SearchQuery
    ) -> tuple[int, list[tuple[float, Any]]]:
        """Best match first. Without words every match scores 0 (filters only, as in Elasticsearch's filter
        context) and hits run by id (`id_rank`)."""
        if query.limit == 0:  # tantivy refuses a top-docs limit of 0
            return _count(searcher.search(matching, 1, count=True)), []
        if not query.text:
            result = searcher.search(
                matching, query.limit, count=True, offset=query.offset, order_by_field=ID_KEY, order=tantivy.Order.Asc
            )
            return _count(result), [(0.0, address) for _, address in result.hits]
        # With words, equal scores keep tantivy's document order: finding the smallest ids of a tie group means
        # reading every tied document (tens of thousands at 1M), ~15x the cost of the search itself.
        result = searcher.search(matching, query.limit, count=True, offset=query.offset)
        return _count(result), [(float(score), address) for score, address in result.hits]

    def _sorted_page(
        self,
        searcher: tantivy.Searcher,
        generation: int,
        clauses: Sequence[_Clause],
        matching: tantivy.Query,
        query: SearchQuery,
        name: str,
        order: Any,
    ) -> tuple[int, list[Any]]:
        """`_by_field`; for a browse (filters only), the total and the first `FIRST_HITS` positions with their sort
        keys are kept per index generation: the next buyer opening a page of a make within them, by offset or by
        cursor, costs no evaluation of the clauses (~1 ms at 1M for a popular make, a cursor page ~2.5 ms), and a
        cursor page deeper in it one evaluation instead of two (the kept total)."""
        end = query.offset + query.limit
        browse = not query.text and query.geo is None
        by_cursor = query.search_after is not None
        if not browse or not (by_cursor or 0 < end <= FIRST_HITS):
            return self._by_field(searcher, matching, query, name, order)
        kept = self._cached(
            self._first_hits,
            generation,
            (_key(clauses), name, order),
            lambda: self._first_positions(searcher, matching, name, order),
        )
        start = query.offset
        if query.search_after is not None:
            start += kept.after(cursor_key(name, order, query.search_after))
        page = kept.page(start, query.limit)
        if page is not None:
            return kept.total, page
        return self._by_field(searcher, matching, query, name, order, total=kept.total)

    def _first_positions(
        self, searcher: tantivy.Searcher, matching: tantivy.Query, name: str, order: Any
    ) -> _Positions:
        key_field = sort_key_field(name, order)
        result = searcher.search(matching, FIRST_HITS, count=True, order_by_field=key_field, order=tantivy.Order.Asc)
        return _Positions.of(_count(result), result.hits)

    def _by_field(
        self,
        searcher: tantivy.Searcher,
        matching: tantivy.Query,
        query: SearchQuery,
        name: str,
        order: Any,
        *,
        total: int | None = None,
    ) -> tuple[int, list[Any]]:
        """The page of `query` by `name` (a cursor page also counts the matches, unless `total` is known)."""
        key_field = sort_key_field(name, order)
        if query.search_after is None:
            if query.limit == 0:
                return _count(searcher.search(matching, 1, count=True)), []
            result = searcher.search(
                matching,
                query.limit,
                count=True,
                offset=query.offset,
                order_by_field=key_field,
                order=tantivy.Order.Asc,
            )
            return _count(result), [address for _, address in result.hits]
        after = tantivy.Query.range_query(
            self._schema,
            key_field,
            tantivy.FieldType.Unsigned,
            cursor_key(name, order, query.search_after),
            None,
            include_lower=False,
        )
        if total is None:
            total = _count(searcher.search(matching, 1, count=True))
        if query.limit == 0:
            return total, []
        page = _conjunction_of([matching, after])
        result = searcher.search(
            page, query.limit, count=False, offset=query.offset, order_by_field=key_field, order=tantivy.Order.Asc
        )
        return total, [address for _, address in result.hits]

    def _by_distance(
        self,
        searcher: tantivy.Searcher,
        generation: int,
        clauses: Sequence[_Clause],
        query: SearchQuery,
        geo: GeoFilter,
    ) -> tuple[int, list[Any]]:
        """Nearest first, then by id: locations are few (vehicles sit on dealer lots), so the documents of
        each distance are fetched location group by location group in id order."""
        matching = _conjunction(clauses)
        counts = self._point_counts(searcher, generation, clauses, matching)
        # Within a radius every match has a location, so the locations' counts add up to the total.
        within = geo.radius_km is not None
        total = sum(counts.values()) if within else _count(searcher.search(matching, 1, count=True))
        groups: dict[float, list[str]] = {}
        for point in counts:
            lat, lon = parse_geo_point(point)
            groups.setdefault(haversine_km(geo.lat, geo.lon, lat, lon), []).append(point)
        ordered: list[tuple[float | None, tuple[str, ...]]] = [(d, tuple(groups[d])) for d in sorted(groups)]
        ordered.append((None, ()))  # documents without a location come last
        after_distance, after_rank = None, -1
        started = query.search_after is None
        if query.search_after is not None:
            after_distance = query.search_after[0]
            after_rank = id_rank(str(query.search_after[1]))
        skip, need = query.offset, query.limit
        addresses: list[Any] = []
        for distance, points in ordered:
            if need == 0:
                break
            clauses_here = [matching, self._points_query(points)]
            if not started:
                if distance is not None and (after_distance is None or distance < after_distance):
                    continue
                if distance == after_distance:
                    clauses_here.append(
                        tantivy.Query.range_query(
                            self._schema, ID_KEY, tantivy.FieldType.Unsigned, after_rank, None, include_lower=False
                        )
                    )
                started = True
            group = _conjunction_of(clauses_here)
            size = sum(counts[p] for p in points) if len(clauses_here) == 2 and points else None
            if size is not None and skip >= size:
                skip -= size
                continue
            result = searcher.search(
                group, need, count=size is None, offset=skip, order_by_field=ID_KEY, order=tantivy.Order.Asc
            )
            if size is None:
                found = _count(result)
                if skip >= found:
                    skip -= found
                    continue
            addresses += [address for _, address in result.hits]
            need -= len(result.hits)
            skip = 0
        return total, addresses

    def _points_query(self, points: Sequence[str]) -> tantivy.Query:
        if points:
            return tantivy.Query.term_set_query(self._schema, GEO_POINT, list(points))
        exists = tantivy.Query.exists_query(GEO_POINT)
        return tantivy.Query.boolean_query([(tantivy.Occur.MustNot, exists), (tantivy.Occur.Must, _all())])

    def _point_counts(
        self, searcher: tantivy.Searcher, generation: int, clauses: Sequence[_Clause], matching: tantivy.Query
    ) -> dict[str, int]:
        aggregation = {"points": {"terms": {"field": GEO_POINT, "size": MAX_GEO_POINTS}}}
        result = self._aggregate(searcher, generation, ("points", _key(clauses)), matching, aggregation)
        if result["points"].get("sum_other_doc_count"):
            raise ValueError(f"more than {MAX_GEO_POINTS} distinct locations match; add a radius or filters")
        return {bucket["key"]: bucket["doc_count"] for bucket in result["points"]["buckets"]}

    # -- matching -------------------------------------------------------------------------------------

    def _clauses(self, searcher: tantivy.Searcher, generation: int, query: SearchQuery) -> list[_Clause]:
        """Visible documents matching the text, filters, ranges and radius: the conjunction of these clauses.
        Only visible documents have the fields searched, so each clause matches visible documents only."""
        tokens = self._analyzer.analyze(query.text or "")
        clauses = []
        vocabularies = self._text_vocabularies(searcher, generation) if tokens else {}
        for position, token in enumerate(tokens):
            as_prefix = query.prefix and position == len(tokens) - 1
            scored = self._text_query(token, as_prefix, vocabularies)
            unscored = self._names_query(token, as_prefix, vocabularies.get(NAMES_TEXT))
            clauses.append(_Clause(None, ("text", token, as_prefix), scored, unscored))
        for name, values in query.filters.items():
            if values:
                key = ("filter", name, tuple(sorted(map(str, values))))
                clauses.append(_Clause(name, key, _constant(self._filter(name, values))))
        for name, (low, high) in query.ranges.items():
            if low is not None or high is not None:
                clauses.append(_Clause(name, ("range", name, low, high), _constant(self._range(name, low, high))))
        if query.geo is not None and query.geo.radius_km is not None:
            points = self._points_within(searcher, generation, query.geo, query.geo.radius_km)
            geo_query = tantivy.Query.term_set_query(self._schema, GEO_POINT, points) if points else _none()
            clauses.append(_Clause(None, ("geo", query.geo), _constant(geo_query)))
        return clauses

    def _text_query(
        self, token: str, as_prefix: bool, vocabularies: Mapping[str, TextVocabulary | None]
    ) -> tantivy.Query:
        """One query word in any text field, scored by the best field that has it (the same fixed weights as
        the Elasticsearch adapter); typos and prefixes count in make/model/trim, below exact matches."""
        alternatives = []
        for source, boost in TEXT_FIELD_BOOSTS.items():
            field_name = TEXT_FIELDS[source]
            vocabulary = vocabularies.get(source)
            exact = self._exact(field_name, token, vocabulary)
            if exact is not None:
                alternatives.append(tantivy.Query.const_score_query(exact, boost))
            if source in FUZZY_TEXT_SOURCES and (inexact := self._inexact(field_name, token, as_prefix, vocabulary)):
                alternatives.append(tantivy.Query.const_score_query(_disjunction(inexact), boost * INEXACT_WEIGHT))
        if len(alternatives) == 1:
            return alternatives[0]
        return tantivy.Query.disjunction_max_query(alternatives)

    def _names_query(self, token: str, as_prefix: bool, vocabulary: TextVocabulary | None) -> tantivy.Query:
        """The documents of `_text_query`, unscored: the word or what it reaches in `names_text`, or the word in
        the description."""
        alternatives = [tantivy.Query.term_query(self._schema, TEXT_FIELDS["description"], token)]
        exact = self._exact(NAMES_TEXT, token, vocabulary)
        if exact is not None:
            alternatives.append(exact)
        alternatives += self._inexact(NAMES_TEXT, token, as_prefix, vocabulary)
        return _disjunction(alternatives)

    def _exact(self, field_name: str, token: str, vocabulary: TextVocabulary | None) -> tantivy.Query | None:
        """The word itself, unless the field's vocabulary lacks it (13% of a text search's hits, measured)."""
        if vocabulary is not None and token not in vocabulary:
            return None
        return tantivy.Query.term_query(self._schema, field_name, token)

    def _inexact(
        self, field_name: str, token: str, as_prefix: bool, vocabulary: TextVocabulary | None
    ) -> list[tantivy.Query]:
        """What a word matches inexactly: a word one typo away (5+ letters) or, typed last, one it starts; the
        vocabulary's words it reaches (`tantivy_text`) as term queries or, without a vocabulary, tantivy's automata."""
        typo = len(token) >= FUZZY_MIN_LENGTH
        if not (typo or as_prefix):
            return []
        words = vocabulary.reached(token, typo=typo, prefix=as_prefix) if vocabulary is not None else None
        if words is not None:
            return [tantivy.Query.term_query(self._schema, field_name, word) for word in words]
        automata = []
        if typo:
            automata.append(tantivy.Query.fuzzy_term_query(self._schema, field_name, token, 1, True, False))
        if as_prefix:
            automata.append(tantivy.Query.fuzzy_term_query(self._schema, field_name, token, 0, True, True))
        return automata

    def _text_vocabularies(self, searcher: tantivy.Searcher, generation: int) -> dict[str, TextVocabulary | None]:
        """The words of make, model and trim of the visible documents, once per index generation, by field and
        all together under `NAMES_TEXT` (None for a field with more than `VOCABULARY_SIZE` distinct values, and
        then for `NAMES_TEXT`)."""
        return self._cached(self._vocabularies, generation, "words", lambda: self._read_vocabularies(searcher))

    def _read_vocabularies(self, searcher: tantivy.Searcher) -> dict[str, TextVocabulary | None]:
        aggregations = {
            source: {"terms": {"field": FACET_COLUMNS[source], "size": VOCABULARY_SIZE + 1}}
            for source in FUZZY_TEXT_SOURCES
        }
        result: dict[str, Any] = searcher.aggregate(_all(), aggregations)
        vocabularies: dict[str, TextVocabulary | None] = {}
        names: set[str] | None = set()
        for source in FUZZY_TEXT_SOURCES:
            if result[source].get("sum_other_doc_count"):
                vocabularies[source] = names = None
                continue
            words: set[str] = set()
            for bucket in result[source]["buckets"]:
                if bucket["key"] == NO_VALUE:
                    continue
                words.update(self._analyzer.analyze(indexed_text(source, str(bucket["key"]))))
            vocabularies[source] = TextVocabulary(words)
            if names is not None:
                names |= words
        vocabularies[NAMES_TEXT] = None if names is None else TextVocabulary(names)
        return vocabularies

    def _points_within(
        self, searcher: tantivy.Searcher, generation: int, geo: GeoFilter, radius_km: float
    ) -> list[str]:
        """The distinct document locations within the radius (exact great-circle distance)."""
        (lat_low, lat_high), lon_bounds = bounding_box(geo, radius_km)
        locations = self._locations(searcher, generation)
        if locations is not None:
            candidates = locations.points[bisect_left(locations.lats, lat_low) : bisect_right(locations.lats, lat_high)]
        else:
            candidates = self._points_in_box(searcher, generation, geo, radius_km, lat_low, lat_high, lon_bounds)
        inside = []
        for lat, lon, key in candidates:
            if lon_bounds is not None and not lon_bounds[0] <= lon <= lon_bounds[1]:
                continue
            if haversine_km(geo.lat, geo.lon, lat, lon) <= radius_km:
                inside.append(key)
        return inside

    def _locations(self, searcher: tantivy.Searcher, generation: int) -> _Locations | None:
        """Every distinct location of the visible documents, by latitude, once per index generation; None when
        there are more than `LOCATION_TABLE_SIZE` (then each radius asks the index for the locations in its box)."""
        return self._cached(self._location_table, generation, "locations", lambda: self._read_locations(searcher))

    def _read_locations(self, searcher: tantivy.Searcher) -> _Locations | None:
        aggregation = {"points": {"terms": {"field": GEO_POINT, "size": LOCATION_TABLE_SIZE}}}
        result: dict[str, Any] = searcher.aggregate(VISIBLE, aggregation)
        if result["points"].get("sum_other_doc_count"):
            return None
        points = sorted((*parse_geo_point(bucket["key"]), bucket["key"]) for bucket in result["points"]["buckets"])
        return _Locations([lat for lat, _, _ in points], points)

    def _points_in_box(
        self,
        searcher: tantivy.Searcher,
        generation: int,
        geo: GeoFilter,
        radius_km: float,
        lat_low: float,
        lat_high: float,
        lon_bounds: tuple[float, float] | None,
    ) -> list[tuple[float, float, str]]:
        box = [tantivy.Query.range_query(self._schema, "lat", tantivy.FieldType.Float, lat_low, lat_high)]
        if lon_bounds is not None:
            box.append(tantivy.Query.range_query(self._schema, "lon", tantivy.FieldType.Float, *lon_bounds))
        aggregation = {"points": {"terms": {"field": GEO_POINT, "size": MAX_GEO_POINTS}}}
        key = ("box", geo.lat, geo.lon, radius_km)
        result = self._aggregate(searcher, generation, key, _conjunction_of(box), aggregation)
        if result["points"].get("sum_other_doc_count"):
            raise ValueError(f"the radius covers more than {MAX_GEO_POINTS} distinct locations; narrow it")
        return [(*parse_geo_point(bucket["key"]), bucket["key"]) for bucket in result["points"]["buckets"]]

    def _filter(self, name: str, values: Sequence[FilterValue]) -> tantivy.Query:
        terms: list[Any]
        if name in INTEGER_COLUMNS:
            terms = [number for number in map(_integral, values) if number is not None]
        elif name in FLOAT_FIELDS:
            terms = [float(value) for value in values]
        else:
            terms = [keyword_value(value) for value in values]
        if not terms:
            return _none()
        if len(terms) > MAX_LAZY_TERMS:
            return tantivy.Query.term_set_query(self._schema, name, terms)
        # Term queries, unlike a term set (read whole into a bitset first), let the conjunction skip ahead.
        return _disjunction([tantivy.Query.term_query(self._schema, name, term) for term in terms])

    def _range(self, name: str, low: float | None, high: float | None) -> tantivy.Query:
        if name in INTEGER_FIELDS:
            int_low, int_high = integer_bounds(low, high)
            if int_low is not None and int_high is not None and int_low > int_high:
                return _none()
            return tantivy.Query.range_query(self._schema, name, tantivy.FieldType.Integer, int_low, int_high)
        float_low = None if low is None else float(low)
        float_high = None if high is None else float(high)
        if float_low is not None and float_high is not None and float_low > float_high:
            return _none()
        return tantivy.Query.range_query(self._schema, name, tantivy.FieldType.Float, float_low, float_high)

    # -- facets ---------------------------------------------------------------------------------------

    def _start_facets(
        self,
        searcher: tantivy.Searcher,
        generation: int,
        clauses: Sequence[_Clause],
        query: SearchQuery,
        spare_cores: bool,
    ) -> list[tuple[_FacetPass, _FacetCounts | Future[_FacetCounts] | None]]:
        """Disjunctive facets: a field's counts come from the search without that field's own constraints.

        Facets of unconstrained fields share one aggregation over the search; each constrained field that is
        faceted costs one more. Results are cached per index generation (browsing by make repeats them).
        While fewer searches run than there are cores, the passes start on the facet threads as the caller
        fetches the hits (tantivy releases the GIL), so a lone search uses every core; `_finish_facets` runs
        itself each pass no thread has begun, so a search never waits in the facet threads' queue. With the
        cores busy, a search runs its passes itself: handing them over then cost throughput (measured). Two API
        workers judging spare cores by their share (one each) instead: throughput within this machine's noise,
        a lone search's p95 7.6 -> 11.6 ms (measured, not kept).
        """
        started: list[tuple[_FacetPass, _FacetCounts | Future[_FacetCounts] | None]] = []
        for facet_pass in self._facet_passes(clauses, query):
            kept = self._kept(self._facet_cache, generation, facet_pass.key)
            if kept is not None:
                started.append((facet_pass, kept))
            elif spare_cores:
                started.append((facet_pass, FACET_THREADS.submit(self._count, searcher, generation, facet_pass, query)))
            else:
                started.append((facet_pass, None))
        return started

    def _facet_passes(self, clauses: Sequence[_Clause], query: SearchQuery) -> list[_FacetPass]:
        """One pass for the facets of unconstrained fields (the search itself) and one per constrained field,
        without that field's clauses; the first is folded into a range field's pass when it can be (`_fold_main`)."""
        constrained = {clause.field for clause in clauses if clause.field is not None}
        by_pass: dict[str | None, list[str]] = {}
        for name in dict.fromkeys([*query.facets, *query.range_facets]):
            by_pass.setdefault(name if name in constrained else None, []).append(name)
        passes: dict[str | None, _FacetPass] = {}
        for excluded, names in by_pass.items():
            kept = [clause for clause in clauses if excluded is None or clause.field != excluded]
            aggregations = _facet_aggregations(query, names)
            key = ("facets", _key(kept), tuple(sorted(aggregations)), _edges_key(query, names))
            passes[excluded] = _FacetPass(names, key, _conjunction(kept), aggregations)
        return _fold_main(passes, query)

    def _finish_facets(
        self,
        searcher: tantivy.Searcher,
        generation: int,
        started: Sequence[tuple[_FacetPass, _FacetCounts | Future[_FacetCounts] | None]],
        query: SearchQuery,
        result: SearchResult,
    ) -> None:
        for facet_pass, pending in started:
            if isinstance(pending, _FacetCounts):
                counted = pending
            elif pending is None or pending.cancel():
                counted = self._count(searcher, generation, facet_pass, query)
            else:
                counted = pending.result()
            counted.copy_into(result)

    def _count(
        self, searcher: tantivy.Searcher, generation: int, facet_pass: _FacetPass, query: SearchQuery
    ) -> _FacetCounts:
        return self._cached(
            self._facet_cache,
            generation,
            facet_pass.key,
            lambda: facet_pass.read(searcher.aggregate(facet_pass.matching, facet_pass.aggregations), query),
        )

    def _aggregate(
        self,
        searcher: tantivy.Searcher,
        generation: int,
        key: Hashable,
        matching: tantivy.Query,
        aggregations: dict[str, Any],
    ) -> dict[str, Any]:
        return self._cached(
            self._aggregation_cache, generation, key, lambda: searcher.aggregate(matching, aggregations)
        )

    def _kept(self, cache: _Recent[T], generation: int, key: Hashable) -> T | None:
        """What `cache` keeps for `key` in this index generation, or None."""
        with self._cache_lock:
            cache_key = (generation, key)
            return cache.take(cache_key) if cache_key in cache else None

    def _cached(self, cache: _Recent[T], generation: int, key: Hashable, compute: Callable[[], T]) -> T:
        """`compute()`, or its result kept in `cache` for this index generation (kept only if the generation is
        still current when it is done)."""
        cache_key = (generation, key)
        with self._cache_lock:
            if cache_key in cache:
                return cache.take(cache_key)
        value = compute()
        with self._cache_lock:
            if generation == self._generation:
                cache.put(cache_key, value)
        return value

    # -- lifecycle ------------------------------------------------------------------------------------

    async def refresh_reader(self) -> None:
        """Readers: load the latest commit if there is one (one small file read when there is not)."""
        if self._writer is not None:
            return
        stamp = self._read_meta_stamp()
        if stamp != self._meta_stamp:
            self._meta_stamp = stamp
            self._index.reload()
            self._new_generation()

    def _read_meta_stamp(self) -> bytes | None:
        # tantivy replaces meta.json (write + rename) on every commit, and its opstamp grows with each one, so the
        # content tells commits apart. Inode and mtime do not always: a freed inode is reused at once, and mtimes
        # tick at the kernel's coarse clock, so two commits a few ms apart could look like one and leave a reader
        # stale until the next commit.
        try:
            return (self.path / "meta.json").read_bytes()
        except FileNotFoundError:
            return None

    def _new_generation(self) -> None:
        with self._cache_lock:
            self._generation += 1
            for cache in (
                self._facet_cache,
                self._aggregation_cache,
                self._first_hits,
                self._location_table,
                self._vocabularies,
            ):
                cache.values.clear()

    async def health(self) -> IndexHealth:
        try:
            searcher = self._index.searcher()
            documents = searcher.num_docs
            segments = searcher.num_segments
        except ValueError as exc:
            return IndexHealth(ok=False, engine=self.engine, documents=0, detail=str(exc))
        role = "writer" if self._writer is not None else "reader"
        detail = f"{self.path} ({role}); segments={segments}; pending={len(self._pending)}"
        return IndexHealth(ok=True, engine=self.engine, documents=documents, detail=detail)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._close_writer)

    def _close_writer(self) -> None:
        with self._lock:
            if self._writer is None:
                return
            self._commit_locked()
            self._recent.clear()
            # Consumes the writer: waits for merges, then releases the directory lock.
            self._writer.wait_merging_threads()
            self._writer = None


def _tombstone(document: VehicleDocument, source: str, position: int) -> VehicleDocument:
    positions = {**document.positions, source: position}
    return document.model_copy(update={"deleted": True, "version": document.version + 1, "positions": positions})


def _facet_counts(buckets: list[dict[str, Any]]) -> dict[str, int]:
    """The `FACET_SIZE` most frequent values of a terms aggregation, without a facet column's no-value bucket."""
    counts = {}
    for bucket in buckets:
        key = bucket["key"]
        if key == NO_VALUE:
            continue
        counts[key if type(key) is str else _bucket_key(key)] = bucket["doc_count"]  # a numeric field's are numbers
        if len(counts) == FACET_SIZE:
            break
    return counts


def _bucket_key(key: Any) -> str:
    return keyword_value(key) or ""


def _integral(value: FilterValue) -> int | None:
    """`value` as a 64-bit integer, or None when it names none ("abc", 2.5, 2**70): such a filter matches nothing."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not number.is_integer() or not -(2**63) <= number < 2**63:
        return None
    return int(number)


def _count(result: tantivy.SearchResult) -> int:
    # tantivy's stub omits `count`, which `search(..., count=True)` fills.
    return int(result.count or 0)  # type: ignore[attr-defined]


def _stored(document: tantivy.Document) -> tuple[str, bytes]:
    """The id and stored JSON of a tantivy document."""
    document_id, stored = document.get_first("id"), document.get_first("doc")
    if not isinstance(document_id, str) or not isinstance(stored, bytes):
        raise SearchIndexUnavailable("a tantivy document lacks its id or stored JSON; rebuild the index")
    return document_id, stored


def _all() -> tantivy.Query:
    return tantivy.Query.all_query()


def _none() -> tantivy.Query:
    return tantivy.Query.empty_query()


def _constant(query: tantivy.Query) -> tantivy.Query:
    """A filter: it narrows the matches without touching their relevance."""
    return tantivy.Query.const_score_query(query, 0.0)


def _disjunction(queries: Sequence[tantivy.Query]) -> tantivy.Query:
    if len(queries) == 1:
        return queries[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, query) for query in queries])


def _conjunction_of(queries: Sequence[tantivy.Query]) -> tantivy.Query:
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, query) for query in queries])


def _conjunction(clauses: Sequence[_Clause], *, scored: bool = False) -> tantivy.Query:
    """Every clause matches visible documents only (their fields are written for no other): a conjunction of
    none is the visible documents."""
    if not clauses:
        return VISIBLE
    return _conjunction_of([clause.query if scored else clause.matching for clause in clauses])


def _facet_aggregations(query: SearchQuery, names: Sequence[str]) -> dict[str, Any]:
    aggregations: dict[str, Any] = {}
    for name in names:
        if name in query.facets:
            if name in FACET_COLUMNS:  # one more: the column's no-value bucket may take a place
                terms = {"field": FACET_COLUMNS[name], "size": FACET_SIZE + 1}
            else:
                terms = {"field": name, "size": FACET_SIZE}
            aggregations[f"terms:{name}"] = {"terms": terms}
        if name in query.range_facets:
            edges = query.range_facets[name]
            if _standard_edges(name, edges):
                size = len(edges) + 2  # the buckets and the no-value step
                aggregations[f"steps:{name}"] = {"terms": {"field": STEP_COLUMNS[name], "size": size}}
            else:
                aggregations[f"range:{name}"] = {"range": {"field": name, "ranges": _ranges(edges)}}
    return aggregations


def _fold_main(passes: dict[str | None, _FacetPass], query: SearchQuery) -> list[_FacetPass]:
    """The passes by the field each leaves out (None: the search's own), the search's own folded into the pass
    without a range field's one clause: that range as a range bucket, the search's facets counted inside it. One
    evaluation of the clauses fewer (text searches with a range: 1.84 -> 1.37 ms for the two passes, measured);
    tantivy counts the sub-aggregations in the filler buckets around the range too, which the fold still beats."""
    main = passes.get(None)
    for field, ranged in passes.items():
        within = None if field is None or main is None else _range_bucket(field, query)
        if main is None or within is None:
            continue
        aggregations = {
            **ranged.aggregations,
            FOLDED: {"range": {"field": field, "ranges": [within]}, "aggs": main.aggregations},
        }
        folded = _FacetPass(
            [*ranged.names, *main.names], ("folded", ranged.key, main.key), ranged.matching, aggregations, within
        )
        return [folded, *(other for excluded, other in passes.items() if excluded not in (None, field))]
    return list(passes.values())


def _range_bucket(field: str, query: SearchQuery) -> dict[str, float] | None:
    """The range bucket (from inclusive, to exclusive) equal to `field`'s constraint when that is one range whose
    bounds a float holds exactly; otherwise None."""
    if query.filters.get(field) or field not in query.ranges:
        return None
    low: float | None
    high: float | None
    low, high = query.ranges[field]
    if field in INTEGER_FIELDS:
        int_low, int_high = integer_bounds(low, high)
        low, high = int_low, None if int_high is None else int_high + 1
    elif high is not None:
        high = math.nextafter(float(high), math.inf)
    if low is None and high is None:
        return None
    if (low is not None and high is not None and low >= high) or any(
        bound is not None and abs(bound) >= 2**53 for bound in (low, high)
    ):
        return None
    return {**({"from": float(low)} if low is not None else {}), **({"to": float(high)} if high is not None else {})}


def _key(clauses: Sequence[_Clause]) -> Hashable:
    return tuple(clause.key for clause in clauses)


def _edges_key(query: SearchQuery, names: Sequence[str]) -> Hashable:
    return tuple((name, tuple(query.range_facets[name])) for name in names if name in query.range_facets)


def _standard_edges(name: str, edges: Sequence[float]) -> bool:
    standard = STANDARD_RANGE_EDGES.get(name)
    return standard is not None and len(edges) == len(standard) and all(map(float.__eq__, map(float, edges), standard))


def _ranges(edges: Sequence[float]) -> list[dict[str, float]]:
    """tantivy range buckets `[..e0), [e0..e1), ..., [en..)` (from inclusive, to exclusive)."""
    bounds = list(zip([None, *edges], [*edges, None], strict=True))
    return [
        {**({"from": float(low)} if low is not None else {}), **({"to": float(high)} if high is not None else {})}
        for low, high in bounds
    ]


def _distance(geo: GeoFilter, fields: Mapping[str, Any]) -> float | None:
    """Kilometres from `geo` to a hit (`fields`: its stored JSON, read)."""
    lat, lon = fields.get("lat"), fields.get("lon")
    if lat is None or lon is None:
        return None
    return haversine_km(geo.lat, geo.lon, lat, lon)


def _sort_values(name: str, fields: Mapping[str, Any], score: float | None, geo: GeoFilter | None) -> list[Any]:
    if name == RELEVANCE:
        return [score, fields["id"]]
    if name == DISTANCE:
        return [None if geo is None else _distance(geo, fields), fields["id"]]
    return [fields.get(name), fields["id"]]
