"""Versions of the embedded index and the atomic switch between them (online reindex).

Layout under `index_path`:

    <name>.current          pointer: JSON naming the active directory (and the one before it)
    <name>_v<SCHEMA>        the directory of an install that never reindexed (the default when no pointer)
    <name>_v<SCHEMA>_<UTC>  directories built by `auction-hub reindex`

`promote` replaces the pointer atomically (temporary file, fsync, rename), so a reader sees either the old
directory or the new one, never a torn pointer. Readers notice the switch with one `stat` of the pointer
(`stamp`) in `refresh_reader()` and open the new directory beside the old one: searches already running
keep the searcher they started with, so a swap never fails a request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from connectors.search.port import IndexHealth, SearchIndex, SearchIndexUnavailable, SearchQuery, SearchResult
from connectors.search.tantivy_index import TantivyIndex
from connectors.search.tantivy_schema import SCHEMA_VERSION, index_directory
from schemas.vehicle import VehicleDocument

log = logging.getLogger(__name__)

Stamp = tuple[int, int] | None


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old or the new content, whole, even after a crash."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class IndexVersions:
    """The version directories of one index and the pointer naming the active one."""

    def __init__(self, base: Path, name: str) -> None:
        self.base = base
        self.name = name
        self.pointer = base / f"{name}.current"
        self._pattern = re.compile(rf"^{re.escape(name)}_v\d+(_\d{{8}}T\d{{12}}Z)?$")

    def _read(self) -> dict[str, Any] | None:
        try:
            content = orjson.loads(self.pointer.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError as exc:
            raise SearchIndexUnavailable(f"the index pointer {self.pointer} is not valid JSON: {exc}") from exc
        if not isinstance(content, dict) or not isinstance(content.get("current"), str):
            raise SearchIndexUnavailable(f"the index pointer {self.pointer} names no current directory")
        return content

    def current(self) -> Path:
        """The active directory; without a pointer, the install's original `<name>_v<SCHEMA>`."""
        content = self._read()
        if content is None:
            return index_directory(self.base, self.name)
        return self.base / str(content["current"])

    def previous(self) -> Path | None:
        content = self._read()
        if content is None or not content.get("previous"):
            return None
        return self.base / str(content["previous"])

    def stamp(self) -> Stamp:
        """Changes whenever the pointer is replaced (a rename gives it a new inode): cheap change detection."""
        try:
            status = os.stat(self.pointer)
        except FileNotFoundError:
            return None
        return status.st_ino, status.st_mtime_ns

    def new_version(self) -> Path:
        """A fresh, not yet existing directory name for the current schema: `<name>_v<SCHEMA>_<UTC time>`."""
        while True:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            path = self.base / f"{self.name}_v{SCHEMA_VERSION}_{stamp}Z"
            if not path.exists():
                return path

    def is_version(self, path: Path) -> bool:
        return path.parent == self.base and bool(self._pattern.match(path.name))

    def promote(self, directory: Path) -> None:
        """Make `directory` the active version (atomic); the one it replaces is kept as `previous`."""
        if not self.is_version(directory):
            raise ValueError(f"{directory} is not a version directory of {self.base / self.name}")
        if not (directory / "meta.json").exists():
            raise SearchIndexUnavailable(f"refusing to promote {directory}: it holds no committed tantivy index")
        old = self.current()
        content = {
            "current": directory.name,
            "previous": old.name if old != directory else None,
            "promoted_at": datetime.now(UTC).isoformat(),
        }
        write_atomically(self.pointer, orjson.dumps(content, option=orjson.OPT_INDENT_2))
        log.info("index %s now reads %s (was %s)", self.name, directory.name, old.name)

    def versions(self) -> list[Path]:
        if not self.base.exists():
            return []
        return sorted(p for p in self.base.iterdir() if p.is_dir() and self._pattern.match(p.name))

    def prune(self, *, keep: Sequence[Path] = ()) -> list[Path]:
        """Delete version directories other than the current one, the previous one and `keep`.

        The previous version stays because readers that have not refreshed since the switch still read it.
        """
        kept = {self.current(), *keep}
        previous = self.previous()
        if previous is not None:
            kept.add(previous)
        removed = []
        for path in self.versions():
            if path not in kept:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        if removed:
            log.info("pruned index versions: %s", ", ".join(p.name for p in removed))
        return removed


