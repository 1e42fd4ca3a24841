"""`query_model` reads a query-parameter model exactly as FastAPI's `Annotated[Model, Query()]` does: the same
model or the same 422 problems for any query string, and the same OpenAPI parameters."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import Depends, FastAPI, Query
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.errors import install_error_handlers
from hub.query_params import query_model
from search_api.query import SearchParams

search_params, openapi_extra = query_model(SearchParams)


def both_ways() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/native")
    async def native(params: Annotated[SearchParams, Query()]) -> dict[str, Any]:
        return params.model_dump()

    @app.get("/ours", openapi_extra=openapi_extra)
    async def ours(params: Annotated[SearchParams, Depends(search_params)]) -> dict[str, Any]:
        return params.model_dump()

    return app


APP = both_ways()
NAMES = [*SearchParams.model_fields, "maek", "colour", "dealer"]
VALUES = st.one_of(
    st.sampled_from(
        ["", "0", "1", "-3", "2.5", "1e3", "abc", "true", "false", "live", "ford", "10001", "price", "-year"]
    ),
    st.integers(-10, 100_000).map(str),
    st.text(alphabet="abcXYZ019 -.,", max_size=8),
)


async def answers(pairs: list[tuple[str, str]]) -> tuple[tuple[int, Any], tuple[int, Any]]:
    query = urlencode(pairs)
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        native = await client.get(f"/native?{query}")
        ours = await client.get(f"/ours?{query}")
    return (native.status_code, native.json()), (ours.status_code, ours.json())


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=6))
def test_any_query_string_reads_as_fastapi_reads_it(pairs: list[tuple[str, str]]) -> None:
    native, ours = asyncio.run(answers(pairs))
    assert ours == native


def test_repeated_names_lists_and_unknown_names_as_fastapi() -> None:
    pairs = [("make", "ford"), ("make", "Toyota"), ("limit", "5"), ("limit", "7"), ("maek", "x")]
    native, ours = asyncio.run(answers(pairs))
    assert native[0] == 422
    assert ours == native
    assert ours[1]["error"]["problems"] == [
        {"parameter": "maek", "message": "unknown query parameter: did you mean make? (see /docs)"}
    ]
    native, ours = asyncio.run(answers(pairs[:4]))
    assert ours == native
    assert ours[1]["make"] == ["Ford", "Toyota"]
    assert ours[1]["limit"] == 7


def test_the_openapi_schema_documents_the_same_parameters() -> None:
    paths = APP.openapi()["paths"]
    native = paths["/native"]["get"]["parameters"]
    ours = paths["/ours"]["get"]["parameters"]

    def essentials(parameters: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            parameter["name"]: (parameter["in"], parameter["required"], parameter["schema"].get("type"))
            for parameter in parameters
        }

    assert essentials(ours) == essentials(native)
    assert {p["name"]: p.get("description") for p in ours} == {p["name"]: p.get("description") for p in native}
