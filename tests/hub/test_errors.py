"""The one error shape holds for failures nobody anticipated: a JSON 500 that closes the connection."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from hub.errors import install_error_handlers


async def test_an_unexpected_failure_is_a_json_500_that_closes_the_connection() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["connection"] == "close"
    body = response.json()
    assert (body["status"], body["error"]["code"]) == ("error", "internal_error")
    assert "a bug" not in response.text  # internals stay in the log
