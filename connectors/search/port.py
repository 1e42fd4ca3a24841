"""The search index port: what the indexer writes and the search API reads, whatever the engine."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import orjson

from schemas.vehicle import VehicleDocument

FilterValue = str | int | float | bool
SortOrder = Literal["asc", "desc"]


class SearchIndexUnavailable(RuntimeError):
    """The engine cannot be reached or refused the request; callers retry (indexer) or answer 503 (API)."""


# Pseudo sort fields: text relevance (best first) and distance from `SearchQuery.geo` (nearest first).
RELEVANCE = "_score"
DISTANCE = "_distance"


@dataclass(frozen=True)
class GeoFilter:
    """A point buyers search around; with `radius_km`, only documents within it match (great-circle distance)."""

    lat: float
    lon: float
    radius_km: float | None = None


@dataclass(frozen=True)
class SearchQuery:
    """A search over visible documents (not deleted, status searchable).

    `text`: every word must match make, model, trim or description; words of 5+ letters also match with one
    typo (make/model/trim), and with `prefix` the last word also matches as a prefix (type-ahead).
    `filters`: field -> accepted values (OR within one field, AND across fields).
    `ranges`: field -> (lowest, highest), either bound may be None; bounds are inclusive.
    `geo`: origin for distance sorting and, with a radius, a location filter.
    `facets`: fields to count values of; `range_facets`: field -> ascending bucket edges, counted as
    `[..e0), [e0..e1), ..., [en..)`. Facets are disjunctive: a field's counts ignore that field's own
    filter and range (so a shopper sees how many cars each other make would give), never the others.
    `sort`: at most one (field, order) pair, `RELEVANCE` (the default) or `DISTANCE`; the document id (numeric
    ids numerically) always breaks ties, so the order is total and pages never overlap. Documents lacking
    the sort value come last.
    `search_after`: the `sort_values` of the last hit of the previous page (deep paging without offsets).
    """

    text: str | None = None
    prefix: bool = True
    filters: Mapping[str, Sequence[FilterValue]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    geo: GeoFilter | None = None
    facets: Sequence[str] = ()
    range_facets: Mapping[str, Sequence[float]] = field(default_factory=dict)
    sort: Sequence[tuple[str, SortOrder]] = ()
    limit: int = 20
    offset: int = 0
    search_after: Sequence[Any] | None = None


@dataclass(frozen=True)
class RangeBucket:
    """Documents with `low <= value < high` (None: unbounded)."""

    low: float | None
    high: float | None
    count: int


class StoredHits(Sequence[VehicleDocument]):
    """Hits as the engine stored them: each document's JSON (as `VehicleDocument` serializes itself) read into
    `fields`, a `VehicleDocument` made of it only when a hit is asked for. An answer over HTTP reads the fields
    alone: validating a hit and dumping it again cost ~18 µs of a search's CPU (measured, 20 hits: 0.36 ms)."""

    def __init__(self, stored: Sequence[bytes]) -> None:
        self._stored = list(stored)
        self.fields: list[dict[str, Any]] = [orjson.loads(raw) for raw in self._stored]
        self._documents: list[VehicleDocument | None] = [None] * len(self._stored)

    def __len__(self) -> int:
        return len(self._stored)

    @overload
    def __getitem__(self, index: int) -> VehicleDocument: ...

    @overload
    def __getitem__(self, index: slice) -> list[VehicleDocument]: ...

    def __getitem__(self, index: int | slice) -> VehicleDocument | list[VehicleDocument]:
        if isinstance(index, slice):
            return [self[position] for position in range(len(self))[index]]
        document = self._documents[index]
        if document is None:
            document = self._documents[index] = VehicleDocument.model_validate_json(self._stored[index])
        return document

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"StoredHits({list(self)!r})"


@dataclass
class SearchResult:
    total: int
    hits: Sequence[VehicleDocument]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    range_facets: dict[str, list[RangeBucket]] = field(default_factory=dict)
    # Per hit: the values it was sorted by, id last; pass the last one as `search_after` for the next page.
    sort_values: list[list[Any]] = field(default_factory=list)
    # Per hit: kilometres from `SearchQuery.geo`, when the query has one.
    distances_km: list[float | None] = field(default_factory=list)


@dataclass(frozen=True)
class IndexHealth:
    ok: bool
    engine: str
    documents: int
    detail: str = ""


class SearchIndex(abc.ABC):
    """Port over a search engine holding one `VehicleDocument` per vehicle id.

    Writes are idempotent. `upsert` replaces whole documents; an engine with external versioning
    (Elasticsearch) refuses a write whose `version` is not newer than the stored one, and the adapter
    treats that refusal as success. Writes become visible to readers after `flush` (embedded engine:
    a commit; Elasticsearch: its refresh interval, or at once when `flush` asks for a refresh).
    """

    engine: str = "abstract"

    @abc.abstractmethod
    async def upsert(self, documents: Sequence[VehicleDocument]) -> None:
        """Write whole documents (tombstones included), replacing any stored document of the same id."""

    @abc.abstractmethod
    async def update_partial(self, document_id: str, fields: Mapping[str, Any], version: int) -> None:
        """Set some fields of one stored document and its version; a missing document is an error."""

    @abc.abstractmethod
    async def delete(self, document_ids: Sequence[str]) -> None:
        """Remove documents physically (tombstones are written with `upsert`)."""

    @abc.abstractmethod
    async def tombstone_older_than(self, source: str, position: int) -> int:
        """Mark deleted every document whose `positions[source]` is below `position` (a TRUNCATE).

        Returns how many documents it marked.
        """

    @abc.abstractmethod
    async def get(self, document_id: str) -> VehicleDocument | None:
        """The stored document, tombstones included, or None."""

    @abc.abstractmethod
    async def get_many(self, document_ids: Sequence[str]) -> dict[str, VehicleDocument]:
        """The stored documents of these ids (tombstones included); absent ids are left out."""

    @abc.abstractmethod
    async def live_ids_by(self, field: str, values: Sequence[str]) -> dict[str, list[str]]:
        """Per value, the ids of the live (not deleted) documents holding it, as of the latest `flush`.

        `field`: one of `fields.LOOKUP_FIELDS` ("dealer_id"; "vin", matched trimmed and upper case), else
        `ValueError`. Values no live document holds are left out. Every document, searchable or not, counts.
        """

    @abc.abstractmethod
    async def search(self, query: SearchQuery) -> SearchResult:
        """Visible documents matching the query, with facet counts."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Make every accepted write durable and visible to readers."""

    @abc.abstractmethod
    async def refresh_reader(self) -> None:
        """Make this handle see the latest flushed writes (readers in other processes)."""

    @abc.abstractmethod
    async def health(self) -> IndexHealth:
        """Whether the engine answers, and how many documents it holds."""

    async def start(self) -> None:  # noqa: B027 - optional hook, most engines need nothing
        """Prepare the engine before the first call (e.g. create the index and its alias); idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the engine's resources (writer lock, connections)."""
