"""Q&A for people: buyers ask, the listing's dealer answers, authors follow their item, moderators decide.

Knows nothing of HTTP: raises `hub.errors` exceptions that the API turns into responses. Submissions are
stored `pending` with card / SSN / bank numbers already replaced (moderation/prescreen.py); the moderation
worker gives the verdict. Moderators' decisions are audited with who, when, before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from psycopg_pool import AsyncConnectionPool

from hub.errors import Conflict, Forbidden, InvalidParameter, NotFound
from marketplace.accounts import CurrentUser
from marketplace.db import Connection, transaction
from moderation import store
from moderation.model import KINDS, Kind
from moderation.prescreen import redact_financial

STAFF: Final = frozenset({"moderator", "admin"})
ANSWERABLE: Final = "approved"


def _row_id(number: str) -> int | None:
    return int(number) if number.isdigit() and 0 < int(number) < 2**62 else None


@dataclass(frozen=True, slots=True)
class ItemRef:
    """`question-12` / `answer-7`: how the moderators' API names an item."""

    kind: Kind
    item_id: int

    @classmethod
    def parse(cls, text: str) -> ItemRef:
        kind, _, number = text.partition("-")
        item_id = _row_id(number)
        if kind not in KINDS or item_id is None:
            raise InvalidParameter("item_id", "write question-<id> or answer-<id>, e.g. question-12")
        return cls(kind, item_id)

    @classmethod
    def of_kind(cls, kind: Kind, text: str, parameter: str) -> ItemRef:
        """A path id of a known kind, as a bare number (`12`) or as the API returns it (`question-12`)."""
        item_id = _row_id(text.removeprefix(f"{kind}-"))
        if item_id is None:
            raise InvalidParameter(parameter, f"write the {kind}'s id, e.g. 12 or {kind}-12")
        return cls(kind, item_id)

    def __str__(self) -> str:
        return f"{self.kind}-{self.item_id}"


def item_body(row: dict[str, Any], *, staff: bool) -> dict[str, Any]:
    """What the author sees (status, reason, the stored text), plus the models' details for moderators."""
    body = {
        "id": f"{row['kind']}-{row['id']}",
        "kind": row["kind"],
        "item_id": row["id"],
        "vehicle_id": row["vehicle_id"],
        "question_id": row["question_id"] if row["kind"] == "answer" else row["id"],
        "author_id": row["author_id"],
        "text": row["body"],
        "status": row["status"],
        "reason": row["reason"],
        "redactions": list(row["redactions"] or ()),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if staff:
        body |= {
            "review_reason": row["review_reason"],
            "flagged": row["flagged"],
            "scores": row["scores"],
            "attempts": row["attempts"],
            "last_error": row["last_error"],
            "moderated_at": row["moderated_at"],
            "moderated_by": row["moderated_by"],
        }
    return body


class QnaService:
    def __init__(self, pool: AsyncConnectionPool[Connection]) -> None:
        self.pool = pool

    async def ask(self, user: CurrentUser, vehicle_id: int, text: str) -> dict[str, Any]:
        stored, redactions = redact_financial(text)
        async with transaction(self.pool) as conn:
            listing = await store.listing(conn, vehicle_id)
            open_listing = listing is not None and listing["deleted_at"] is None
            if listing is None or not open_listing or listing["status"] not in ("active", "in_auction"):
                raise NotFound(f"no vehicle {vehicle_id} open for questions")
            if listing["owner_id"] == user.id:
                raise Forbidden("you cannot ask a question on your own listing")
            return await store.insert_question(conn, vehicle_id, user.id, stored, redactions)

    async def answer(self, user: CurrentUser, question_id: int, text: str) -> dict[str, Any]:
        stored, redactions = redact_financial(text)
        async with transaction(self.pool) as conn:
            question = await store.question_listing(conn, question_id)
            if question is None:
                raise NotFound(f"no question {question_id}")
            if question["owner_id"] != user.id and not user.is_admin:
                raise Forbidden("only the dealer of the listing answers its questions")
            if question["status"] != ANSWERABLE:
                raise Conflict(f"question {question_id} is {question['status']}: only approved questions are answered")
            return await store.insert_answer(conn, question_id, user.id, stored, redactions)

    async def get(self, user: CurrentUser, ref: ItemRef) -> tuple[dict[str, Any], bool]:
        """The item for its author, moderators and admins (and the listing's dealer for a question)."""
        async with transaction(self.pool) as conn:
            row = await store.get_item(conn, ref.kind, ref.item_id)
            if row is None:
                raise NotFound(f"no {ref.kind} {ref.item_id}")
            staff = user.role in STAFF
            allowed = staff or row["author_id"] == user.id
            if not allowed and ref.kind == "question":
                listing = await store.question_listing(conn, ref.item_id)
                allowed = listing is not None and listing["owner_id"] == user.id
            if not allowed:
                raise Forbidden(f"only the author, the listing's dealer and moderators see this {ref.kind}")
            return row, staff

    # -- moderators -------------------------------------------------------------------------------------

    async def queue(
        self,
        *,
        flagged: bool | None,
        status: str | None,
        reason: str | None,
        min_age_s: int | None,
        max_age_s: int | None,
        limit: int,
        offset: int,
    ) -> tuple[list[dict[str, Any]], int]:
        now = datetime.now(UTC)
        async with transaction(self.pool) as conn:
            return await store.queue(
                conn,
                flagged=flagged,
                status=status,
                review_reason=reason,
                older_than=None if min_age_s is None else now - timedelta(seconds=min_age_s),
                newer_than=None if max_age_s is None else now - timedelta(seconds=max_age_s),
                limit=limit,
                offset=offset,
            )

    async def detail(self, ref: ItemRef) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with transaction(self.pool) as conn:
            row = await store.get_item(conn, ref.kind, ref.item_id)
            if row is None:
                raise NotFound(f"no {ref.kind} {ref.item_id}")
            return row, list(await store.audit_trail(conn, ref.kind, ref.item_id))

    async def decide(
        self, moderator: CurrentUser, ref: ItemRef, action: str, note: str | None, text: str | None
    ) -> dict[str, Any]:
        """approve (publish as stored), reject (hide; the note is the author's reason), redact (publish `text`)."""
        changes: dict[str, Any]
        if action == "approve":
            changes = {"status": "approved", "reason": None, "review_reason": None}
        elif action == "reject":
            changes = {"status": "rejected", "reason": note or "Removed by a moderator.", "review_reason": None}
        else:
            if not text:
                raise InvalidParameter("text", "redact needs the text to publish instead")
            stored, redactions = redact_financial(text)
            changes = {"status": "approved", "body": stored, "review_reason": None,
                       "reason": "Published with changes by a moderator.",
                       "redactions": sorted({*redactions, "MODERATOR"})}  # fmt: skip
        async with transaction(self.pool) as conn:
            before = await store.get_item(conn, ref.kind, ref.item_id, lock=True)
            if before is None:
                raise NotFound(f"no {ref.kind} {ref.item_id}")
            if "redactions" in changes:
                changes["redactions"] = sorted({*before["redactions"], *changes["redactions"]})
            return await store.decide(conn, ref.kind, before, changes, moderator.id, action, note)
