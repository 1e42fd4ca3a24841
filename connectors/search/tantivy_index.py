"""The embedded search engine: a tantivy index in a local directory, one writer process and many readers.

The writer (the stream worker) holds tantivy's directory lock; readers (API workers) open the same
directory without a writer and pick up each commit through tantivy's reload-on-commit policy, or at once
with `refresh_reader()`.

Each document is stored whole as the JSON `VehicleDocument` (`doc`, so `get` returns exactly what was
written) beside indexed copies of the fields search needs:

- `id`: raw term, stored and fast (term lookups, a stable tie-breaker for cursors);
- `<field>_text` / `description`: tokenized text (ASCII-folded, lowercased, positions kept for phrase and
  prefix queries);
- keyword fields (`fields.KEYWORD_FIELDS`): raw terms, fast, for filters and terms facets;
- numeric fields (`fields.NUMERIC_FIELDS`): indexed and fast, for ranges, sorts and range buckets;
- `visible` (searchable: not deleted, searchable status) and `deleted`, both indexed and fast.

The directory is versioned (`<index_path>/<index_name>_v<SCHEMA_VERSION>`): a schema change starts an empty
index that the indexer fills by replaying its topics, never a mixed one.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import tantivy

from connectors.search.fields import (
    FACET_SIZE,
    FLOAT_FIELDS,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    RELEVANCE,
    TEXT_FIELD_BOOSTS,
    apply_partial,
    document_keywords,
    integer_bounds,
    keyword_value,
    validate_query,
)
from connectors.search.port import (
    FilterValue,
    IndexHealth,
    SearchIndex,
    SearchIndexUnavailable,
    SearchQuery,
    SearchResult,
)
from schemas.vehicle import VehicleDocument

SCHEMA_VERSION = 1
TEXT_TOKENIZER = "vehicle_text"
# Indexed name of each full-text source (the keyword field keeps the plain name).
TEXT_FIELDS: dict[str, str] = {
    "make": "make_text",
    "model": "model_text",
    "trim": "trim_text",
    "description": "description",
}

DEFAULT_HEAP_BYTES = 128 * 1024 * 1024
DEFAULT_WRITER_THREADS = 2
DEFAULT_MAX_PENDING = 10_000
# Writes and id lookups run on the caller's thread whatever their size: handing them to a thread pool
# made the worker's threads fight over the GIL (measured: 1,163 -> 1,524 snapshot rows/s without the hop).
# Searches, commits and scans still run in a thread so the API's event loop stays responsive.
INLINE_BATCH = 10**9
TOMBSTONE_BATCH = 1000
SCAN_PAGE = 50_000

T = TypeVar("T")


class IndexLocked(SearchIndexUnavailable):
    """Another process (or handle) already writes this index directory."""


def build_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, fast=True, tokenizer_name="raw", index_option="basic")
    builder.add_bytes_field("doc", stored=True, indexed=False)
    for text_field in TEXT_FIELDS.values():
        builder.add_text_field(text_field, tokenizer_name=TEXT_TOKENIZER, index_option="position")
    for name in KEYWORD_FIELDS:
        builder.add_text_field(name, fast=True, tokenizer_name="raw", index_option="basic")
    for name in INTEGER_FIELDS:
        builder.add_integer_field(name, indexed=True, fast=True)
    for name in FLOAT_FIELDS:
        builder.add_float_field(name, indexed=True, fast=True)
    builder.add_boolean_field("visible", indexed=True, fast=True)
    builder.add_boolean_field("deleted", indexed=True, fast=True)
    return builder.build()


def text_analyzer() -> tantivy.TextAnalyzer:
    """Splits on non-alphanumerics, drops tokens over 40 bytes, lowercases, folds accents (Citroën = citroen)."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


def index_directory(base: Path, index_name: str) -> Path:
    return base / f"{index_name}_v{SCHEMA_VERSION}"


