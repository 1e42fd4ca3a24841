"""/api/v1/users: own profile for everyone, every account for admins."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from marketplace.api.deps import AccountsDep, CurrentUserDep
from marketplace.api.envelope import PHONE_PATTERN, Page, paginated, success

router = APIRouter(prefix="/api/v1/users", tags=["users"])

UserId = Annotated[int, Path(ge=1, le=2**62)]


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    email: EmailStr | None = None
    password: str | None = Field(default=None, min_length=1, max_length=200)
    role: Literal["buyer", "dealer", "moderator", "admin"] | None = None


def user_body(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": user["id"],
        "email": user["email"],
        "full_name": user["full_name"],
        "role": user["role"],
        "phone": user.get("phone"),
        "created_at": user["created_at"].isoformat(),
        "deleted": user.get("deleted_at") is not None,
    }


@router.get("")
async def list_users(
    user: CurrentUserDep,
    accounts: AccountsDep,
    page: Annotated[Page, Query()],
    role: Annotated[Literal["buyer", "dealer", "moderator", "admin"] | None, Query()] = None,
) -> dict[str, Any]:
    """Every account (admins only)."""
    users, total = await accounts.list_users(user, page.limit, page.offset, role)
    return paginated([user_body(row) for row in users], page, total)


@router.get("/me")
async def me(user: CurrentUserDep, accounts: AccountsDep) -> dict[str, Any]:
    return success(user_body(await accounts.get_user(user, user.id)))


@router.get("/{user_id}")
async def get_user(user_id: UserId, user: CurrentUserDep, accounts: AccountsDep) -> dict[str, Any]:
    return success(user_body(await accounts.get_user(user, user_id)))


@router.get("/{user_id}/profile")
async def get_profile(user_id: UserId, user: CurrentUserDep, accounts: AccountsDep) -> dict[str, Any]:
    return success(user_body(await accounts.get_user(user, user_id)))


@router.patch("/{user_id}/profile")
async def update_profile(
    user_id: UserId, body: ProfileUpdate, user: CurrentUserDep, accounts: AccountsDep
) -> dict[str, Any]:
    """Change name, phone, email or password (role: admins only)."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return success(user_body(await accounts.update_user(user, user_id, changes)))


@router.delete("/{user_id}")
async def delete_user(user_id: UserId, user: CurrentUserDep, accounts: AccountsDep) -> dict[str, Any]:
    """Delete an account: personal data is erased, bid history stays (anonymous), every session ends."""
    await accounts.delete_user(user, user_id)
    return success(None, "account deleted")
