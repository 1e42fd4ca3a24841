"""One exception root for the HTTP services and one JSON error shape:
`{"status": "error", "error": {"code", "message", ...}}` (422s add `problems: [{parameter, message}]`)."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.query_params import documented_query_names


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers
        self.details = details


class Unauthorized(AppError):
    """No valid credentials: the client should sign in (again)."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"}, **details)


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class InvalidParameter(AppError):
    """A request parameter that passed type checks but cannot be served; says which and how to fix it."""

    status_code = 422
    code = "invalid_request"

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}", problems=[{"parameter": parameter, "message": message}])


class ServiceUnavailable(AppError):
    status_code = 503
    code = "unavailable"


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"status": "error", "error": {"code": code, "message": message, **details}}


_PATTERN_MESSAGES: dict[str, str] = {}


def described_pattern(pattern: str, what: str) -> str:
    """`pattern`, for `Field(pattern=...)`, with what a value that misses it is told instead of the regex."""
    _PATTERN_MESSAGES[pattern] = what
    return pattern


def validation_problem(error: Mapping[str, Any], route: Any = None) -> dict[str, str]:
    """One of FastAPI's validation errors as `{parameter, message}`: the parameter named without its location
    (`query`, `body`...), a body that is not JSON at all as `body` with where the decoder stopped and why.

    An unknown name gets the closest of the names `route` (the matched route) takes there, if any is close."""
    loc = error["loc"]
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error")
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        because = f" ({reason})" if reason else ""
        return {"parameter": "body", "message": f"not valid JSON{where}{because}; send a JSON object"}
    parameter = ".".join(str(part) for part in loc[1:]) or str(loc[0])
    if error.get("type") == "string_pattern_mismatch":
        what = _PATTERN_MESSAGES.get(str((error.get("ctx") or {}).get("pattern")))
        if what is not None:
            return {"parameter": parameter, "message": f"expected {what}"}
    if error.get("type") == "extra_forbidden":
        where = "query parameter" if loc[0] == "query" else "field"
        meant = closest_names(str(loc[-1]), names_at(route, tuple(loc)))
        hint = f"did you mean {' or '.join(meant)}?" if meant else "check its spelling, or leave it out"
        return {"parameter": parameter, "message": f"unknown {where}: {hint} (see /docs)"}
    # A validator's own message reads better without pydantic's "Value error, " in front of it.
    return {"parameter": parameter, "message": str(error["msg"]).removeprefix("Value error, ")}


def closest_names(name: str, known: Collection[str], most: int = 2) -> list[str]:
    """Known names a misspelt or half-remembered `name` likely meant: close spellings (`modle` → `model`), or one
    word of a longer name (`color` → `exterior_color`, `dealer` → `dealer_id`, `max_amount` → `amount`)."""
    lowered = name.lower()
    close = difflib.get_close_matches(lowered, known, n=most, cutoff=0.75)
    by_word = [
        candidate
        for candidate in sorted(known)
        if candidate not in close
        and min(len(candidate), len(lowered)) >= 3
        and (
            candidate.startswith(f"{lowered}_")
            or candidate.endswith(f"_{lowered}")
            or lowered.startswith(f"{candidate}_")
            or lowered.endswith(f"_{candidate}")
        )
    ]
    return (close + by_word)[:most]


def names_at(route: Any, loc: tuple[Any, ...]) -> set[str]:
    """The names a request to `route` may use where validation found the unknown name at `loc`: the query
    parameters (`("query", name)`), or the fields of the body's model at that depth (`("body", ..., name)`)."""
    if not isinstance(route, APIRoute) or not loc:
        return set()
    if loc[0] == "query":
        declared = {name for dependant in _dependants(route.dependant) for name in _query_names(dependant)}
        return declared | documented_query_names(route.openapi_extra)
    if loc[0] != "body" or route.body_field is None:
        return set()
    model: Any = _model_inside(route.body_field.field_info.annotation)
    for part in loc[1:-1]:
        if isinstance(part, int):
            continue
        fields = model.model_fields if _is_model(model) else {}
        if part not in fields:
            return set()
        model = _model_inside(fields[part].annotation)
    if not _is_model(model):
        return set()
    return {field.alias or name for name, field in model.model_fields.items()}


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _query_names(dependant: Dependant) -> Iterator[str]:
    for param in dependant.query_params:
        model = _model_inside(param.field_info.annotation)
        if model is None:
            yield param.alias
        else:  # a query-parameter model: its fields are the parameters
            yield from (field.alias or name for name, field in model.model_fields.items())


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _model_inside(annotation: Any) -> Any:
    """The model a field holds, through `list[...]`, `X | None` and `Annotated[...]`; None if it holds none."""
    if _is_model(annotation):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_inside(argument)
        if found is not None:
            return found
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, **exc.details), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        route = request.scope.get("route")
        problems = [validation_problem(error, route) for error in exc.errors()]
        message = "; ".join(f"{problem['parameter']}: {problem['message']}" for problem in problems)
        return JSONResponse(error_body("invalid_request", message, problems=problems), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this reply, uvicorn logs the traceback and drops the connection: "close" tells
        # the client not to send its next request down it.
        message = "the server failed on this request; it is logged: retry, and report it if it persists"
        return JSONResponse(error_body("internal_error", message), status_code=500, headers={"Connection": "close"})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)
