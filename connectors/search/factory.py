"""Builds the configured `SearchIndex` adapter; call it from a service's lifespan, never at import time."""

from __future__ import annotations

from connectors.search.elasticsearch_index import ElasticsearchIndex
from connectors.search.port import SearchIndex, SearchIndexUnavailable
from connectors.search.tantivy_versions import IndexVersions, VersionedTantivyIndex
from hub.settings import IndexSettings


def create_search_index(settings: IndexSettings, *, writer: bool) -> SearchIndex:
    """The adapter of `settings.index_backend`, not yet started (see `open_search_index`).

    `writer=True` is for the one process that writes (the stream worker): on tantivy it takes the
    directory's writer lock at once (`IndexLocked` if another process holds it); on Elasticsearch it creates
    the versioned index and its alias when missing, at `start()` or before the first write. Readers (API
    workers) pass False. Tantivy indexes are versioned: the adapter follows `<index_path>/<index_name>.current`
    (see `tantivy_versions`), so `auction-hub reindex` can switch readers and the writer to a rebuilt copy.
    """
    if settings.index_backend == "tantivy":
        return VersionedTantivyIndex(IndexVersions(settings.index_path, settings.index_name), writer=writer)
    if not settings.elasticsearch_url:
        raise SearchIndexUnavailable(
            "AUCTION_HUB_INDEX_BACKEND=elasticsearch needs AUCTION_HUB_ELASTICSEARCH_URL (e.g. http://127.0.0.1:9200)"
        )
    return ElasticsearchIndex(settings.elasticsearch_url, alias=settings.index_name, writer=writer)


async def open_search_index(settings: IndexSettings, *, writer: bool) -> SearchIndex:
    """`create_search_index`, then whatever the engine needs before the first call (the Elasticsearch
    writer ensures its index and alias exist). `await index.close()` at shutdown."""
    index = create_search_index(settings, writer=writer)
    try:
        await index.start()
    except BaseException:
        await index.close()
        raise
    return index
