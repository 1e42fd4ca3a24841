"""/api/v1/auth: register, login (OAuth2 password flow), refresh, logout."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, EmailStr, Field

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


@router.post("/login")
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], accounts: AccountsDep) -> dict[str, Any]:
    """OAuth2 password flow: form fields `username` (the email) and `password`."""
    return token_body(await accounts.login(form.username, form.password))


@router.post("/refresh")
async def refresh(body: RefreshRequest, accounts: AccountsDep) -> dict[str, Any]:
    """Trade a refresh token for a new pair; each refresh token works once."""
    return token_body(await accounts.refresh(body.refresh_token))


@router.post("/logout")
async def logout(body: RefreshRequest, user: CurrentUserDep, accounts: AccountsDep) -> dict[str, Any]:
    """Revoke the session of this refresh token (every token rotated from the same sign-in)."""
    await accounts.logout(user, body.refresh_token)
    return success(None, "signed out")
