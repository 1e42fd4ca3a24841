"""SQL of Q&A moderation (parameterized; the caller owns the transaction).

Every automatic write is conditional on the state it was computed from (status, attempts, no human decision
yet), so replays and duplicate dead letters change nothing, and a moderator's decision always wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from psycopg import sql
from psycopg.types.json import Jsonb

from marketplace.db import Connection
from moderation.model import TABLES, Kind, Verdict

ITEM_COLUMNS: Final = (
    "id, vehicle_id, user_id AS author_id, body, status, reason, review_reason, flagged, redactions, scores, "
    "attempts, last_error, created_at, updated_at, moderated_at, moderated_by"
)
# The state an audit record keeps before and after a decision.
AUDITED: Final = ("status", "body", "reason", "review_reason", "flagged", "redactions")

# Automatic decisions apply only to items no human has decided and that are still waiting for the models.
_UNDECIDED: Final = "status IN ('pending', 'pending_review') AND moderated_by IS NULL AND attempts = %(attempts)s"


def _table(kind: Kind) -> sql.Identifier:
    return sql.Identifier(TABLES[kind])


def _columns(kind: Kind) -> str:
    return ITEM_COLUMNS + (", question_id" if kind == "answer" else ", NULL::bigint AS question_id")


async def get_item(conn: Connection, kind: Kind, item_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    query = sql.SQL("SELECT {}, %(kind)s AS kind FROM {} WHERE id = %(id)s" + (" FOR UPDATE" if lock else "")).format(
        sql.SQL(_columns(kind)), _table(kind)
    )
    cursor = await conn.execute(query, {"kind": kind, "id": item_id})
    return await cursor.fetchone()


def _snapshot(row: dict[str, Any]) -> dict[str, Any]:
    return {name: list(row[name]) if name == "redactions" else row[name] for name in AUDITED}


async def audit(
    conn: Connection,
    kind: Kind,
    item_id: int,
    actor_id: int | None,
    action: str,
    note: str | None,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO moderation_audit (item_kind, item_id, actor_id, action, note, before, after) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (kind, item_id, actor_id, action, note, Jsonb(_snapshot(before)), Jsonb(_snapshot(after))),
    )


async def _update(
    conn: Connection, kind: Kind, item_id: int, assignments: str, params: dict[str, Any], condition: str
) -> dict[str, Any] | None:
    query = sql.SQL("UPDATE {} SET {}, updated_at = now() WHERE id = %(id)s AND {} RETURNING {}, {} AS kind").format(
        _table(kind), sql.SQL(assignments), sql.SQL(condition), sql.SQL(_columns(kind)), sql.Literal(kind)
    )
    cursor = await conn.execute(query, {**params, "id": item_id})
    return await cursor.fetchone()


async def apply_verdict(
    conn: Connection, kind: Kind, item_id: int, verdict: Verdict, *, attempts: int
) -> dict[str, Any] | None:
    """The models' verdict, if the item still waits for it after `attempts` failures; the updated row or None."""
    before = await get_item(conn, kind, item_id, lock=True)
    if before is None:
        return None
    after = await _update(
        conn,
        kind,
        item_id,
        "status = %(status)s, body = %(body)s, reason = %(reason)s, review_reason = %(review_reason)s, "
        "flagged = %(flagged)s, redactions = %(redactions)s, scores = %(scores)s, last_error = NULL, "
        "moderated_at = now()",
        {
            "status": verdict.status,
            "body": verdict.text,
            "reason": verdict.reason,
            "review_reason": verdict.review_reason,
            "flagged": verdict.flagged,
            "redactions": list(verdict.redactions),
            "scores": Jsonb(verdict.scores),
            "attempts": attempts,
        },
        _UNDECIDED,
    )
    if after is not None:
        await audit(conn, kind, item_id, None, "verdict", None, before, after)
    return after


async def record_failure(
    conn: Connection, kind: Kind, item_id: int, *, attempts: int, error: str, final: bool, reason: str
) -> dict[str, Any] | None:
    """Attempt number `attempts` failed: pending review, retrying or (final) flagged for a human."""
    before = await get_item(conn, kind, item_id, lock=True)
    if before is None:
        return None
    after = await _update(
        conn,
        kind,
        item_id,
        "status = 'pending_review', attempts = %(new_attempts)s, last_error = %(error)s, reason = %(reason)s, "
        "review_reason = %(review_reason)s, flagged = %(final)s",
        {
            "new_attempts": attempts,
            "attempts": attempts - 1,
            "error": error[:1000],
            "reason": reason,
            "review_reason": "moderation_failed" if final else "retrying",
            "final": final,
        },
        _UNDECIDED,
    )
    if after is not None:
        action = "flagged_after_failures" if final else "moderation_failed"
        await audit(conn, kind, item_id, None, action, error[:1000], before, after)
    return after


