"""Sign-up, sign-in, token expiry, refresh rotation with reuse detection, sign-out; over real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from marketplace.tokens import issue_access_token
from tests.marketplace.api_client import JWT_SECRET, PASSWORD, marketplace_client, sign_up


@pytest.fixture
async def client(migrated_database: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with marketplace_client(migrated_database, tmp_path / "index") as http:
        yield http


async def test_register_login_and_read_own_profile(client: httpx.AsyncClient) -> None:
    member = await sign_up(client, "ana@example.com")
    response = await client.get("/api/v1/users/me", headers=member.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["data"]["email"] == "ana@example.com"
    assert "password_hash" not in body["data"]


async def test_registration_errors_say_what_to_fix(client: httpx.AsyncClient) -> None:
    await sign_up(client, "bo@example.com")
    duplicate = await client.post(
        "/api/v1/auth/register", json={"email": "BO@example.com", "password": PASSWORD, "full_name": "Bo"}
    )
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["error"]["message"]
    weak = await client.post(
        "/api/v1/auth/register", json={"email": "cy@example.com", "password": "short", "full_name": "Cy"}
    )
    assert weak.status_code == 422
    assert weak.json()["error"]["problems"][0]["parameter"] == "password"
    admin = await client.post(
        "/api/v1/auth/register",
        json={"email": "dee@example.com", "password": PASSWORD, "full_name": "Dee", "role": "admin"},
    )
    assert admin.status_code == 422
    bad_email = await client.post(
        "/api/v1/auth/register", json={"email": "not-an-email", "password": PASSWORD, "full_name": "X"}
    )
    assert bad_email.status_code == 422


async def test_wrong_password_and_missing_token_are_401(client: httpx.AsyncClient) -> None:
    await sign_up(client, "eve@example.com")
    wrong = await client.post("/api/v1/auth/login", data={"username": "eve@example.com", "password": "nope nope 1"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    unknown = await client.post("/api/v1/auth/login", data={"username": "nobody@example.com", "password": PASSWORD})
    assert unknown.status_code == 401
    assert (await client.get("/api/v1/users/me")).status_code == 401
    forged = await client.get("/api/v1/users/me", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401


async def test_expired_access_token_is_refused(client: httpx.AsyncClient) -> None:
    member = await sign_up(client, "fay@example.com")
    old = issue_access_token(
        member.id, "buyer", JWT_SECRET, timedelta(minutes=15), now=datetime.now(UTC) - timedelta(hours=1)
    )
    response = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {old}"})
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


async def test_access_tokens_expire_within_an_hour(client: httpx.AsyncClient) -> None:
    member = await sign_up(client, "gus@example.com")
    login = await client.post("/api/v1/auth/login", data={"username": member.email, "password": PASSWORD})
    assert 0 < login.json()["expires_in"] <= 3600


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    member = await sign_up(client, "hal@example.com")
    first = await client.post("/api/v1/auth/refresh", json={"refresh_token": member.refresh_token})
    assert first.status_code == 200
    rotated = first.json()["refresh_token"]
    assert rotated != member.refresh_token
    assert (await client.get("/api/v1/users/me", headers=bearer(first.json()["access_token"]))).status_code == 200

    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": member.refresh_token})
    assert reused.status_code == 401
    assert "reuse" in reused.json()["error"]["message"]
    # The thief's reuse also ended the legitimate holder's session.
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated})
    assert after.status_code == 401


async def test_logout_revokes_the_session(client: httpx.AsyncClient) -> None:
    member = await sign_up(client, "ivy@example.com")
    response = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": member.refresh_token}, headers=member.headers
    )
    assert response.status_code == 200
    refused = await client.post("/api/v1/auth/refresh", json={"refresh_token": member.refresh_token})
    assert refused.status_code == 401
    assert "signed out" in refused.json()["error"]["message"]


async def test_sign_in_takes_the_oauth2_form_or_a_json_object(client: httpx.AsyncClient) -> None:
    member = await sign_up(client, "json@example.com")
    for body in ({"username": member.email, "password": PASSWORD}, {"email": member.email, "password": PASSWORD}):
        signed_in = await client.post("/api/v1/auth/login", json=body)
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["token_type"] == "bearer"
    wrong = await client.post("/api/v1/auth/login", json={"username": member.email, "password": "not it 123"})
    assert wrong.status_code == 401
    incomplete: list[tuple[object, str]] = [
        ({"username": member.email}, "password"),
        ({}, "username"),
        ([1], "username"),
    ]
    for sent, parameter in incomplete:
        missing = await client.post("/api/v1/auth/login", json=sent)
        assert missing.status_code == 422, sent
        assert missing.json()["error"]["problems"][0]["parameter"] == parameter, sent
    broken = await client.post("/api/v1/auth/login", content=b"{", headers={"content-type": "application/json"})
    assert (broken.status_code, broken.json()["error"]["problems"][0]["parameter"]) == (422, "body")
    assert (await client.post("/api/v1/auth/login", data={"username": member.email})).status_code == 422


async def test_the_openapi_schema_offers_the_password_flow(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    flows = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == "/api/v1/auth/login"


async def test_every_response_carries_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in response.headers["content-security-policy"]


async def test_oversized_bodies_are_413(migrated_database: str, tmp_path: Path) -> None:
    async with marketplace_client(migrated_database, tmp_path / "index", max_request_bytes=2048) as client:
        response = await client.post(
            "/api/v1/auth/register", content=b"{" + b" " * 5000 + b"}", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_without_a_token_key_the_write_api_says_how_to_configure_it(tmp_path: Path) -> None:
    from hub.api import create_app
    from search_api.settings import ApiSettings

    app = create_app(ApiSettings(index_path=tmp_path / "index"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.post("/api/v1/auth/login", data={"username": "a@b.co", "password": "x"})
    assert response.status_code == 503
    assert "AUCTION_HUB_JWT_SECRET" in response.json()["error"]["message"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_deleting_a_store_owner_suspends_the_store_and_clears_its_contact(
    client: httpx.AsyncClient, migrated_database: str
) -> None:
    owner = await sign_up(client, "owner@example.com", role="dealer")
    store = await client.post(
        "/api/v1/dealers",
        json={"name": "Gone Motors", "address": "1 Main St", "zip": "75270", "licence_number": "TX-DL-1",
              "contact_email": "owner@example.com", "phone": "+1 214 555 0100"},
        headers=owner.headers,
    )  # fmt: skip
    assert store.status_code == 201, store.text
    store_id = store.json()["data"]["id"]
    assert (await client.delete(f"/api/v1/users/{owner.id}", headers=owner.headers)).status_code == 200
    with psycopg.connect(migrated_database) as conn:
        row = conn.execute("SELECT status, contact_email, phone FROM dealers WHERE id = %s", (store_id,)).fetchone()
    assert row == ("suspended", None, None)
