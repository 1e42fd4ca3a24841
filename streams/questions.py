"""Moderated Q&A into vehicle documents: decoding, the document rule, and the worker's `route_qna` agent.

    <prefix>.public.questions ─┐
    <prefix>.public.answers   ─┴─► route_qna ─► auction-hub.qna-refresh (key vehicle) ─► index_vehicles

The Q&A change topics are keyed by question / answer id; `route_qna` regroups each change under its vehicle
(one record per partition and batch, as dealer refreshes), so the vehicle's single consumer applies it. The
document keeps, per question and answer, the position of the last change applied and whether it is visible
(approved), and rebuilds its public `questions` from that: replays and reordering change nothing, and an item a
moderator rejects after approving it stays hidden even if the older approval is replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import Field

from hub.settings import HubSettings, load_settings
from schemas.debezium import InvalidChangeEvent, Op, parse_change_value
from schemas.vehicle import QnaEntry, Question, VehicleDocument
from streams.batching import take_event_batches

if TYPE_CHECKING:
    from faust.types import EventT, StreamT

    from streams.app import IndexerApp


class QnaStreamSettings(HubSettings):
    qna_refresh_topic: str = Field(default="auction-hub.qna-refresh", description="Q&A changes keyed by vehicle.")


@dataclass(frozen=True)
class QnaUpdate:
    """One question or answer as the vehicle page may show it: `text` None when it is not (or no longer) approved."""

    vehicle_id: str
    kind: str  # "question" | "answer"
    item_id: int
    question_id: int
    text: str | None
    at: str | None
    position: int

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.item_id}"


def decode_qna_change(kind: str, value: bytes | None) -> QnaUpdate | None:
    """A questions / answers change record as an update of its vehicle's document; None for tombstones."""
    event = parse_change_value(value)
    if event is None or event.op in (Op.MESSAGE, Op.TRUNCATE):
        return None
    row = event.row
    if row is None or row.get("vehicle_id") is None or row.get("id") is None:
        raise InvalidChangeEvent(f"{kind} change without id / vehicle_id (is REPLICA IDENTITY FULL set?)")
    position = event.source.position - (1 if event.op is Op.READ else 0)
    visible = event.op is not Op.DELETE and row.get("status") == "approved"
    item_id = int(row["id"])
    question_id = item_id if kind == "question" else int(row["question_id"])
    at = row.get("created_at")
    return QnaUpdate(
        str(row["vehicle_id"]), kind, item_id, question_id, row.get("body") if visible else None,
        at if isinstance(at, str) or at is None else str(at), position,
    )  # fmt: skip


def encode_qna_updates(updates: list[QnaUpdate]) -> bytes:
    rows = [[u.vehicle_id, u.kind, u.item_id, u.question_id, u.text, u.at, u.position] for u in updates]
    return orjson.dumps({"kind": "qna_updates", "updates": rows})


def decode_qna_updates(value: bytes) -> list[QnaUpdate]:
    try:
        return [
            QnaUpdate(str(v), str(k), int(i), int(q), t, a, int(p))
            for v, k, i, q, t, a, p in orjson.loads(value)["updates"]
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidChangeEvent(f"malformed qna updates record: {exc}") from exc


def apply_qna_update(current: VehicleDocument | None, update: QnaUpdate) -> VehicleDocument | None:
    """The document with this Q&A change applied, or None when it is not newer than what the document holds."""
    document = current or VehicleDocument(id=update.vehicle_id)
    known = document.qna.get(update.key)
    if known is not None and known.position >= update.position:
        return None
    entry = QnaEntry(question_id=update.question_id, text=update.text, at=update.at, position=update.position)
    qna = {**document.qna, update.key: entry}
    return document.model_copy(update={"qna": qna, "questions": public_questions(qna), "version": document.version + 1})


def public_questions(qna: dict[str, QnaEntry]) -> list[Question]:
    """Approved questions, oldest first, each with its newest approved answer."""
    answers: dict[int, QnaEntry] = {}
    for key, entry in qna.items():
        if key.startswith("answer:") and entry.text is not None:
            held = answers.get(entry.question_id)
            if held is None or (entry.at or "", entry.position) > (held.at or "", held.position):
                answers[entry.question_id] = entry
    questions = [
        Question(
            id=entry.question_id,
            text=entry.text,
            answer=answers[entry.question_id].text if entry.question_id in answers else None,
            askedAt=entry.at,
            answeredAt=answers[entry.question_id].at if entry.question_id in answers else None,
        )
        for key, entry in qna.items()
        if key.startswith("question:") and entry.text is not None
    ]
    return sorted(questions, key=lambda q: (q.askedAt or "", q.id))


class QnaWiring:
    """Registers `route_qna` and the Q&A refresh topic on the indexer's Faust app; the app calls the hooks."""

    def __init__(self, owner: IndexerApp, raw: dict[str, Any], settings: QnaStreamSettings | None = None) -> None:
        self.owner = owner
        self.settings = settings or load_settings(QnaStreamSettings)
        self.change_topics = {owner.settings.change_topic("questions"): "question",
                              owner.settings.change_topic("answers"): "answer"}  # fmt: skip
        self.vehicle_topics: tuple[str, ...] = (self.settings.qna_refresh_topic,)
        self.refresh_topic = owner.app.topic(self.settings.qna_refresh_topic, **raw)
        sources = owner.app.topic(*self.change_topics, **raw)
        owner.app.agent(sources, name="route_qna")(self.route_qna)

    def topics(self) -> list[str]:
        return [*self.change_topics, self.settings.qna_refresh_topic]

    # -- hooks of index_vehicles -------------------------------------------------------------------------

    def owns(self, topic: str) -> bool:
        return topic == self.settings.qna_refresh_topic

    def decode_vehicle_event(self, event: EventT) -> list[QnaUpdate]:
        return decode_qna_updates(event.value) if event.value else []

    # -- the agent ---------------------------------------------------------------------------------------

    async def route_qna(self, stream: StreamT[bytes]) -> None:
        """Question and answer changes in batches -> one record per vehicle partition on the refresh topic."""
        owner = self.owner
        async for events in take_event_batches(stream, owner.settings.batch_limits()):
            updates: list[QnaUpdate] = []
            for event in events:
                try:
                    update = decode_qna_change(self.change_topics[event.message.topic], event.value)
                except InvalidChangeEvent as exc:
                    await owner._dead_letter(event, exc)  # noqa: SLF001 - the app's one dead-letter path
                    continue
                if update is not None:
                    updates.append(update)
            await owner._send_grouped(  # noqa: SLF001
                self.refresh_topic, updates, lambda u: owner._vehicle_key(u.vehicle_id), encode_qna_updates
            )
            owner.metrics.count("qna_changes_routed", len(updates))
