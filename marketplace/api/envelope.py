"""The success envelope of the marketplace API (seed 002): `{"status": "success", "data", "pagination"?}`, and
field shapes several routes share."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from hub.errors import described_pattern

MAX_PAGE_SIZE = 100

PHONE_PATTERN = described_pattern(
    r"^\+?[0-9 ()\-]{7,20}$", "a phone number: 7 to 20 digits, spaces, ( ) or -, optionally after a +"
)


class Page(BaseModel):
    page: int = Field(default=1, ge=1, le=100_000)
    limit: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def success(data: Any, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "success", "data": data}
    if message:
        body["message"] = message
    return body


def paginated(data: list[Any], page: Page, total: int) -> dict[str, Any]:
    return {
        "status": "success",
        "data": data,
        "pagination": {"page": page.page, "limit": page.limit, "total": total, "pages": math.ceil(total / page.limit)},
    }
