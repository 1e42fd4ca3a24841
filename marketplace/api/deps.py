"""Request dependencies of the marketplace API: the services and the signed-in user.

All `async def`: they never block (a token is checked in microseconds, from the claims cache), and FastAPI runs a
plain `def` dependency in its thread pool, whose hand-off costs more than the work under load.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from psycopg_pool import AsyncConnectionPool

from hub.errors import Forbidden, ServiceUnavailable, Unauthorized
from marketplace.accounts import Accounts, CurrentUser
from marketplace.db import Connection

# `auto_error=False`: a missing token gets the API's own 401 body, not FastAPI's.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


async def get_accounts(request: Request) -> Accounts:
    accounts: Accounts | None = getattr(request.app.state, "accounts", None)
    if accounts is None:
        raise ServiceUnavailable(
            "the marketplace API is not configured: set AUCTION_HUB_JWT_SECRET (32+ characters) and restart",
            headers={"Retry-After": "60"},
        )
    return accounts


AccountsDep = Annotated[Accounts, Depends(get_accounts)]


async def get_pool(request: Request, _: AccountsDep) -> AsyncConnectionPool[Connection]:
    """The marketplace database pool (present whenever the write API is configured)."""
    pool: AsyncConnectionPool[Connection] = request.app.state.pool
    return pool


PoolDep = Annotated[AsyncConnectionPool[Connection], Depends(get_pool)]


async def current_user(accounts: AccountsDep, token: Annotated[str | None, Depends(oauth2_scheme)]) -> CurrentUser:
    if not token:
        raise Unauthorized("sign in first: send `Authorization: Bearer <access token>` from POST /api/v1/auth/login")
    return accounts.authenticate(token)


CurrentUserDep = Annotated[CurrentUser, Depends(current_user)]


def require_roles(*roles: str) -> Callable[[CurrentUser], Awaitable[CurrentUser]]:
    async def check(user: CurrentUserDep) -> CurrentUser:
        if user.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(roles)}; you are {user.role}")
        return user

    return check