class VersionedTantivyIndex(SearchIndex):
    """`SearchIndex` over the active version of a tantivy index; follows `IndexVersions` switches.

    Every port method runs on the `TantivyIndex` of the active version, taken once per call, so a call that
    started before a switch finishes on the version it started with. Readers switch in `refresh_reader()`
    when the pointer changed; the writer switches when told to (`adopt`), after the reindex replayed the
    changes it applied meanwhile.
    """

    engine = "tantivy"

    def __init__(self, versions: IndexVersions, *, writer: bool, **options: Any) -> None:
        self.versions = versions
        self.writer = writer
        self._options = options
        self._stamp = versions.stamp()
        self._active = TantivyIndex(versions.current(), writer=writer, **options)
        self._switching = asyncio.Lock()

    @property
    def active(self) -> TantivyIndex:
        return self._active

    @property
    def path(self) -> Path:
        """The directory of the active version."""
        return self._active.path

    # -- writes -----------------------------------------------------------------------------------------

    async def upsert(self, documents: Sequence[VehicleDocument]) -> None:
        await self._active.upsert(documents)

    async def update_partial(self, document_id: str, fields: Mapping[str, Any], version: int) -> None:
        await self._active.update_partial(document_id, fields, version)

    async def delete(self, document_ids: Sequence[str]) -> None:
        await self._active.delete(document_ids)

    async def tombstone_older_than(self, source: str, position: int) -> int:
        return await self._active.tombstone_older_than(source, position)

    async def flush(self) -> None:
        await self._active.flush()

    # -- reads ------------------------------------------------------------------------------------------

    async def get(self, document_id: str) -> VehicleDocument | None:
        return await self._active.get(document_id)

    async def get_many(self, document_ids: Sequence[str]) -> dict[str, VehicleDocument]:
        return await self._active.get_many(document_ids)

    async def live_ids_by(self, field: str, values: Sequence[str]) -> dict[str, list[str]]:
        return await self._active.live_ids_by(field, values)

    async def search(self, query: SearchQuery) -> SearchResult:
        return await self._active.search(query)

    # -- versions ---------------------------------------------------------------------------------------

    async def refresh_reader(self) -> None:
        """Readers: switch to a newly promoted version (one `stat` when there is none), then reload."""
        if not self.writer and self.versions.stamp() != self._stamp:
            await self._follow_pointer()
        await self._active.refresh_reader()

    async def _follow_pointer(self) -> None:
        async with self._switching:
            stamp = self.versions.stamp()
            if stamp == self._stamp:
                return  # another request switched meanwhile
            try:
                target = self.versions.current()
            except SearchIndexUnavailable as exc:
                log.warning("keeping %s: %s", self._active.path.name, exc)
                return
            if target != self._active.path:
                if not (target / "meta.json").exists():
                    # Never open (and so create) a directory the writer has not built: keep serving the old one.
                    log.warning("the index pointer names %s, which holds no index; keeping %s", target, self.path)
                    return
                opened = await asyncio.to_thread(TantivyIndex, target, writer=False, **self._options)
                old, self._active = self._active, opened
                log.info("reader switched from %s to %s", old.path.name, target.name)
                await old.close()
            self._stamp = stamp

    async def adopt(self, index: TantivyIndex) -> None:
        """Writer: make `index` (a writer on the newly promoted version) the live one; close the old writer."""
        old, self._active = self._active, index
        self._stamp = self.versions.stamp()
        await old.close()

    # -- lifecycle --------------------------------------------------------------------------------------

    async def health(self) -> IndexHealth:
        return await self._active.health()

    async def start(self) -> None:
        await self._active.start()

    async def close(self) -> None:
        await self._active.close()
