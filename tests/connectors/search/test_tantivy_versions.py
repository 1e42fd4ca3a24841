"""Index versions and the atomic switch: the pointer file, pruning, and readers that never fail a search."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import orjson
import pytest

from connectors.search.factory import create_search_index
from connectors.search.port import SearchIndexUnavailable, SearchQuery
from connectors.search.tantivy_index import TantivyIndex
from connectors.search.tantivy_schema import SCHEMA_VERSION
from connectors.search.tantivy_versions import IndexVersions, VersionedTantivyIndex
from hub.settings import IndexSettings
from tests.connectors.search.conftest import make_vehicle


async def build_version(path: Path, make: str, count: int) -> None:
    """A committed index of `count` vehicles of one make."""
    index = TantivyIndex(path, writer=True)
    await index.upsert([make_vehicle(n, make=make) for n in range(count)])
    await index.close()


def test_without_a_pointer_the_original_directory_is_current(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path, "cars")

    assert versions.current() == tmp_path / f"cars_v{SCHEMA_VERSION}"
    assert versions.previous() is None
    assert versions.stamp() is None


async def test_promote_replaces_the_pointer_atomically_and_keeps_the_previous(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path, "cars")
    new = versions.new_version()
    await build_version(new, "Ford", 3)

    versions.promote(new)

    assert versions.current() == new
    assert versions.previous() == tmp_path / f"cars_v{SCHEMA_VERSION}"
    assert orjson.loads(versions.pointer.read_bytes())["current"] == new.name
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    stamp = versions.stamp()
    newer = versions.new_version()
    await build_version(newer, "Kia", 1)
    versions.promote(newer)
    assert versions.stamp() != stamp
    assert versions.previous() == new


async def test_promote_refuses_a_directory_without_a_committed_index(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path, "cars")
    empty = versions.new_version()
    empty.mkdir()

    with pytest.raises(SearchIndexUnavailable, match="no committed tantivy index"):
        versions.promote(empty)
    with pytest.raises(ValueError, match="not a version directory"):
        versions.promote(tmp_path / "elsewhere")
    assert versions.stamp() is None


async def test_prune_keeps_the_current_and_the_previous_version_only(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path, "cars")
    original = versions.current()
    await build_version(original, "Toyota", 1)
    built = []
    for make in ("Ford", "Kia"):
        path = versions.new_version()
        await build_version(path, make, 1)
        versions.promote(path)
        built.append(path)
    unrelated = tmp_path / "cars_backup"
    unrelated.mkdir()

    assert versions.prune() == [original]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(
        [built[0].name, built[1].name, "cars_backup"]
    )


def test_the_factory_builds_versioned_indexes(tmp_path: Path) -> None:
    settings = IndexSettings(index_backend="tantivy", index_path=tmp_path, index_name="cars")
    index = create_search_index(settings, writer=False)

    assert isinstance(index, VersionedTantivyIndex)
    assert index.path == tmp_path / f"cars_v{SCHEMA_VERSION}"


async def test_a_reader_switches_versions_while_searches_hammer_it_and_none_fails(tmp_path: Path) -> None:
    """Five promotions (each followed by a prune, as the worker does) under 4 concurrent searchers."""
    versions = IndexVersions(tmp_path, "cars")
    sizes = {"Toyota": 40}
    await build_version(versions.current(), "Toyota", 40)
    reader = VersionedTantivyIndex(versions, writer=False)
    errors: list[BaseException] = []
    seen: list[tuple[str, int]] = []
    stop = threading.Event()

    async def hammer() -> None:
        while not stop.is_set():
            try:
                await reader.refresh_reader()
                result = await reader.search(SearchQuery(facets=["make"], limit=5))
                makes = list(result.facets["make"])
                assert len(makes) == 1, f"a search mixed versions: {result.facets}"
                assert result.total == sizes[makes[0]], f"a partial version: {makes[0]} {result.total}"
                assert (await reader.get("3")) is not None
                seen.append((makes[0], result.total))
            except BaseException as exc:  # noqa: BLE001 - every failure counts
                errors.append(exc)
                return

    def searchers() -> None:
        async def main() -> None:
            await asyncio.gather(*(hammer() for _ in range(4)))

        asyncio.run(main())

    thread = threading.Thread(target=searchers)
    thread.start()
    try:
        for make in ("Ford", "Kia", "Honda", "Mazda", "Subaru"):
            path = versions.new_version()
            sizes[make] = 30 + len(sizes)
            await build_version(path, make, sizes[make])
            before = len(seen)
            versions.promote(path)
            versions.prune()
            for _ in range(200):
                if errors or any(found == make for found, _ in seen[before:]):
                    break
                await asyncio.sleep(0.02)
            assert not errors, errors
            assert any(found == make for found, _ in seen[before:]), f"the reader never switched to {make}"
    finally:
        stop.set()
        thread.join(timeout=30)

    assert errors == []
    assert len(seen) > 50
    assert reader.path == versions.current()


async def test_a_reader_keeps_its_version_when_the_pointer_names_no_index(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path, "cars")
    await build_version(versions.current(), "Toyota", 2)
    reader = VersionedTantivyIndex(versions, writer=False)
    versions.pointer.write_bytes(orjson.dumps({"current": f"cars_v{SCHEMA_VERSION}_20990101T000000000000Z"}))

    await reader.refresh_reader()

    assert reader.path == tmp_path / f"cars_v{SCHEMA_VERSION}"
    assert (await reader.search(SearchQuery())).total == 2
    assert not (tmp_path / f"cars_v{SCHEMA_VERSION}_20990101T000000000000Z").exists()


async def test_the_writer_adopts_a_new_version_and_releases_the_old_lock(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path, "cars")
    writer = VersionedTantivyIndex(versions, writer=True)
    old = writer.path
    await writer.upsert([make_vehicle(1, make="Toyota")])
    await writer.flush()
    new = versions.new_version()
    await build_version(new, "Ford", 2)
    versions.promote(new)

    await writer.adopt(TantivyIndex(new, writer=True))
    await writer.upsert([make_vehicle(9, make="Kia")])
    await writer.flush()

    assert writer.path == new
    assert (await writer.search(SearchQuery())).total == 3
    relock = TantivyIndex(old, writer=True)  # the old version's lock was released
    await relock.close()
    await writer.close()
