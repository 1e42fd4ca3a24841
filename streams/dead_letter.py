"""Dead-letter records: the failed record, where it came from, and why."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson


def _printable(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


def dead_letter_record(
    *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, error: BaseException
) -> bytes:
    return orjson.dumps(
        {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "error": str(error),
            "error_type": type(error).__name__,
            "key": _printable(key),
            "value": _printable(value),
            "failed_at": datetime.now(tz=UTC).isoformat(),
        }
    )
