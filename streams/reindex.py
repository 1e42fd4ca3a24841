"""The worker's side of an online reindex (tantivy): journal, replay, swap.

`auction-hub reindex` and the worker talk through one small JSON file beside the index,
`<index_path>/<index_name>.reindex.json`, each write atomic:

    requested   the command named a new version directory and waits
    journaling  the worker keeps every operation it applies from now on (it records its pid and id)
    built       the command wrote the new version from a PostgreSQL snapshot at position S
    swapped     the worker replayed its journal into the new version, promoted it and writes it live
    failed      either side gave up (`reason` says why); the new directory is discarded

Why nothing is lost: the worker journals before it answers, and the command takes its snapshot only after
that answer, so every change committed after the snapshot is applied by the worker after journaling began.
The replay applies the journal through the same document rules onto the snapshot's documents; per-source
positions turn everything the snapshot already holds into no-ops. Replay, promotion and adoption run under
the lock that serializes batch application, so no batch falls between the replay and the switch.
A worker that restarts loses its journal: it marks an unfinished reindex `failed` instead of swapping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from connectors.search.port import SearchIndex, SearchIndexUnavailable
from connectors.search.tantivy_index import TantivyIndex
from connectors.search.tantivy_versions import IndexVersions, VersionedTantivyIndex, write_atomically
from streams.changes import DealerRefresh, VehicleOp
from streams.indexer import VehicleIndexer

log = logging.getLogger(__name__)

State = Literal["requested", "journaling", "built", "swapped", "failed"]
TERMINAL: tuple[State, ...] = ("swapped", "failed")

# Checked at the start of each batch and by a timer, so a reindex progresses without traffic.
CHECK_INTERVAL_S = 0.5
REPLAY_BATCH = 2000
# A reindex whose build outlasts this many journaled operations is abandoned rather than exhausting memory.
MAX_JOURNAL = 2_000_000


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ReindexState:
    """The content of the control file."""

    state: State
    version: str
    cli_pid: int | None = None
    worker_pid: int | None = None
    worker_id: str | None = None
    snapshot_lsn: int | None = None
    documents: int | None = None
    replayed: int | None = None
    previous: str | None = None
    reason: str | None = None
    requested_at: str | None = None
    updated_at: str | None = None

    def advance(self, state: State, **changes: Any) -> ReindexState:
        return dataclasses.replace(self, state=state, updated_at=utc_now(), **changes)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


class ReindexControl:
    """The control file `<base>/<name>.reindex.json` shared by the reindex command and the worker."""

    def __init__(self, base: Path, name: str) -> None:
        self.path = base / f"{name}.reindex.json"

    def read(self) -> ReindexState | None:
        try:
            content = orjson.loads(self.path.read_bytes())
            return ReindexState(**content)
        except FileNotFoundError:
            return None
        except (orjson.JSONDecodeError, TypeError) as exc:
            log.warning("ignoring the unreadable reindex control file %s: %s", self.path, exc)
            return None

    def write(self, state: ReindexState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, orjson.dumps(dataclasses.asdict(state), option=orjson.OPT_INDENT_2))


class ReindexCoordinator:
    """Moves a reindex along from the worker: call `step()` between batches, under the batch lock."""

    def __init__(self, index: VersionedTantivyIndex, indexer: VehicleIndexer, *, max_journal: int = MAX_JOURNAL):
        self.index = index
        self.versions: IndexVersions = index.versions
        self.control = ReindexControl(self.versions.base, self.versions.name)
        self.indexer = indexer
        self.max_journal = max_journal
        # Tells this worker's journal from one of an earlier process (pids get reused, e.g. pid 1 in containers).
        self.worker_id = uuid.uuid4().hex
        self._version: str | None = None
        self._known_at_start: dict[int, DealerRefresh] = {}

    @classmethod
    def for_index(cls, index: SearchIndex, indexer: VehicleIndexer) -> ReindexCoordinator | None:
        """A coordinator when the index supports online reindex (a versioned tantivy writer), else None."""
        if isinstance(index, VersionedTantivyIndex) and index.writer:
            return cls(index, indexer)
        return None

    @property
    def journaling(self) -> bool:
        return self._version is not None and self.indexer.journal is not None

    async def step(self) -> None:
        """Advance the reindex named by the control file, if any; never raises for a bad file system."""
        try:
            await self._step()
        except OSError as exc:
            log.error("reindex control file %s: %s", self.control.path, exc)

    async def _step(self) -> None:
        state = self.control.read()
        if state is None or state.finished:
            if self.journaling:
                self._stop_journal()
            return
        if state.state == "requested":
            self._start_journal(state)
        elif state.state == "journaling":
            if not self._is_mine(state):
                self._fail(state, "the worker that was journaling for this reindex restarted; its journal is lost")
            elif state.cli_pid is not None and not pid_alive(state.cli_pid):
                self._fail(state, f"the reindex command (pid {state.cli_pid}) exited before it finished the build")
            elif len(self.indexer.journal or ()) > self.max_journal:
                self._fail(state, f"the journal passed {self.max_journal} operations before the build finished")
        elif state.state == "built":
            if self._is_mine(state):
                await self._swap(state)
            elif self.versions.current().name == state.version:
                # Promoted, then the worker stopped before it could say so: the new version is live and whole.
                self.control.write(state.advance("swapped", reason="recovered after a worker restart"))
            else:
                self._fail(state, "the worker that was journaling for this reindex restarted; its journal is lost")

    def _is_mine(self, state: ReindexState) -> bool:
        return self.journaling and state.worker_id == self.worker_id and state.version == self._version

    def _start_journal(self, state: ReindexState) -> None:
        if self.journaling:
            log.warning("a new reindex request (%s) replaces the one of %s", state.version, self._version)
        # Journal first, answer second: the command snapshots only after the answer.
        self.indexer.journal = []
        self._known_at_start = dict(self.indexer.known_dealers)
        self._version = state.version
        self.control.write(
            state.advance("journaling", worker_pid=os.getpid(), worker_id=self.worker_id, previous=self.index.path.name)
        )
        log.info("reindex into %s requested: journaling applied changes", state.version)

    def _stop_journal(self) -> None:
        self.indexer.journal = None
        self._version = None
        self._known_at_start = {}

    def _fail(self, state: ReindexState, reason: str) -> None:
        log.error("reindex into %s failed: %s", state.version, reason)
        self._stop_journal()
        self.control.write(state.advance("failed", reason=reason))

    async def _swap(self, state: ReindexState) -> None:
        journal = self.indexer.journal or []
        target = self.versions.base / state.version
        if not (target / "meta.json").exists():
            self._fail(state, f"{target} holds no committed index")
            return
        try:
            built = await asyncio.to_thread(TantivyIndex, target, writer=True)
        except SearchIndexUnavailable as exc:
            self._fail(state, f"cannot open {target} for writing: {exc}")
            return
        try:
            replayer = VehicleIndexer(built)
            replayer.known_dealers = dict(self._known_at_start)
            for start in range(0, len(journal), REPLAY_BATCH):
                await _replay(replayer, journal[start : start + REPLAY_BATCH])
            await built.flush()
            self.versions.promote(target)
        except Exception as exc:
            await built.close()
            self._fail(state, f"replaying the journal into {target.name} failed: {exc}")
            return
        await self.index.adopt(built)
        self._stop_journal()
        self.control.write(state.advance("swapped", replayed=len(journal)))
        log.info("reindex swapped in %s (%d journaled operations replayed)", state.version, len(journal))
        try:
            await asyncio.to_thread(self.versions.prune)
        except OSError as exc:
            log.warning("pruning old index versions failed: %s", exc)


async def _replay(replayer: VehicleIndexer, ops: Sequence[VehicleOp]) -> None:
    """Apply journaled operations; dealer links they produce are dropped (the live index already sent them)."""
    try:
        await replayer.apply(ops)
    except (ValueError, TypeError, KeyError):
        for op in ops:
            try:
                await replayer.apply([op])
            except (ValueError, TypeError, KeyError) as exc:
                # Applied live, so only a document the snapshot built differently can refuse it.
                log.warning("replay skipped %r: %s", op, exc)
