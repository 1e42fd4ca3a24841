"""The one error shape holds for failures nobody anticipated: a JSON 500 that closes the connection."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict

from hub.errors import described_pattern, install_error_handlers


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


class Lot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vehicle_id: int


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str
    password: str = ""
    lots: list[Lot] | None = None


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    make: str | None = None


async def test_an_unknown_query_parameter_or_field_is_named_as_unknown_with_what_it_likely_meant() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/search")
    async def search(filters: Annotated[Filters, Query()], dealer_id: int | None = None) -> None: ...

    @app.post("/register")
    async def register(body: Registration) -> None: ...

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        query = await client.get("/search", params={"maek": "Ford", "dealer": "3", "colour": "red"})
        body = await client.post(
            "/register",
            json={"email": "a@example.com", "pasword": "x", "zzz": 1, "lots": [{"vehicle": 3}]},
        )
    assert (query.status_code, body.status_code) == (422, 422)
    assert query.json()["error"]["problems"] == [
        {"parameter": "maek", "message": "unknown query parameter: did you mean make? (see /docs)"},
        {"parameter": "dealer", "message": "unknown query parameter: did you mean dealer_id? (see /docs)"},
        {"parameter": "colour", "message": "unknown query parameter: check its spelling, or leave it out (see /docs)"},
    ]
    assert {problem["parameter"]: problem["message"] for problem in body.json()["error"]["problems"]} == {
        "pasword": "unknown field: did you mean password? (see /docs)",
        "zzz": "unknown field: check its spelling, or leave it out (see /docs)",
        "lots.0.vehicle": "unknown field: did you mean vehicle_id? (see /docs)",
        "lots.0.vehicle_id": "Field required",
    }


async def test_a_value_off_its_pattern_is_told_what_is_expected_not_the_regex() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/things")
    async def things(
        code: Annotated[str, Query(pattern=described_pattern(r"^[0-9]{3}$", "a 3-digit code, e.g. 042"))],
        word: Annotated[str, Query(pattern=r"^[a-z]+$")] = "a",
    ) -> None: ...

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        described = await client.get("/things", params={"code": "42"})
        undescribed = await client.get("/things", params={"code": "042", "word": "A1"})
    assert described.json()["error"]["problems"] == [
        {"parameter": "code", "message": "expected a 3-digit code, e.g. 042"}
    ]
    assert undescribed.json()["error"]["problems"][0]["parameter"] == "word"  # pydantic's own words otherwise
