"""Accounts: registration, sign-in, refresh-token rotation with reuse detection, sign-out, profiles.

Knows nothing of HTTP: it raises `hub.errors` exceptions that the API turns into responses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from hub.errors import Conflict, Forbidden, InvalidParameter, NotFound, Unauthorized
from marketplace import user_store
from marketplace.db import Connection, transaction
from marketplace.passwords import check_password_rules, hash_password, verify_password
from marketplace.settings import MarketplaceSettings
from marketplace.tokens import (
    AccessClaims,
    InvalidToken,
    issue_access_token,
    new_refresh_token,
    read_access_token,
    refresh_token_hash,
)

SELF_SERVICE_ROLES = frozenset({"buyer", "dealer"})
ROLES = frozenset({"buyer", "dealer", "moderator", "admin"})
# Verified against when the email is unknown, so a sign-in takes as long whether or not the account exists.
_DUMMY_HASH = "$2b$12$C6UzMDM.H6dfI/f/IKcEeO5wJpXr6kJcL1lWjK7l0yqv8l2x6i9Tm"


@dataclass(frozen=True)
class CurrentUser:
    id: int
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class Accounts:
    def __init__(self, pool: AsyncConnectionPool[Connection], settings: MarketplaceSettings, secret: str) -> None:
        self.pool = pool
        self.settings = settings
        self.secret = secret
        self.access_ttl = timedelta(minutes=settings.access_token_minutes)
        self.refresh_ttl = timedelta(days=settings.refresh_token_days)

    # -- sign-up and sign-in --------------------------------------------------------------------------

    async def register(self, email: str, password: str, full_name: str, role: str) -> dict[str, Any]:
        if role not in SELF_SERVICE_ROLES:
            raise InvalidParameter("role", f"sign up as one of {sorted(SELF_SERVICE_ROLES)}; admins grant other roles")
        problem = check_password_rules(password)
        if problem:
            raise InvalidParameter("password", problem)
        password_hash = await hash_password(password, self.settings.bcrypt_rounds)
        try:
            async with transaction(self.pool) as conn:
                return await user_store.insert_user(conn, email.strip().lower(), password_hash, full_name.strip(), role)
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"an account with email {email!r} already exists; sign in instead") from exc

    async def login(self, email: str, password: str) -> TokenPair:
        async with transaction(self.pool) as conn:
            user = await user_store.user_by_email(conn, email.strip())
        if user is None:
            await verify_password(password, _DUMMY_HASH)
            raise Unauthorized("wrong email or password")
        if not await verify_password(password, user["password_hash"]):
            raise Unauthorized("wrong email or password")
        async with transaction(self.pool) as conn:
            return await self._issue(conn, int(user["id"]), str(user["role"]), uuid.uuid4())

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: the presented token is spent; presenting a spent token again revokes its whole family."""
        reused = False
        async with transaction(self.pool) as conn:
            stored = await user_store.refresh_token_for_update(conn, refresh_token_hash(refresh_token))
            if stored is None:
                raise Unauthorized("unknown refresh token; sign in again")
            if stored["revoked_at"] is not None:
                raise Unauthorized("this session was signed out; sign in again")
            if stored["rotated_at"] is not None:
                # Someone holds an old token of this chain: end every session descended from that sign-in.
                await user_store.revoke_family(conn, stored["family_id"])
                reused = True
            elif stored["expires_at"] <= datetime.now(UTC) or stored["deleted_at"] is not None:
                raise Unauthorized("the refresh token has expired; sign in again")
            else:
                await user_store.mark_rotated(conn, int(stored["id"]))
                return await self._issue(conn, int(stored["user_id"]), str(stored["role"]), stored["family_id"])
        if reused:
            raise Unauthorized("refresh token reuse detected: every session of that sign-in was revoked; sign in again")
        raise AssertionError("unreachable")  # pragma: no cover

    async def logout(self, user: CurrentUser, refresh_token: str) -> None:
        async with transaction(self.pool) as conn:
            stored = await user_store.refresh_token_for_update(conn, refresh_token_hash(refresh_token))
            if stored is None or int(stored["user_id"]) != user.id:
                raise Unauthorized("unknown refresh token for this user")
            await user_store.revoke_family(conn, stored["family_id"])

    async def _issue(self, conn: Connection, user_id: int, role: str, family_id: uuid.UUID) -> TokenPair:
        refresh = new_refresh_token()
        expires_at = datetime.now(UTC) + self.refresh_ttl
        await user_store.insert_refresh_token(conn, user_id, family_id, refresh_token_hash(refresh), expires_at)
        access = issue_access_token(user_id, role, self.secret, self.access_ttl)
        return TokenPair(access, refresh, int(self.access_ttl.total_seconds()))

    def authenticate(self, access_token: str) -> CurrentUser:
        try:
            claims: AccessClaims = read_access_token(access_token, self.secret)
        except InvalidToken as exc:
            raise Unauthorized(str(exc)) from exc
        return CurrentUser(claims.user_id, claims.role)

    # -- users ----------------------------------------------------------------------------------------

    async def get_user(self, actor: CurrentUser, user_id: int) -> dict[str, Any]:
        self._require_self_or_admin(actor, user_id)
        async with transaction(self.pool) as conn:
            user = await user_store.user_by_id(conn, user_id)
        if user is None or (user["deleted_at"] is not None and not actor.is_admin):
            raise NotFound(f"user {user_id} not found")
        return user

    async def update_user(self, actor: CurrentUser, user_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        self._require_self_or_admin(actor, user_id)
        if "role" in changes and not actor.is_admin:
            raise Forbidden("only an admin changes roles")
        if "role" in changes and changes["role"] not in ROLES:
            raise InvalidParameter("role", f"one of {sorted(ROLES)}")
        if "password" in changes:
            problem = check_password_rules(changes["password"])
            if problem:
                raise InvalidParameter("password", problem)
            changes = {
                **changes,
                "password_hash": await hash_password(changes.pop("password"), self.settings.bcrypt_rounds),
            }
        try:
            async with transaction(self.pool) as conn:
                user = await user_store.update_user(conn, user_id, changes)
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict("that email belongs to another account") from exc
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    async def delete_user(self, actor: CurrentUser, user_id: int) -> None:
        self._require_self_or_admin(actor, user_id)
        async with transaction(self.pool) as conn:
            if not await user_store.erase_user(conn, user_id):
                raise NotFound(f"user {user_id} not found")

    async def list_users(
        self, actor: CurrentUser, limit: int, offset: int, role: str | None
    ) -> tuple[list[dict[str, Any]], int]:
        if not actor.is_admin:
            raise Forbidden("only admins list users")
        async with transaction(self.pool) as conn:
            return await user_store.list_users(conn, limit, offset, role)

    @staticmethod
    def _require_self_or_admin(actor: CurrentUser, user_id: int) -> None:
        if actor.id != user_id and not actor.is_admin:
            raise Forbidden("you can only see and change your own account")
