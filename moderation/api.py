"""Q&A routes: buyers ask, dealers answer, authors follow their items, moderators work the queue."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from marketplace.accounts import CurrentUser
from marketplace.api.deps import CurrentUserDep, PoolDep, require_roles
from marketplace.api.envelope import Page, paginated, success
from moderation.qna import ItemRef, QnaService, item_body

router = APIRouter(prefix="/api/v1", tags=["questions"])
moderation_router = APIRouter(prefix="/api/v1/moderation", tags=["moderation"])


def get_qna(pool: PoolDep) -> QnaService:
    return QnaService(pool)


QnaDep = Annotated[QnaService, Depends(get_qna)]
AskerDep = Annotated[CurrentUser, Depends(require_roles("buyer", "dealer", "admin"))]
DealerDep = Annotated[CurrentUser, Depends(require_roles("dealer", "admin"))]
ModeratorDep = Annotated[CurrentUser, Depends(require_roles("moderator", "admin"))]
RowId = Annotated[int, Path(ge=1, le=2**62)]
ItemPath = Annotated[str, Path(min_length=3, max_length=40, description="question-<id> or answer-<id>")]
QuestionPath = Annotated[str, Path(min_length=1, max_length=40, description="12 or question-12")]
AnswerPath = Annotated[str, Path(min_length=1, max_length=40, description="7 or answer-7")]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), AfterValidator(_no_nul)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), AfterValidator(_no_nul)]


class TextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note | None = Field(default=None, description="Why; for a rejection, the reason the author sees.")
    text: Text | None = Field(default=None, description="redact only: the text to publish instead.")


@router.post("/vehicles/{vehicle_id}/questions", status_code=status.HTTP_201_CREATED)
async def ask_question(vehicle_id: RowId, body: TextIn, user: AskerDep, qna: QnaDep) -> dict[str, Any]:
    """Ask about a vehicle; shown on its page once moderation approves it (follow it at GET /questions/{id})."""
    row = await qna.ask(user, vehicle_id, body.text)
    return success(item_body(row, staff=False), "question received; it appears once moderation approves it")


@router.post("/questions/{question_id}/answers", status_code=status.HTTP_201_CREATED)
async def answer_question(question_id: QuestionPath, body: TextIn, user: DealerDep, qna: QnaDep) -> dict[str, Any]:
    """The listing's dealer answers an approved question; shown once moderation approves the answer."""
    question = ItemRef.of_kind("question", question_id, "question_id")
    row = await qna.answer(user, question.item_id, body.text)
    return success(item_body(row, staff=False), "answer received; it appears once moderation approves it")


@router.get("/questions/{question_id}")
async def get_question(question_id: QuestionPath, user: CurrentUserDep, qna: QnaDep) -> dict[str, Any]:
    """A question's moderation status and reason (its author, the listing's dealer, moderators)."""
    row, staff = await qna.get(user, ItemRef.of_kind("question", question_id, "question_id"))
    return success(item_body(row, staff=staff))


@router.get("/answers/{answer_id}")
async def get_answer(answer_id: AnswerPath, user: CurrentUserDep, qna: QnaDep) -> dict[str, Any]:
    """An answer's moderation status and reason (its author, moderators)."""
    row, staff = await qna.get(user, ItemRef.of_kind("answer", answer_id, "answer_id"))
    return success(item_body(row, staff=staff))


@moderation_router.get("/queue")
async def moderation_queue(
    _: ModeratorDep,
    qna: QnaDep,
    page: Annotated[Page, Query()],
    status_filter: Annotated[
        Literal["pending", "pending_review", "approved", "rejected"] | None, Query(alias="status")
    ] = None,
    reason: Annotated[
        Literal["uncertain", "moderation_failed", "contact_details", "retrying", "profanity", "financial_data"] | None,
        Query(description="why the item needs a look"),
    ] = None,
    flagged: Annotated[bool | None, Query(description="default: flagged items only; false: the others")] = True,
    min_age_s: Annotated[int | None, Query(ge=0, le=10**8, description="submitted at least this long ago")] = None,
    max_age_s: Annotated[int | None, Query(ge=0, le=10**8, description="submitted at most this long ago")] = None,
) -> dict[str, Any]:
    """Items waiting for a human (flagged), oldest first; filter by status, reason and age."""
    rows, total = await qna.queue(
        flagged=flagged, status=status_filter, reason=reason, min_age_s=min_age_s, max_age_s=max_age_s,
        limit=page.limit, offset=page.offset,
    )  # fmt: skip
    return paginated([item_body(row, staff=True) for row in rows], page, total)


@moderation_router.get("/items/{item_id}")
async def moderation_item(item_id: ItemPath, _: ModeratorDep, qna: QnaDep) -> dict[str, Any]:
    """One item with its audit trail (every decision: who, when, before, after)."""
    row, trail = await qna.detail(ItemRef.parse(item_id))
    return success({**item_body(row, staff=True), "audit": trail})


DECIDED = {"approve": "approved", "reject": "rejected", "redact": "redacted"}


@moderation_router.post("/items/{item_id}/{action}")
async def decide(
    item_id: ItemPath,
    action: Annotated[Literal["approve", "reject", "redact"], Path()],
    body: DecisionIn,
    moderator: ModeratorDep,
    qna: QnaDep,
) -> dict[str, Any]:
    """approve: publish as stored; reject: hide, the note is the author's reason; redact: publish `text` instead."""
    row = await qna.decide(moderator, ItemRef.parse(item_id), action, body.note, body.text)
    return success(item_body(row, staff=True), DECIDED[action])
