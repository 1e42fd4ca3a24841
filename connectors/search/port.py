"""The search index port: what the indexer writes and the search API reads, whatever the engine."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.vehicle import VehicleDocument

FilterValue = str | int | float | bool
SortOrder = Literal["asc", "desc"]


class SearchIndexUnavailable(RuntimeError):
    """The engine cannot be reached or refused the request; callers retry (indexer) or answer 503 (API)."""


@dataclass(frozen=True)
class SearchQuery:
    """A search over visible documents (not deleted, status searchable).

    `filters`: field -> accepted values (OR within one field, AND across fields).
    `ranges`: field -> (lowest, highest), either bound may be None; bounds are inclusive.
    `facets`: fields to count values of, over the documents matching the query.
    """

    text: str | None = None
    filters: Mapping[str, Sequence[FilterValue]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    facets: Sequence[str] = ()
    sort: Sequence[tuple[str, SortOrder]] = ()
    limit: int = 20
    offset: int = 0


@dataclass
class SearchResult:
    total: int
    hits: list[VehicleDocument]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)


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