def index_json(document: VehicleDocument, stored: bytes) -> str:
    """The `IndexWriter.add_json` payload of one document (`stored` is its JSON, kept whole)."""
    fields: dict[str, Any] = {
        "id": document.id,
        "doc": base64.b64encode(stored).decode("ascii"),
        "visible": document.searchable,
        "deleted": document.deleted,
    }
    fields.update(document_keywords(document))
    for source, text_field in TEXT_FIELDS.items():
        text = getattr(document, source)
        if text:
            fields[text_field] = text
    for name in INTEGER_FIELDS + FLOAT_FIELDS:
        value = getattr(document, name)
        if value is not None:
            fields[name] = value
    return orjson.dumps(fields).decode("utf-8")


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
        self._dirty = False
        self._index = self._open_index()
        self._writer: tantivy.IndexWriter | None = None
        if writer:
            self._writer = self._open_writer(heap_bytes, writer_threads)
            # The writer reloads itself right after each commit, so it needs no background reloads.
            self._index.config_reader(reload_policy="manual")
        else:
            self._index.config_reader(reload_policy="commit")

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
        self._pending.clear()
        self._dirty = False

    # -- reads ----------------------------------------------------------------------------------------

    async def get(self, document_id: str) -> VehicleDocument | None:
        return (await self.get_many([document_id])).get(document_id)

    async def get_many(self, document_ids: Sequence[str]) -> dict[str, VehicleDocument]:
        if not document_ids:
            return {}
        return await self._run(len(document_ids), lambda: self._get_many_sync(document_ids))

    def _get_many_sync(self, document_ids: Sequence[str]) -> dict[str, VehicleDocument]:
        wanted = set(document_ids)
        found: dict[str, bytes] = {}
        with self._lock:
            for document_id in wanted & self._pending.keys():
                stored = self._pending[document_id]
                if stored is not None:
                    found[document_id] = stored
            committed = wanted - self._pending.keys()
            if committed:
                searcher = self._index.searcher()
                query = tantivy.Query.term_set_query(self._schema, "id", list(committed))
                for _, address in searcher.search(query, len(committed)).hits:
                    document_id, stored = _stored(searcher.doc(address))
                    found[document_id] = stored
        return {document_id: VehicleDocument.model_validate_json(stored) for document_id, stored in found.items()}

    async def search(self, query: SearchQuery) -> SearchResult:
        validate_query(query)
        return await asyncio.to_thread(self._search_sync, query)

    def _search_sync(self, query: SearchQuery) -> SearchResult:
        searcher = self._index.searcher()
        matching = self._matching(query)
        if query.limit == 0:
            # tantivy refuses a top-docs limit of 0.
            total = _count(searcher.search(matching, 1, count=True))
            stored: list[bytes] = []
        elif len(query.sort) > 1:
            total, stored = self._multi_sorted(searcher, matching, query)
        else:
            total, stored = self._top_docs(searcher, matching, query)
        facets = self._facets(searcher, matching, query.facets) if query.facets else {}
        hits = [VehicleDocument.model_validate_json(document) for document in stored]
        return SearchResult(total=total, hits=hits, facets=facets)

    def _top_docs(
        self, searcher: tantivy.Searcher, matching: tantivy.Query, query: SearchQuery
    ) -> tuple[int, list[bytes]]:
        options: dict[str, Any] = {}
        if query.sort and query.sort[0][0] != RELEVANCE:
            name, order = query.sort[0]
            options = {"order_by_field": name, "order": tantivy.Order.Asc if order == "asc" else tantivy.Order.Desc}
        result = searcher.search(matching, query.limit, count=True, offset=query.offset, **options)
        return _count(result), [_stored(searcher.doc(address))[1] for _, address in result.hits]

    def _multi_sorted(
        self, searcher: tantivy.Searcher, matching: tantivy.Query, query: SearchQuery
    ) -> tuple[int, list[bytes]]:
        # Top docs sort on one fast field only; the top_hits aggregation sorts on several and returns ids.
        top_hits = {
            "size": query.limit,
            "from": query.offset,
            "sort": [{name: order} for name, order in query.sort],
            "docvalue_fields": ["id"],
        }
        result = searcher.aggregate(matching, {"top": {"top_hits": top_hits}})
        ids = [hit["docvalue_fields"]["id"][0] for hit in result["top"]["hits"]]
        total = _count(searcher.search(matching, 1, count=True))
        if not ids:
            return total, []
        by_id: dict[str, bytes] = {}
        for _, address in searcher.search(tantivy.Query.term_set_query(self._schema, "id", ids), len(ids)).hits:
            document_id, stored = _stored(searcher.doc(address))
            by_id[document_id] = stored
        return total, [by_id[document_id] for document_id in ids if document_id in by_id]

    def _facets(
        self, searcher: tantivy.Searcher, matching: tantivy.Query, names: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        aggregations = {name: {"terms": {"field": name, "size": FACET_SIZE}} for name in names}
        result = searcher.aggregate(matching, aggregations)
        return {
            name: {_bucket_key(bucket["key"]): bucket["doc_count"] for bucket in result[name]["buckets"]}
            for name in names
        }

    def _matching(self, query: SearchQuery) -> tantivy.Query:
        """Visible documents matching the text (all tokens, each in any text field), filters and ranges."""
        term = tantivy.Query.term_query
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = [
            (tantivy.Occur.Must, tantivy.Query.const_score_query(term(self._schema, "visible", True), 0.0))
        ]
        for token in self._analyzer.analyze(query.text or ""):
            per_field = [
                tantivy.Query.boost_query(term(self._schema, TEXT_FIELDS[source], token), boost)
                for source, boost in TEXT_FIELD_BOOSTS.items()
            ]
            clauses.append((tantivy.Occur.Must, tantivy.Query.disjunction_max_query(per_field)))
        for name, values in query.filters.items():
            if values:
                clauses.append((tantivy.Occur.Must, tantivy.Query.const_score_query(self._filter(name, values), 0.0)))
        for name, (low, high) in query.ranges.items():
            if low is not None or high is not None:
                clauses.append((tantivy.Occur.Must, tantivy.Query.const_score_query(self._range(name, low, high), 0.0)))
        return tantivy.Query.boolean_query(clauses)

    def _filter(self, name: str, values: Sequence[FilterValue]) -> tantivy.Query:
        terms: list[Any]
        if name in INTEGER_FIELDS:
            terms = [int(value) for value in values if float(value).is_integer()]
        elif name in FLOAT_FIELDS:
            terms = [float(value) for value in values]
        else:
            terms = [keyword_value(value) for value in values]
        if not terms:
            return tantivy.Query.empty_query()
        return tantivy.Query.term_set_query(self._schema, name, terms)

    def _range(self, name: str, low: float | None, high: float | None) -> tantivy.Query:
        if name in INTEGER_FIELDS:
            int_low, int_high = integer_bounds(low, high)
            if int_low is not None and int_high is not None and int_low > int_high:
                return tantivy.Query.empty_query()
            return tantivy.Query.range_query(self._schema, name, tantivy.FieldType.Integer, int_low, int_high)
        float_low = None if low is None else float(low)
        float_high = None if high is None else float(high)
        return tantivy.Query.range_query(self._schema, name, tantivy.FieldType.Float, float_low, float_high)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def refresh_reader(self) -> None:
        self._index.reload()

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
            # Consumes the writer: waits for merges, then releases the directory lock.
            self._writer.wait_merging_threads()
            self._writer = None


def _tombstone(document: VehicleDocument, source: str, position: int) -> VehicleDocument:
    positions = {**document.positions, source: position}
    return document.model_copy(update={"deleted": True, "version": document.version + 1, "positions": positions})


def _bucket_key(key: Any) -> str:
    return keyword_value(key) or ""


def _count(result: tantivy.SearchResult) -> int:
    # tantivy's stub omits `count`, which `search(..., count=True)` fills.
    return int(result.count or 0)  # type: ignore[attr-defined]


def _stored(document: tantivy.Document) -> tuple[str, bytes]:
    """The id and stored JSON of a tantivy document."""
    document_id, stored = document.get_first("id"), document.get_first("doc")
    if not isinstance(document_id, str) or not isinstance(stored, bytes):
        raise SearchIndexUnavailable("a tantivy document lacks its id or stored JSON; rebuild the index")
    return document_id, stored
