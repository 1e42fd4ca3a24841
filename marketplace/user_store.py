"""SQL of users and refresh tokens (parameterized; the caller owns the transaction)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from marketplace.db import Connection

USER_COLUMNS = "id, email, full_name, role, phone, created_at, updated_at, deleted_at"


async def insert_user(conn: Connection, email: str, password_hash: str, full_name: str, role: str) -> dict[str, Any]:
    cursor = await conn.execute(
        f"INSERT INTO users (email, password_hash, full_name, role) VALUES (%s, %s, %s, %s) RETURNING {USER_COLUMNS}",
        (email, password_hash, full_name, role),
    )
    row = await cursor.fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
    return row


async def user_by_email(conn: Connection, email: str) -> dict[str, Any] | None:
    cursor = await conn.execute(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower(%s) AND deleted_at IS NULL",
        (email,),
    )
    return await cursor.fetchone()


async def user_by_id(conn: Connection, user_id: int) -> dict[str, Any] | None:
    cursor = await conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s", (user_id,))
    return await cursor.fetchone()


async def list_users(conn: Connection, limit: int, offset: int, role: str | None) -> tuple[list[dict[str, Any]], int]:
    where = "WHERE deleted_at IS NULL" + (" AND role = %(role)s" if role else "")
    params = {"role": role, "limit": limit, "offset": offset}
    cursor = await conn.execute(
        f"SELECT {USER_COLUMNS}, count(*) OVER () AS total FROM users {where} "
        "ORDER BY id LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    rows = await cursor.fetchall()
    if rows:
        return [{k: v for k, v in row.items() if k != "total"} for row in rows], int(rows[0]["total"])
    count = await (await conn.execute(f"SELECT count(*) AS total FROM users {where}", params)).fetchone()
    return [], int(count["total"]) if count else 0


async def update_user(conn: Connection, user_id: int, changes: dict[str, Any]) -> dict[str, Any] | None:
    allowed = {"full_name", "phone", "email", "role", "password_hash"}
    fields = {name: value for name, value in changes.items() if name in allowed}
    if not fields:
        return await user_by_id(conn, user_id)
    assignments = ", ".join(f"{name} = %({name})s" for name in fields)
    cursor = await conn.execute(
        f"UPDATE users SET {assignments}, updated_at = now() WHERE id = %(id)s AND deleted_at IS NULL "
        f"RETURNING {USER_COLUMNS}",
        {**fields, "id": user_id},
    )
    return await cursor.fetchone()


async def erase_user(conn: Connection, user_id: int) -> bool:
    """Remove personal data, keep the row (bids and auctions refer to it), revoke every session, suspend the
    store the account owned."""
    cursor = await conn.execute(
        "UPDATE users SET email = 'deleted-' || id || '@deleted.invalid', full_name = 'Deleted user', phone = NULL, "
        "password_hash = '!', deleted_at = now(), updated_at = now() WHERE id = %s AND deleted_at IS NULL",
        (user_id,),
    )
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL", (user_id,)
    )
    # The store of a deleted owner stops trading and loses its personal contact details.
    await conn.execute(
        "UPDATE dealers SET status = 'suspended', contact_email = NULL, phone = NULL, updated_at = now() "
        "WHERE owner_id = %s",
        (user_id,),
    )
    return cursor.rowcount == 1


async def insert_refresh_token(
    conn: Connection, user_id: int, family_id: uuid.UUID, token_hash: bytes, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) VALUES (%s, %s, %s, %s)",
        (user_id, family_id, token_hash, expires_at),
    )


async def refresh_token_for_update(conn: Connection, token_hash: bytes) -> dict[str, Any] | None:
    cursor = await conn.execute(
        "SELECT t.id, t.user_id, t.family_id, t.expires_at, t.rotated_at, t.revoked_at, u.role, u.deleted_at "
        "FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = %s FOR UPDATE OF t",
        (token_hash,),
    )
    return await cursor.fetchone()


async def mark_rotated(conn: Connection, token_id: int) -> None:
    await conn.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE id = %s", (token_id,))


async def revoke_family(conn: Connection, family_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = %s AND revoked_at IS NULL", (family_id,)
    )
