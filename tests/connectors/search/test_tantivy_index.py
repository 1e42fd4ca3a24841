"""What only the embedded engine has: the directory lock, readers in other processes, commit batching."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from connectors.search import tantivy_index
from connectors.search.factory import create_search_index
from connectors.search.port import SearchIndexUnavailable, SearchQuery
from connectors.search.tantivy_index import IndexLocked, TantivyIndex
from connectors.search.tantivy_schema import SCHEMA_VERSION
from connectors.search.tantivy_versions import VersionedTantivyIndex
from hub.settings import IndexSettings
from tests.connectors.search.conftest import VehicleFactory, make_vehicle

READER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from connectors.search.port import SearchQuery
    from connectors.search.tantivy_index import TantivyIndex

    async def main() -> None:
        index = TantivyIndex(Path(sys.argv[1]), writer=False)
        print((await index.search(SearchQuery())).total, flush=True)
        sys.stdin.readline()
        await index.refresh_reader()
        print((await index.search(SearchQuery())).total, flush=True)
        await index.close()

    asyncio.run(main())
    """
)


async def test_a_reader_process_sees_a_commit_after_refresh(index_dir: Path, vehicle: VehicleFactory) -> None:
    writer = TantivyIndex(index_dir, writer=True)
    await writer.upsert([vehicle(1)])
    await writer.flush()
    reader = subprocess.Popen(
        [sys.executable, "-c", READER_SCRIPT, str(index_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[3],
    )
    try:
        assert reader.stdout is not None
        assert reader.stdin is not None
        assert await asyncio.wait_for(asyncio.to_thread(reader.stdout.readline), 30) == "1\n"

        await writer.upsert([vehicle(2), vehicle(3)])
        await writer.flush()
        reader.stdin.write("go\n")
        reader.stdin.flush()

        assert await asyncio.wait_for(asyncio.to_thread(reader.stdout.readline), 30) == "3\n"
    finally:
        reader.kill()
        reader.wait()
        await writer.close()


async def test_readers_see_commits_only_after_refresh(index_dir: Path, vehicle: VehicleFactory) -> None:
    writer = TantivyIndex(index_dir, writer=True)
    reader = TantivyIndex(index_dir, writer=False)
    await writer.upsert([vehicle(1)])
    await writer.flush()
    assert (await reader.search(SearchQuery())).total == 0  # one generation per refresh: caches stay exact

    await reader.refresh_reader()
    assert (await reader.search(SearchQuery())).total == 1
    await writer.close()


async def test_a_second_writer_fails_until_the_first_closes(index_dir: Path, vehicle: VehicleFactory) -> None:
    first = TantivyIndex(index_dir, writer=True)
    await first.upsert([vehicle(1)])
    with pytest.raises(IndexLocked, match="already open for writing"):
        TantivyIndex(index_dir, writer=True)

    await first.close()

    second = TantivyIndex(index_dir, writer=True)
    assert await second.get("1") == vehicle(1)
    await second.close()


def test_a_writer_in_another_process_is_refused(index_dir: Path) -> None:
    script = "import sys; from pathlib import Path; from connectors.search.tantivy_index import TantivyIndex\n"
    script += "TantivyIndex(Path(sys.argv[1]), writer=True); print('opened')"
    holder = TantivyIndex(index_dir, writer=True)
    try:
        other = subprocess.run(
            [sys.executable, "-c", script, str(index_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=Path(__file__).parents[3],
        )
    finally:
        asyncio.run(holder.close())
    assert other.returncode != 0
    assert "IndexLocked" in other.stderr


async def test_a_reader_refuses_writes(index_dir: Path, vehicle: VehicleFactory) -> None:
    reader = TantivyIndex(index_dir, writer=False)
    with pytest.raises(SearchIndexUnavailable, match="read-only"):
        await reader.upsert([vehicle(1)])


async def test_a_large_pending_batch_commits_by_itself(index_dir: Path, vehicle: VehicleFactory) -> None:
    writer = TantivyIndex(index_dir, writer=True, max_pending=100)
    await writer.upsert([vehicle(n) for n in range(99)])
    assert (await writer.search(SearchQuery(limit=0))).total == 0

    await writer.upsert([vehicle(99)])

    assert (await writer.search(SearchQuery(limit=0))).total == 100
    await writer.close()


async def test_close_commits_pending_writes(index_dir: Path, vehicle: VehicleFactory) -> None:
    writer = TantivyIndex(index_dir, writer=True)
    await writer.upsert([vehicle(1)])
    await writer.close()

    reader = TantivyIndex(index_dir, writer=False)
    assert await reader.get("1") == vehicle(1)


async def test_get_many_of_thousands_of_ids(index_dir: Path, vehicle: VehicleFactory) -> None:
    writer = TantivyIndex(index_dir, writer=True)
    await writer.upsert([vehicle(n) for n in range(3000)])
    await writer.flush()

    found = await writer.get_many([str(n) for n in range(0, 6000, 2)])

    assert len(found) == 1500
    assert found["2998"] == vehicle(2998)
    await writer.close()


async def test_the_writer_reads_its_latest_writes_back_without_the_index(
    index_dir: Path, vehicle: VehicleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tantivy_index, "RECENT_DOCUMENTS", 3)
    writer = TantivyIndex(index_dir, writer=True)
    written = [vehicle(n, mileage=n) for n in range(5)]
    await writer.upsert(written)
    await writer.flush()
    newer = vehicle(0, mileage=99, version=2)
    await writer.upsert([newer])
    await writer.flush()
    await writer.delete(["4"])
    searched: list[str] = []
    addresses_of = writer._addresses_of

    def spying(searcher: Any, document_ids: list[str]) -> list[Any]:
        searched.extend(document_ids)
        return addresses_of(searcher, document_ids)

    monkeypatch.setattr(writer, "_addresses_of", spying)

    found = await writer.get_many([str(n) for n in range(5)])

    assert found == {"0": newer, "1": written[1], "2": written[2], "3": written[3]}
    assert sorted(searched) == ["1", "2"]  # 0 and 3 are among the 3 latest writes; 4 is deleted
    await writer.close()


def test_the_factory_opens_a_versioned_directory(tmp_path: Path) -> None:
    settings = IndexSettings(index_backend="tantivy", index_path=tmp_path, index_name="cars")
    index = create_search_index(settings, writer=False)
    assert isinstance(index, VersionedTantivyIndex)
    assert index.path == tmp_path / f"cars_v{SCHEMA_VERSION}"


def test_the_factory_needs_a_url_for_elasticsearch(tmp_path: Path) -> None:
    settings = IndexSettings(index_backend="elasticsearch", index_path=tmp_path, elasticsearch_url=None)
    with pytest.raises(SearchIndexUnavailable, match="ELASTICSEARCH_URL"):
        create_search_index(settings, writer=True)


async def test_tombstone_older_than_scans_past_one_page(
    index_dir: Path, vehicle: VehicleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connectors.search.tantivy_index.SCAN_PAGE", 7)
    monkeypatch.setattr("connectors.search.tantivy_index.TOMBSTONE_BATCH", 5)
    writer = TantivyIndex(index_dir, writer=True, max_pending=11)
    await writer.upsert([vehicle(n, positions={"pg.vehicles": n}) for n in range(60)])

    assert await writer.tombstone_older_than("pg.vehicles", 45) == 45

    found = await writer.get_many([str(n) for n in range(60)])
    assert [n for n in range(60) if found[str(n)].deleted] == list(range(45))
    assert (await writer.search(SearchQuery(limit=0))).total == 15
    await writer.close()


async def test_a_lookup_past_the_aggregation_limit_reads_the_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tantivy_index, "MAX_LOOKUP_BUCKETS", 3)
    index = TantivyIndex(tmp_path / "cars", writer=True)
    await index.upsert([make_vehicle(n, dealer_id=7 + n % 2, vin=f"vin{n % 3}") for n in range(12)])
    await index.flush()

    assert await index.live_ids_by("dealer_id", ["7"]) == {"7": [str(n) for n in range(0, 12, 2)]}
    assert await index.live_ids_by("vin", ["VIN1"]) == {"VIN1": ["1", "4", "7", "10"]}
    await index.close()


async def test_a_vin_lookup_names_single_documents_by_id_rank_and_stays_exact_for_any_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested_calls: list[list[str]] = []
    nested = TantivyIndex._nested_lookup

    def counting_nested(
        self: TantivyIndex, searcher: Any, matching: Any, indexed: str, values: list[str], total: int
    ) -> Any:
        nested_calls.append(values)
        return nested(self, searcher, matching, indexed, values, total)

    monkeypatch.setattr(TantivyIndex, "_nested_lookup", counting_nested)
    index = TantivyIndex(tmp_path / "cars", writer=True)
    await index.upsert(
        [
            make_vehicle(1, vin="VINA"),
            make_vehicle(2, vin="VINB"),
            make_vehicle(3, vin="VINB"),
            make_vehicle("abc", vin="VINC"),
            make_vehicle(4, vin="VING", deleted=True),
        ]
    )
    await index.flush()

    assert await index.live_ids_by("vin", ["VINA", "VINZ"]) == {"VINA": ["1"]}
    assert nested_calls == []  # one document per VIN: the ranks alone answer
    assert await index.live_ids_by("vin", ["VINA", "VINB", "VINC", "VING"]) == {
        "VINA": ["1"],
        "VINB": ["2", "3"],
        "VINC": ["abc"],
    }
    assert sorted(nested_calls[-1]) == ["VINB", "VINC"]  # only the values the ranks cannot name

    # "007" and "7" share a rank: the check sees it and the whole lookup goes the nested way.
    await index.upsert([make_vehicle("007", vin="VIND"), make_vehicle(7, vin="VINE")])
    await index.flush()
    nested_calls.clear()
    assert await index.live_ids_by("vin", ["VINA", "VIND", "VINE"]) == {
        "VINA": ["1"],
        "VIND": ["007"],
        "VINE": ["7"],
    }
    assert sorted(nested_calls[-1]) == ["VINA", "VIND", "VINE"]
    assert await index.live_ids_by("vin", ["VIND"]) == {"VIND": ["007"]}
    await index.close()
