"""Dealers: a user registers a store, admins verify or suspend it, statistics come from the data.

Knows nothing of HTTP: it raises `hub.errors` exceptions that the API turns into responses. Who sees what:
any signed-in user sees a store's public fields, its listed cars and its auctions; only the owner and admins
see its owner, licence number and contact email, its unlisted cars (drafts, withdrawn) and its statistics.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from hub.errors import Conflict, Forbidden, InvalidParameter, NotFound, Unauthorized
from marketplace import dealer_store
from marketplace.accounts import CurrentUser
from marketplace.catalog import location_for_zip
from marketplace.db import Connection, transaction

STATUSES = frozenset({"pending", "verified", "suspended"})
# Roles that may own a store; staff accounts stay staff (registering would demote them).
OWNER_ROLES = frozenset({"buyer", "dealer"})
PRIVATE_FIELDS = ("owner_id", "licence_number", "contact_email")
PUBLIC_CAR_STATUSES = ("active", "in_auction", "sold")
ALL_CAR_STATUSES = ("draft", "active", "in_auction", "sold", "withdrawn")


class Dealers:
    def __init__(self, pool: AsyncConnectionPool[Connection]) -> None:
        self.pool = pool

    async def register(self, actor: CurrentUser, fields: dict[str, Any]) -> dict[str, Any]:
        """Create the actor's store (status `pending`); a buyer who registers one becomes a dealer."""
        if actor.role not in OWNER_ROLES:
            raise Forbidden(f"a {actor.role} account cannot own a store; register one with a buyer or dealer account")
        row = {**fields, **_location(fields["zip"]), "owner_id": actor.id}
        row["licence_number"] = _normalize_licence(row["licence_number"])
        try:
            async with transaction(self.pool) as conn:
                user = await dealer_store.user_for_update(conn, actor.id)
                if user is None or user["deleted_at"] is not None:
                    raise Unauthorized("this account no longer exists; sign in again")
                existing = await dealer_store.dealer_by_owner(conn, actor.id)
                if existing is not None:
                    raise Conflict(
                        f"you already registered store {existing['id']}; change it with PATCH /api/v1/dealers/"
                        f"{existing['id']}",
                        dealer_id=existing["id"],
                    )
                dealer = await dealer_store.insert_dealer(conn, row)
                if user["role"] != "dealer":
                    await dealer_store.set_user_role(conn, actor.id, "dealer")
                return dealer
        except psycopg.errors.UniqueViolation as exc:
            raise _unique_conflict(exc) from exc

    async def get(self, actor: CurrentUser, dealer_id: int) -> dict[str, Any]:
        async with transaction(self.pool) as conn:
            dealer = await self._dealer(conn, dealer_id)
        return _visible(actor, dealer)

    async def owned_by(self, actor: CurrentUser) -> dict[str, Any]:
        """The store the signed-in user owns (404 saying how to register one if none)."""
        async with transaction(self.pool) as conn:
            dealer = await dealer_store.dealer_by_owner(conn, actor.id)
        if dealer is None:
            raise NotFound("you own no store: register one with POST /api/v1/dealers")
        return _visible(actor, dealer)

    async def list_dealers(
        self, actor: CurrentUser, limit: int, offset: int, status: str | None, state: str | None
    ) -> tuple[list[dict[str, Any]], int]:
        async with transaction(self.pool) as conn:
            rows, total = await dealer_store.list_dealers(conn, limit, offset, status, state)
        return [_visible(actor, row) for row in rows], total

    async def update(self, actor: CurrentUser, dealer_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """The owner (or an admin) changes the store; a new licence number sends it back to verification."""
        if "status" in changes:
            raise InvalidParameter("status", "admins change a store's status with PATCH /api/v1/dealers/{id}/status")
        changes = dict(changes)
        if "zip" in changes:
            changes.update(_location(changes["zip"]))
        if "licence_number" in changes:
            changes["licence_number"] = _normalize_licence(changes["licence_number"])
        try:
            async with transaction(self.pool) as conn:
                dealer = await self._dealer(conn, dealer_id, for_update=True)
                _require_owner_or_admin(actor, dealer, "change")
                licence_changed = changes.get("licence_number", dealer["licence_number"]) != dealer["licence_number"]
                if licence_changed and not actor.is_admin and dealer["status"] == "verified":
                    changes["status"] = "pending"
                updated = await dealer_store.update_dealer(conn, dealer_id, changes)
        except psycopg.errors.UniqueViolation as exc:
            raise _unique_conflict(exc) from exc
        assert updated is not None  # noqa: S101 - the row is locked above
        return _visible(actor, updated)

    async def set_status(self, actor: CurrentUser, dealer_id: int, status: str) -> dict[str, Any]:
        """Admins verify or suspend a store (or send it back to `pending`)."""
        if not actor.is_admin:
            raise Forbidden("only admins verify or suspend stores")
        if status not in STATUSES:
            raise InvalidParameter("status", f"one of {sorted(STATUSES)}")
        async with transaction(self.pool) as conn:
            await self._dealer(conn, dealer_id, for_update=True)
            updated = await dealer_store.update_dealer(conn, dealer_id, {"status": status})
        assert updated is not None  # noqa: S101 - the row is locked above
        return _visible(actor, updated)

    async def statistics(self, actor: CurrentUser, dealer_id: int) -> dict[str, Any]:
        async with transaction(self.pool) as conn:
            dealer = await self._dealer(conn, dealer_id)
            _require_owner_or_admin(actor, dealer, "see the statistics of")
            stats = await dealer_store.dealer_statistics(conn, dealer_id)
        return {"dealer_id": dealer_id, **{name: _plain(value) for name, value in stats.items()}}

    async def cars(
        self, actor: CurrentUser, dealer_id: int, limit: int, offset: int, status: str | None
    ) -> tuple[list[dict[str, Any]], int]:
        """Listed cars for everyone; drafts and withdrawn cars too for the owner and admins."""
        async with transaction(self.pool) as conn:
            dealer = await self._dealer(conn, dealer_id)
            visible = ALL_CAR_STATUSES if _is_owner_or_admin(actor, dealer) else PUBLIC_CAR_STATUSES
            statuses = tuple(s for s in visible if status is None or s == status)
            if not statuses:
                return [], 0
            return await dealer_store.dealer_vehicles(conn, dealer_id, limit, offset, statuses)

    async def auctions(
        self, actor: CurrentUser, dealer_id: int, limit: int, offset: int, status: str | None
    ) -> tuple[list[dict[str, Any]], int]:
        async with transaction(self.pool) as conn:
            await self._dealer(conn, dealer_id)
            return await dealer_store.dealer_auctions(conn, dealer_id, limit, offset, status)

    @staticmethod
    async def _dealer(conn: Connection, dealer_id: int, *, for_update: bool = False) -> dict[str, Any]:
        dealer = await dealer_store.dealer_by_id(conn, dealer_id, for_update=for_update)
        if dealer is None:
            raise NotFound(f"dealer {dealer_id} not found")
        return dealer


def _location(zip_code: str) -> dict[str, Any]:
    location = location_for_zip(zip_code)
    if location is None:
        raise InvalidParameter("zip", f"unknown US ZIP code {zip_code!r}; give the store's 5-digit ZIP code")
    return {"zip": location.zip, "city": location.city, "state": location.state, "lat": location.lat,
            "lon": location.lon}  # fmt: skip


def _normalize_licence(licence: str) -> str:
    return licence.strip().upper()


def _unique_conflict(exc: psycopg.errors.UniqueViolation) -> Conflict:
    if exc.diag.constraint_name == "dealers_licence_number_key":
        return Conflict("another store is registered with that licence number; check the number")
    return Conflict("you already registered a store; change it with PATCH /api/v1/dealers/{id}")


def _is_owner_or_admin(actor: CurrentUser, dealer: dict[str, Any]) -> bool:
    return actor.is_admin or dealer["owner_id"] == actor.id


def _require_owner_or_admin(actor: CurrentUser, dealer: dict[str, Any], action: str) -> None:
    if not _is_owner_or_admin(actor, dealer):
        raise Forbidden(f"only the store's owner or an admin can {action} dealer {dealer['id']}")


def _visible(actor: CurrentUser, dealer: dict[str, Any]) -> dict[str, Any]:
    """The store as `actor` may see it: contact and licence only for the owner and admins."""
    if _is_owner_or_admin(actor, dealer):
        return dealer
    return {name: value for name, value in dealer.items() if name not in PRIVATE_FIELDS}


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value
