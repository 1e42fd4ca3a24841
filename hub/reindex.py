"""`auction-hub reindex`: rebuild the search index from PostgreSQL while streaming goes on, then swap it in.

Tantivy only for now. The command and the worker follow the protocol of `streams/reindex.py`:

1. name a new version directory and write `requested`; wait for the worker's `journaling`;
2. create a TEMPORARY logical replication slot exporting its snapshot (consistent position S), read dealers
   then vehicles in that snapshot (COPY, the connector's own snapshot code) and turn every row into the
   document the worker would build from a snapshot record at S;
3. commit and close the new version, write `built`; the worker replays what it applied meanwhile, promotes
   the new version (readers follow the pointer) and writes `swapped`.

With no worker running (its writer lock is free), the command holds that lock itself, builds and promotes
alone; the worker, when it starts, resumes from its committed Kafka offsets onto the new version, where
positions skip whatever the snapshot already holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from connectors.postgres.envelope import Position, TableEvents
from connectors.postgres.pgoutput import format_lsn, parse_lsn
from connectors.postgres.replication import ReplicationStream, SourceCatalog
from connectors.postgres.settings import PostgresConnectorSettings
from connectors.postgres.snapshot import SnapshotReader
from connectors.search.tantivy_index import IndexLocked, TantivyIndex
from connectors.search.tantivy_versions import IndexVersions
from hub.settings import IndexSettings
from schemas.vehicle import VehicleDocument
from streams.changes import DealerChange, DealerRefresh, VehicleUpsert, decode_dealer_change, decode_vehicle_change
from streams.documents import apply_vehicle_upsert, carry_other_sources
from streams.reindex import ReindexControl, ReindexState, pid_alive, utc_now

log = logging.getLogger(__name__)

BUILD_BATCH = 2000
POLL_S = 0.1


class ReindexSettings(PostgresConnectorSettings, IndexSettings):
    """The database (as the connector reads it: same tables, decimal handling) and the index to rebuild."""


class ReindexError(RuntimeError):
    """The reindex cannot go on; the message says why and what to do. Nothing was swapped."""


@dataclass(frozen=True)
class ReindexSummary:
    documents: int
    seconds: float
    old_version: str
    new_version: str
    snapshot_lsn: int
    mode: str  # "worker" (the worker swapped) or "standalone" (no worker ran)
    replayed: int = 0

    def describe(self) -> str:
        replayed = f", {self.replayed} streamed changes replayed by the worker" if self.mode == "worker" else ""
        return (
            f"reindexed {self.documents} documents in {self.seconds:.1f}s at snapshot {format_lsn(self.snapshot_lsn)}"
            f"{replayed}: {self.old_version} -> {self.new_version}"
        )


class _TemporarySlot(ReplicationStream):
    """A TEMPORARY slot: PostgreSQL drops it when this connection closes, whatever happens to the command."""

    def create_temporary_slot_with_snapshot(self, slot: str) -> tuple[int, str]:
        if self._conn.server_version >= 150000:
            command = f"CREATE_REPLICATION_SLOT \"{slot}\" TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')"
        else:
            command = f'CREATE_REPLICATION_SLOT "{slot}" TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT'
        self._cursor.execute(command)
        _, consistent_point, snapshot_name, _ = self._cursor.fetchone()
        return parse_lsn(consistent_point), snapshot_name


class Reindex:
    """One run of the command; `run()` returns the summary or raises `ReindexError`."""

    def __init__(
        self,
        settings: ReindexSettings,
        *,
        ack_timeout_s: float = 30.0,
        swap_timeout_s: float = 600.0,
        echo: Callable[[str], None] = log.info,
    ) -> None:
        self.settings = settings
        self.versions = IndexVersions(settings.index_path, settings.index_name)
        self.control = ReindexControl(settings.index_path, settings.index_name)
        self.ack_timeout_s = ack_timeout_s
        self.swap_timeout_s = swap_timeout_s
        self.echo = echo
        self.state: ReindexState | None = None
        self.target: Path | None = None
        self._handed_over = False  # after `built` (worker mode) or promotion, the directory is no longer ours

    async def run(self) -> ReindexSummary:
        if self.settings.index_backend != "tantivy":
            raise ReindexError(
                "auction-hub reindex is not supported yet for Elasticsearch (alias swap planned); "
                "it rebuilds the embedded tantivy index only"
            )
        self.settings.index_path.mkdir(parents=True, exist_ok=True)
        self._refuse_concurrent_run()
        started = time.monotonic()
        old = self.versions.current()
        self.target = self.versions.new_version()
        self.state = ReindexState(
            "requested", self.target.name, cli_pid=os.getpid(), requested_at=utc_now(), updated_at=utc_now()
        )
        self.control.write(self.state)
        self.echo(f"reindex: requested {self.target.name} (current {old.name}); waiting for the worker")
        try:
            return await self._run(old, started)
        except BaseException as exc:
            self._abandon(exc)
            raise

    async def _run(self, old: Path, started: float) -> ReindexSummary:
        assert self.target is not None  # noqa: S101 - set by run()
        lock = None
        answer = await self._wait_for(("journaling",), self.ack_timeout_s)
        if answer is None:
            lock = self._take_writer_lock(old)
            self.echo(f"reindex: no worker runs (the writer lock of {old.name} was free); building alone")
        try:
            documents, lsn = await self._build(self.target, old)
            if lock is not None:
                self.versions.promote(self.target)
                self._handed_over = True
                await lock.close()
                lock = None
                self._write(
                    self._current().advance("swapped", snapshot_lsn=lsn, documents=documents, previous=old.name)
                )
                self._prune()
                return ReindexSummary(
                    documents, time.monotonic() - started, old.name, self.target.name, lsn, "standalone"
                )
        finally:
            if lock is not None:
                await lock.close()
        current = self._current()
        if current.state != "journaling":
            raise ReindexError(f"the worker gave up while the new version was built: {current.reason or current.state}")
        self._write(current.advance("built", snapshot_lsn=lsn, documents=documents))
        self._handed_over = True
        self.echo(f"reindex: {documents} documents built at {format_lsn(lsn)}; waiting for the worker to swap")
        done = await self._wait_for(("swapped",), self.swap_timeout_s, worker_must_live=True)
        if done is None:
            raise ReindexError(
                f"the worker did not swap {self.target.name} in within {self.swap_timeout_s:.0f}s; "
                f"see the worker's log and {self.control.path}"
            )
        return ReindexSummary(
            documents,
            time.monotonic() - started,
            done.previous or old.name,
            self.target.name,
            lsn,
            "worker",
            done.replayed or 0,
        )

    # -- protocol -----------------------------------------------------------------------------------

    def _refuse_concurrent_run(self) -> None:
        state = self.control.read()
        if state is None or state.finished:
            return
        if state.cli_pid is not None and state.cli_pid != os.getpid() and pid_alive(state.cli_pid):
            raise ReindexError(
                f"another reindex (pid {state.cli_pid}, into {state.version}) is {state.state}; wait for it"
            )
        if state.state == "built" and state.worker_pid is not None and pid_alive(state.worker_pid):
            raise ReindexError(f"the worker (pid {state.worker_pid}) is still swapping in {state.version}; retry soon")

    def _current(self) -> ReindexState:
        state = self.control.read()
        if state is None or self.state is None or state.version != self.state.version:
            raise ReindexError(f"the reindex control file {self.control.path} was replaced or removed meanwhile")
        return state

    def _write(self, state: ReindexState) -> None:
        self.state = state
        self.control.write(state)

    async def _wait_for(
        self, wanted: tuple[str, ...], timeout_s: float, *, worker_must_live: bool = False
    ) -> ReindexState | None:
        """The control state once it is one of `wanted`; None on timeout; `ReindexError` when it failed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self._current()
            if state.state in wanted:
                return state
            if state.state == "failed":
                raise ReindexError(f"the worker refused the reindex: {state.reason}")
            if worker_must_live and state.worker_pid is not None and not pid_alive(state.worker_pid):
                raise ReindexError(
                    f"the worker (pid {state.worker_pid}) exited before swapping in {state.version}; its journal is "
                    "lost, run the reindex again"
                )
            await asyncio.sleep(POLL_S)
        return None

    def _take_writer_lock(self, current: Path) -> TantivyIndex:
        """Hold the current version's writer lock, proving no worker runs and keeping one from starting."""
        try:
            return TantivyIndex(current, writer=True)
        except IndexLocked as exc:
            raise ReindexError(
                f"no worker answered the reindex request within {self.ack_timeout_s:.0f}s, yet the index writer "
                f"lock of {current} is held: a worker runs but does not take part (stuck, or an older version "
                "without online reindex). Restart the worker, or stop it to reindex without it"
            ) from exc

    # -- build --------------------------------------------------------------------------------------

    async def _build(self, target: Path, old: Path) -> tuple[int, int]:
        """Write every vehicle of a fresh snapshot into `target`: (documents, snapshot position). What other sources
        put into documents (bids, approved Q&A, ERP inventory) is carried over from the current version `old`."""
        s = self.settings
        catalog = await SourceCatalog.connect(s.database_url)
        try:
            database = await catalog.database_name()
            tables = {
                name: TableEvents(
                    prefix=s.topic_prefix,
                    database=database,
                    schema=s.pg_schema,
                    table=name,
                    columns=await catalog.table_columns(s.pg_schema, name),
                    schemas_enable=s.pg_schemas_enable,
                    decimal_mode=s.pg_decimal_handling_mode,
                )
                for name in ("dealers", "vehicles")
            }
        finally:
            await catalog.close()
        for name, table in tables.items():
            if not table.columns:
                raise ReindexError(f"table {s.pg_schema}.{name} does not exist; apply the migrations first")
        slot = _TemporarySlot(s.database_url)
        try:
            lsn, snapshot_name = await asyncio.to_thread(slot.create_temporary_slot_with_snapshot, _slot_name(s))
            reader = await SnapshotReader.open(s.database_url, snapshot_name)
            try:
                previous = TantivyIndex(old, writer=False)
                try:
                    documents = await self._write_documents(
                        reader, tables, lsn, TantivyIndex(target, writer=True), previous
                    )
                finally:
                    await previous.close()
            finally:
                await reader.close()
        finally:
            slot.close()  # drops the temporary slot
        return documents, lsn

    async def _write_documents(
        self,
        reader: SnapshotReader,
        tables: dict[str, TableEvents],
        lsn: int,
        index: TantivyIndex,
        previous: TantivyIndex,
    ) -> int:
        """The worker's own path: snapshot records (op `r`) decoded and applied by the document rules.

        The records carry the snapshot's LSN S like the connector's; decoding places a snapshot row at S - 1,
        because the first change after the snapshot can sit exactly at S (measured: a concurrent UPDATE
        streamed with lsn == S), and a document at S would take it for already applied.
        """
        at = Position(lsn, None, time.time_ns() // 1000, await reader.xmin(), "true")
        try:
            dealers: dict[int, DealerRefresh] = {}
            dealer_table = tables["dealers"]
            async for raw in reader.rows(dealer_table):
                record = dealer_table.read(dealer_table.convert(raw), at)
                change = decode_dealer_change(record.key, record.value)
                if isinstance(change, DealerChange) and change.summary is not None:
                    dealers[change.dealer_id] = DealerRefresh("", change.dealer_id, change.summary, change.position)
            vehicle_table = tables["vehicles"]
            batch: list[VehicleDocument] = []
            documents = 0
            async for raw in reader.rows(vehicle_table):
                record = vehicle_table.read(vehicle_table.convert(raw), at)
                op = decode_vehicle_change(record.key, record.value)
                if not isinstance(op, VehicleUpsert):
                    continue
                dealer_id = op.row.get("dealer_id")
                known = dealers.get(dealer_id) if isinstance(dealer_id, int) else None
                document = apply_vehicle_upsert(None, op, known).document
                if document is not None:
                    batch.append(document)
                if len(batch) >= BUILD_BATCH:
                    await index.upsert(await _with_other_sources(batch, previous))
                    documents += len(batch)
                    batch = []
            await index.upsert(await _with_other_sources(batch, previous))
            documents += len(batch)
            await index.flush()
        finally:
            await index.close()
        return documents

    # -- endings ------------------------------------------------------------------------------------

    def _abandon(self, exc: BaseException) -> None:
        """On failure or Ctrl-C before the hand-over: mark it failed and delete the half-built directory."""
        if self.state is None or self.target is None:
            return
        current = self.control.read()
        if self._handed_over:
            if current is not None and current.state == "failed" and self.target != self.versions.current():
                shutil.rmtree(self.target, ignore_errors=True)
            elif not isinstance(exc, ReindexError):
                self.echo(f"reindex: interrupted; the worker still swaps {self.target.name} in ({self.control.path})")
            return
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
            reason = "interrupted"
        if current is not None and current.version == self.state.version and not current.finished:
            self.control.write(current.advance("failed", reason=f"the reindex command stopped: {reason}"))
        if self.target.exists() and self.target != self.versions.current():
            shutil.rmtree(self.target, ignore_errors=True)

    def _prune(self) -> None:
        try:
            self.versions.prune()
        except OSError as exc:
            log.warning("pruning old index versions failed: %s", exc)


async def _with_other_sources(batch: list[VehicleDocument], previous: TantivyIndex) -> list[VehicleDocument]:
    if not batch:
        return batch
    current = await previous.get_many([document.id for document in batch])
    return [carry_other_sources(document, current.get(document.id)) for document in batch]


def _slot_name(settings: ReindexSettings) -> str:
    return f"{settings.pg_slot_name}_reindex_{os.getpid()}"[:63]


def run_reindex(
    settings: ReindexSettings, *, ack_timeout_s: float = 30.0, echo: Callable[[str], None] = print
) -> ReindexSummary:
    """Blocking entry point of the command; Ctrl-C or SIGTERM cleans up before it returns."""

    async def main() -> ReindexSummary:
        task = asyncio.current_task()
        if task is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await Reindex(settings, ack_timeout_s=ack_timeout_s, echo=echo).run()

    return asyncio.run(main())
