"""/api/v1/auth: register, login (OAuth2 password flow), refresh, logout."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request, status
from pydantic import BaseModel, EmailStr, Field

from hub.errors import InvalidParameter
from marketplace.accounts import TokenPair
from marketplace.api.deps import AccountsDep, CurrentUserDep
from marketplace.api.envelope import success
from marketplace.api.users import user_body

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class Registration(BaseModel):
    email: EmailStr
    password: str = Field(min_length=1, max_length=200)
    full_name: str = Field(min_length=1, max_length=200)
    role: Literal["buyer", "dealer"] = "buyer"


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


def token_body(tokens: TokenPair) -> dict[str, Any]:
    # The OAuth2 password flow reads access_token/token_type at the top level (OpenAPI's Authorize button).
    return {
        "access_token": tokens.access_token,
        "token_type": "bearer",
        "expires_in": tokens.expires_in,
        "refresh_token": tokens.refresh_token,
    }


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(body: Registration, accounts: AccountsDep) -> dict[str, Any]:
    """Create a buyer or dealer account (a dealer then registers a store under /api/v1/dealers)."""
    user = await accounts.register(body.email, body.password, body.full_name, body.role)
    return success(user_body(user), "account created; sign in at /api/v1/auth/login")


async def sign_in_fields(
    request: Request,
    username: Annotated[str | None, Form(description="your email")] = None,
    password: Annotated[str | None, Form()] = None,
) -> tuple[str, str]:
    """The OAuth2 form's `username` and `password`; a JSON body `{"username" or "email", "password"}` also works,
    since that is what most clients send first."""
    if username is None and password is None and request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise InvalidParameter(
                "body", 'not valid JSON; send a form, or {"username": ..., "password": ...}'
            ) from None
        if isinstance(body, dict):
            username, password = body.get("username") or body.get("email"), body.get("password")
    missing = [name for name, value in (("username", username), ("password", password)) if not isinstance(value, str)]
    if missing:
        raise InvalidParameter(
            missing[0], "send username (your email) and password as form fields, or as a JSON object"
        )
    return str(username), str(password)


@router.post("/login")
async def login(
    credentials: Annotated[tuple[str, str], Depends(sign_in_fields)], accounts: AccountsDep
) -> dict[str, Any]:
    """OAuth2 password flow: form fields `username` (the email) and `password` (or the same as a JSON object)."""
    return token_body(await accounts.login(*credentials))


@router.post("/refresh")
async def refresh(body: RefreshRequest, accounts: AccountsDep) -> dict[str, Any]:
    """Trade a refresh token for a new pair; each refresh token works once."""
    return token_body(await accounts.refresh(body.refresh_token))


@router.post("/logout")
async def logout(body: RefreshRequest, user: CurrentUserDep, accounts: AccountsDep) -> dict[str, Any]:
    """Revoke the session of this refresh token (every token rotated from the same sign-in)."""
    await accounts.logout(user, body.refresh_token)
    return success(None, "signed out")