async def decide(
    conn: Connection,
    kind: Kind,
    before: dict[str, Any],
    changes: dict[str, Any],
    actor_id: int,
    action: str,
    note: str | None,
) -> dict[str, Any]:
    """A moderator's decision on a locked row: `changes` applied, flag cleared, audited."""
    assignments = ", ".join(f"{name} = %({name})s" for name in changes)
    after = await _update(
        conn,
        kind,
        int(before["id"]),
        f"{assignments}, flagged = false, moderated_at = now(), moderated_by = %(actor)s",
        {**changes, "actor": actor_id},
        "TRUE",
    )
    assert after is not None  # noqa: S101 - the row is locked by the caller
    await audit(conn, kind, int(before["id"]), actor_id, action, note, before, after)
    return after


async def queue(
    conn: Connection,
    *,
    flagged: bool | None,
    status: str | None,
    review_reason: str | None,
    older_than: datetime | None,
    newer_than: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Questions and answers matching the filters, oldest first, and how many match in all."""
    filters = ["TRUE"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    for name, value, clause in (
        ("flagged", flagged, "flagged = %(flagged)s"),
        ("status", status, "status = %(status)s"),
        ("review_reason", review_reason, "review_reason = %(review_reason)s"),
        ("older_than", older_than, "created_at <= %(older_than)s"),
        ("newer_than", newer_than, "created_at >= %(newer_than)s"),
    ):
        if value is not None:
            filters.append(clause)
            params[name] = value
    where = " AND ".join(filters)
    union = (
        f"SELECT 'question' AS kind, {_columns('question')} FROM questions WHERE {where} "
        f"UNION ALL SELECT 'answer' AS kind, {_columns('answer')} FROM answers WHERE {where}"
    )
    cursor = await conn.execute(
        f"SELECT *, count(*) OVER () AS total FROM ({union}) items "  # noqa: S608 - fixed fragments, bound values
        "ORDER BY created_at, kind DESC, id LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    rows = await cursor.fetchall()
    total = int(rows[0]["total"]) if rows else 0
    if not rows and offset:
        count = await conn.execute(f"SELECT count(*) AS n FROM ({union}) items", params)  # noqa: S608
        total = int((await count.fetchone() or {"n": 0})["n"])
    return rows, total


async def audit_trail(conn: Connection, kind: Kind, item_id: int) -> Sequence[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT id, actor_id, action, note, before, after, at FROM moderation_audit "
        "WHERE item_kind = %s AND item_id = %s ORDER BY id",
        (kind, item_id),
    )
    return await cursor.fetchall()


# -- submissions ------------------------------------------------------------------------------------


async def listing(conn: Connection, vehicle_id: int) -> dict[str, Any] | None:
    cursor = await conn.execute(
        "SELECT v.id, v.status, v.deleted_at, d.owner_id FROM vehicles v JOIN dealers d ON d.id = v.dealer_id "
        "WHERE v.id = %s",
        (vehicle_id,),
    )
    return await cursor.fetchone()


async def insert_question(
    conn: Connection, vehicle_id: int, user_id: int, body: str, redactions: Sequence[str]
) -> dict[str, Any]:
    cursor = await conn.execute(
        f"INSERT INTO questions (vehicle_id, user_id, body, redactions) VALUES (%s, %s, %s, %s) "
        f"RETURNING {_columns('question')}, 'question' AS kind",
        (vehicle_id, user_id, body, list(redactions)),
    )
    row = await cursor.fetchone()
    assert row is not None  # noqa: S101
    return row


async def insert_answer(
    conn: Connection, question_id: int, user_id: int, body: str, redactions: Sequence[str]
) -> dict[str, Any]:
    cursor = await conn.execute(
        f"INSERT INTO answers (question_id, user_id, body, redactions) VALUES (%s, %s, %s, %s) "
        f"RETURNING {_columns('answer')}, 'answer' AS kind",
        (question_id, user_id, body, list(redactions)),
    )
    row = await cursor.fetchone()
    assert row is not None  # noqa: S101
    return row


async def question_listing(conn: Connection, question_id: int) -> dict[str, Any] | None:
    """The question with its listing's dealer owner (who may answer it)."""
    cursor = await conn.execute(
        "SELECT q.id, q.status, q.vehicle_id, d.owner_id FROM questions q JOIN vehicles v ON v.id = q.vehicle_id "
        "JOIN dealers d ON d.id = v.dealer_id WHERE q.id = %s",
        (question_id,),
    )
    return await cursor.fetchone()
