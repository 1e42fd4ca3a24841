"""The production search engine: Elasticsearch 8/9 over its REST API (httpx), behind a versioned alias.

Writers index through the alias `<index_name>` (e.g. `vehicles`) into a concrete `<index_name>_v<N>`,
created with its alias at `start()` when missing. A mapping change bumps `SCHEMA_VERSION`: the next writer's
`start()` then builds `_v<N+1>` from the older index with `_reindex` (versions kept) and moves the alias onto
it in one step; readers see the old index until then. Whole-document writes use external versioning from
`VehicleDocument.version`: Elasticsearch refuses a version that is not newer (409), which counts as success
since a newer document is stored.
Request bodies are built by `connectors.search.elasticsearch_bodies`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from connectors.search.elasticsearch_bodies import (
    DEFAULT_BULK_MAX_BYTES,
    DEFAULT_REFRESH_INTERVAL,
    SCHEMA_VERSION,
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
    tombstone_body,
)
from connectors.search.fields import apply_partial, validate_lookup, validate_query
from connectors.search.port import IndexHealth, SearchIndex, SearchIndexUnavailable, SearchQuery, SearchResult
from schemas.vehicle import VehicleDocument

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
MGET_BATCH = 1000
NDJSON = {"content-type": "application/x-ndjson"}


class BulkItemsFailed(SearchIndexUnavailable):
    """Elasticsearch refused some documents for good (e.g. a mapping error); `failures` names them."""

    def __init__(self, failures: list[dict[str, Any]]) -> None:
        self.failures = failures
        shown = "; ".join(f"{failure['id']}: {failure['status']} {failure['error']}" for failure in failures[:5])
        super().__init__(f"Elasticsearch refused {len(failures)} bulk item(s): {shown}")


class ElasticsearchIndex(SearchIndex):
    """`SearchIndex` over Elasticsearch. Call `start()` before use (the factory's `open_search_index` does).

    Visibility: writes are searchable after the index's `refresh_interval` or `flush()` (`_refresh`);
    `get`/`get_many` are real-time in Elasticsearch, so the writer reads its own writes at once.
    Retries: requests answered 429/502/503/504 or failing to connect are retried with exponential
    back-off; within a bulk response only the items rejected with 429 are sent again.
    """

    engine = "elasticsearch"

    def __init__(
        self,
        url: str,
        *,
        alias: str = "vehicles",
        writer: bool = True,
        bulk_max_bytes: int = DEFAULT_BULK_MAX_BYTES,
        refresh_interval: str = DEFAULT_REFRESH_INTERVAL,
        max_retries: int = 6,
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 10.0,
        timeout_seconds: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.alias = alias
        self.concrete_index = concrete_index_name(alias)
        self._writer = writer
        self._bulk_max_bytes = bulk_max_bytes
        self._refresh_interval = refresh_interval
        self._max_retries = max_retries
        self._backoff_seconds = backoff_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._timeout_seconds = timeout_seconds
        self._started = False
        self._client = httpx.AsyncClient(base_url=url, timeout=timeout_seconds, transport=transport)

    async def start(self) -> None:
        """Writer: create the concrete index and its alias unless the alias exists. Readers: nothing.

        Idempotent; the writer also runs it before its first write if nobody called it.
        """
        if not self._writer or self._started:
            return
        await self._create_alias()
        self._started = True

    async def _create_alias(self) -> None:
        existing = await self._request("GET", f"/_alias/{self.alias}", accept=(200, 404))
        if existing.status_code == 200:
            await self._migrate(sorted(existing.json()))
            return
        created = await self._request(
            "PUT",
            f"/{self.concrete_index}",
            json=index_definition(self.alias, refresh_interval=self._refresh_interval),
            accept=(200, 400),
        )
        if created.status_code == 200:
            logger.info("created Elasticsearch index %s behind alias %s", self.concrete_index, self.alias)
            return
        if _error_type(created) != "resource_already_exists_exception":
            raise SearchIndexUnavailable(f"cannot create index {self.concrete_index}: {created.text}")
        # The index survived a start that stopped before its alias was added.
        actions = {"actions": [{"add": {"index": self.concrete_index, "alias": self.alias, "is_write_index": True}}]}
        await self._request("POST", "/_aliases", json=actions)

    async def _migrate(self, current: list[str]) -> None:
        """Move the alias from indices of older schema versions onto a copy in this version's mapping."""
        if self.concrete_index in current:
            return
        versions = [schema_version_of(self.alias, name) for name in current]
        if not current or any(version is None or version > SCHEMA_VERSION for version in versions):
            # A newer deployment (or someone by hand) owns the alias: never move it backwards.
            logger.warning(
                "alias %s points at %s, not %s; leaving it alone", self.alias, ", ".join(current), self.concrete_index
            )
            return
        definition = index_definition(self.alias, refresh_interval=self._refresh_interval)
        del definition["aliases"]
        created = await self._request("PUT", f"/{self.concrete_index}", json=definition, accept=(200, 400))
        if created.status_code == 400 and _error_type(created) != "resource_already_exists_exception":
            raise SearchIndexUnavailable(f"cannot create index {self.concrete_index}: {created.text}")
        logger.info(
            "rebuilding %s from %s (schema version %d)", self.concrete_index, ", ".join(current), SCHEMA_VERSION
        )
        copied = await self._request(
            "POST",
            "/_reindex",
            json=reindex_body(current, self.concrete_index),
            params={"refresh": "true", "wait_for_completion": "true"},
            unbounded=True,
        )
        failures = copied.json().get("failures") or []
        if failures:
            raise SearchIndexUnavailable(f"reindex into {self.concrete_index} failed: {str(failures[:3])[:500]}")
        await self._request("POST", "/_aliases", json=swap_alias_body(self.alias, current, self.concrete_index))
        logger.info("alias %s moved to %s; %s kept for rollback", self.alias, self.concrete_index, ", ".join(current))

    # -- transport ------------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return float(min(self._max_backoff_seconds, self._backoff_seconds * 2 ** (attempt - 1)))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Sequence[int] = (200,),
        unbounded: bool = False,
    ) -> httpx.Response:
        if json is not None:
            content, headers = orjson.dumps(json), {"content-type": "application/json"}
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._client.request(
                    method,
                    path,
                    content=content,
                    params=params,
                    headers=headers,
                    timeout=None if unbounded else self._timeout_seconds,
                )
            except httpx.TransportError as exc:
                if attempt > self._max_retries:
                    raise SearchIndexUnavailable(f"Elasticsearch {method} {path}: {exc!r}") from exc
            else:
                if response.status_code in accept:
                    return response
                if response.status_code not in RETRY_STATUSES or attempt > self._max_retries:
                    raise SearchIndexUnavailable(
                        f"Elasticsearch {method} {path} answered {response.status_code}: {response.text[:500]}"
                    )
            await asyncio.sleep(self._backoff(attempt))

    async def _bulk(self, actions: Sequence[BulkAction]) -> None:
        await self.start()
        for chunk in bulk_chunks(actions, self._bulk_max_bytes):
            await self._bulk_chunk(chunk)

    async def _bulk_chunk(self, actions: list[BulkAction]) -> None:
        attempt = 0
        while actions:
            response = await self._request("POST", f"/{self.alias}/_bulk", content=bulk_body(actions), headers=NDJSON)
            data = response.json()
            if not data.get("errors"):
                return
            rejected: list[BulkAction] = []
            failures: list[dict[str, Any]] = []
            for action, item in zip(actions, data["items"], strict=True):
                ((operation, result),) = item.items()
                status = result.get("status", 500)
                # 409: a newer external version is stored; 404 on delete: already gone.
                if status < 300 or status == 409 or (operation == "delete" and status == 404):
                    continue
                if status == 429:
                    rejected.append(action)
                else:
                    failures.append({"id": action.document_id, "status": status, "error": result.get("error")})
            if failures:
                raise BulkItemsFailed(failures)
            attempt += 1
            if rejected and attempt > self._max_retries:
                raise SearchIndexUnavailable(
                    f"Elasticsearch kept rejecting {len(rejected)} bulk item(s) with 429 after {attempt} attempts"
                )
            if rejected:
                await asyncio.sleep(self._backoff(attempt))
            actions = rejected

    # -- writes ---------------------------------------------------------------------------------------

    async def upsert(self, documents: Sequence[VehicleDocument]) -> None:
        await self._bulk([index_action(document) for document in documents])

    async def update_partial(self, document_id: str, fields: Mapping[str, Any], version: int) -> None:
        # A scripted `_update` cannot carry an external version, so this reads, merges and re-indexes.
        current = await self.get(document_id)
        if current is None:
            raise KeyError(f"no vehicle document {document_id!r} to update")
        await self._bulk([index_action(apply_partial(current, fields, version))])

    async def delete(self, document_ids: Sequence[str]) -> None:
        await self._bulk([delete_action(document_id) for document_id in document_ids])

    async def tombstone_older_than(self, source: str, position: int) -> int:
        await self.start()
        # Server-side: no documents travel, and `conflicts=proceed` leaves alone any document the
        # indexer rewrote meanwhile (its newer version already reflects the truncate or a later insert).
        response = await self._request(
            "POST",
            f"/{self.alias}/_update_by_query",
            json=tombstone_body(source, position),
            params={"conflicts": "proceed", "refresh": "true", "slices": "auto", "wait_for_completion": "true"},
            unbounded=True,
        )
        return int(response.json().get("updated", 0))

    async def flush(self) -> None:
        await self._request("POST", f"/{self.alias}/_refresh")

    # -- reads ----------------------------------------------------------------------------------------

    async def get(self, document_id: str) -> VehicleDocument | None:
        response = await self._request("GET", f"/{self.alias}/_doc/{quote(document_id, safe='')}", accept=(200, 404))
        data = response.json()
        if response.status_code == 404:
            if "error" in data:
                raise SearchIndexUnavailable(f"Elasticsearch index {self.alias} is missing: {data['error']}")
            return None
        return VehicleDocument.model_validate(data["_source"])

    async def get_many(self, document_ids: Sequence[str]) -> dict[str, VehicleDocument]:
        found: dict[str, VehicleDocument] = {}
        unique = list(dict.fromkeys(document_ids))
        for start in range(0, len(unique), MGET_BATCH):
            response = await self._request(
                "POST", f"/{self.alias}/_mget", json={"ids": unique[start : start + MGET_BATCH]}
            )
            for doc in response.json()["docs"]:
                if doc.get("found"):
                    found[doc["_id"]] = VehicleDocument.model_validate(doc["_source"])
        return found

    async def live_ids_by(self, field: str, values: Sequence[str]) -> dict[str, list[str]]:
        indexed = validate_lookup(field)
        wanted = list(dict.fromkeys(values))
        found: dict[str, list[str]] = {}
        if not wanted:
            return found
        after: list[Any] | None = None
        while True:
            response = await self._request("POST", f"/{self.alias}/_search", json=live_ids_body(indexed, wanted, after))
            page, after = parse_live_ids_page(response.json(), indexed)
            for value, ids in page.items():
                found.setdefault(value, []).extend(ids)
            if after is None:
                return found

    async def search(self, query: SearchQuery) -> SearchResult:
        validate_query(query)
        response = await self._request("POST", f"/{self.alias}/_search", json=search_body(query))
        return parse_search_response(response.json(), query)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def refresh_reader(self) -> None:
        """Nothing to do: every Elasticsearch client sees each refresh."""

    async def health(self) -> IndexHealth:
        try:
            cluster = (await self._request("GET", "/_cluster/health")).json()
            count = (await self._request("GET", f"/{self.alias}/_count")).json()
        except SearchIndexUnavailable as exc:
            return IndexHealth(ok=False, engine=self.engine, documents=0, detail=str(exc))
        status = cluster.get("status", "unknown")
        return IndexHealth(
            ok=status in ("green", "yellow"),
            engine=self.engine,
            documents=int(count.get("count", 0)),
            detail=f"cluster {cluster.get('cluster_name', '?')} {status}; alias {self.alias}",
        )

    async def close(self) -> None:
        await self._client.aclose()


def _error_type(response: httpx.Response) -> str | None:
    try:
        error = response.json().get("error")
    except ValueError:
        return None
    return error.get("type") if isinstance(error, dict) else None
