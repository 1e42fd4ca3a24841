"""An in-process API over a real PostgreSQL database, with helpers to sign people up and in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from hub.api import create_app
from search_api.settings import ApiSettings

JWT_SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse 42"  # noqa: S105 - a test account


@dataclass
class Member:
    id: int
    email: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@asynccontextmanager
async def marketplace_client(database_url: str, index_path: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    api_settings = ApiSettings(
        index_path=index_path, database_url=database_url, jwt_secret=JWT_SECRET, bcrypt_rounds=4, **settings
    )
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def sign_up(
    client: httpx.AsyncClient, email: str, role: str = "buyer", database_url: str | None = None
) -> Member:
    """Register and sign in; roles other than buyer/dealer are granted in the database, as an operator would."""
    self_service = role if role in ("buyer", "dealer") else "buyer"
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "full_name": email.split("@")[0],
                                       "role": self_service},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    user_id = int(response.json()["data"]["id"])
    if role != self_service:
        assert database_url is not None
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE users SET role = %s WHERE id = %s", (role, user_id))
    return await sign_in(client, email, user_id, role)


async def sign_in(client: httpx.AsyncClient, email: str, user_id: int, role: str) -> Member:
    response = await client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    tokens = response.json()
    return Member(user_id, email, role, tokens["access_token"], tokens["refresh_token"])
