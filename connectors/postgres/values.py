"""PostgreSQL text-form values -> Debezium's JSON values and Kafka Connect schemas (its default mappings).

Every converter takes the column's text form as `bytes` (what pgoutput and COPY's text format carry, with
the session in UTC and ISO date style) and returns the JSON-ready value.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.postgres.settings import DecimalHandlingMode

Converter = Callable[[bytes], Any]
ConnectSchema = dict[str, Any]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - `timestamp without time zone` is naive by definition
_MIDNIGHT = datetime.combine(date(1970, 1, 1), time())


@dataclass(frozen=True, slots=True)
class ColumnType:
    convert: Converter
    schema: ConnectSchema  # without `field` and `optional`, which belong to the column


# Built-in type OIDs (pg_type.h).
BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT, OID, JSON = 16, 17, 18, 19, 20, 21, 23, 25, 26, 114
FLOAT4, FLOAT8, BPCHAR, VARCHAR, DATE, TIME, TIMESTAMP, TIMESTAMPTZ = 700, 701, 1042, 1043, 1082, 1083, 1114, 1184
NUMERIC, UUID, JSONB = 1700, 2950, 3802

ARRAY_ELEMENT = {
    1000: BOOL, 1001: BYTEA, 1002: CHAR, 1003: NAME, 1016: INT8, 1005: INT2, 1007: INT4, 1009: TEXT,
    1028: OID, 199: JSON, 1021: FLOAT4, 1022: FLOAT8, 1014: BPCHAR, 1015: VARCHAR, 1182: DATE, 1183: TIME,
    1115: TIMESTAMP, 1185: TIMESTAMPTZ, 1231: NUMERIC, 2951: UUID, 3807: JSONB,
}  # fmt: skip


# C-level callables: a Python wrapper per column value costs more than the conversion itself.
_bool: Converter = b"t".__eq__
_text: Converter = bytes.decode


def _date(raw: bytes) -> int | None:
    try:
        return date.fromisoformat(raw.decode()).toordinal() - _EPOCH_ORDINAL
    except ValueError:  # 'infinity', BC dates: no Debezium day count to give
        return None


def _micro_timestamp(raw: bytes) -> int | None:
    try:
        moment = datetime.fromisoformat(raw.decode())
    except ValueError:
        return None
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _zoned_timestamp(raw: bytes) -> str:
    text = raw.decode()
    # The session runs in UTC, so PostgreSQL writes "+00"; anything else goes the slow, general way.
    if text.endswith("+00") and text[4] == "-":
        return text[:10] + "T" + text[11:-3] + "Z"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment.isoformat().replace("+00:00", "Z")


def _micro_time(raw: bytes) -> int:
    if raw.startswith(b"24:00"):
        return 86_400_000_000
    moment = datetime.combine(date(1970, 1, 1), time.fromisoformat(raw.decode()))
    delta = moment - _MIDNIGHT
    return delta.seconds * 1_000_000 + delta.microseconds


def _bytea(raw: bytes) -> str:
    return base64.b64encode(bytes.fromhex(raw[2:].decode())).decode()


def _unscaled(text: str, scale: int) -> int | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return int(number.scaleb(scale).to_integral_value())


def _twos_complement_base64(unscaled: int) -> str:
    # Java's BigInteger.toByteArray(): the shortest big-endian two's complement form.
    length = (unscaled if unscaled >= 0 else ~unscaled).bit_length() // 8 + 1
    return base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode()


def _decimal_type(type_modifier: int, mode: DecimalHandlingMode) -> ColumnType:
    if mode == "string":
        return ColumnType(_text, {"type": "string"})
    if mode == "double":
        return ColumnType(float, {"type": "double"})
    if type_modifier >= 4:
        precision, scale = ((type_modifier - 4) >> 16) & 0xFFFF, (type_modifier - 4) & 0xFFFF

        def precise(raw: bytes) -> str | None:
            unscaled = _unscaled(raw.decode(), scale)
            return None if unscaled is None else _twos_complement_base64(unscaled)

        schema = {
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "version": 1,
            "parameters": {"scale": str(scale), "connect.decimal.precision": str(precision)},
        }
        return ColumnType(precise, schema)

    def variable_scale(raw: bytes) -> dict[str, Any] | None:
        text = raw.decode()
        _, _, fraction = text.partition(".")
        unscaled = _unscaled(text, len(fraction))
        if unscaled is None:
            return None
        return {"scale": len(fraction), "value": _twos_complement_base64(unscaled)}

    return ColumnType(
        variable_scale,
        {
            "type": "struct",
            "name": "io.debezium.data.VariableScaleDecimal",
            "version": 1,
            "doc": "Variable scaled decimal",
            "fields": [
                {"type": "int32", "optional": False, "field": "scale"},
                {"type": "bytes", "optional": False, "field": "value"},
            ],
        },
    )


def _logical(type_name: str, name: str) -> ConnectSchema:
    return {"type": type_name, "name": name, "version": 1}


_SCALARS: dict[int, ColumnType] = {
    BOOL: ColumnType(_bool, {"type": "boolean"}),
    INT2: ColumnType(int, {"type": "int16"}),
    INT4: ColumnType(int, {"type": "int32"}),
    INT8: ColumnType(int, {"type": "int64"}),
    OID: ColumnType(int, {"type": "int64"}),
    FLOAT4: ColumnType(float, {"type": "float"}),
    FLOAT8: ColumnType(float, {"type": "double"}),
    TEXT: ColumnType(_text, {"type": "string"}),
    VARCHAR: ColumnType(_text, {"type": "string"}),
    BPCHAR: ColumnType(_text, {"type": "string"}),
    CHAR: ColumnType(_text, {"type": "string"}),
    NAME: ColumnType(_text, {"type": "string"}),
    BYTEA: ColumnType(_bytea, {"type": "bytes"}),
    DATE: ColumnType(_date, _logical("int32", "io.debezium.time.Date")),
    TIME: ColumnType(_micro_time, _logical("int64", "io.debezium.time.MicroTime")),
    TIMESTAMP: ColumnType(_micro_timestamp, _logical("int64", "io.debezium.time.MicroTimestamp")),
    TIMESTAMPTZ: ColumnType(_zoned_timestamp, _logical("string", "io.debezium.time.ZonedTimestamp")),
    JSON: ColumnType(_text, _logical("string", "io.debezium.data.Json")),
    JSONB: ColumnType(_text, _logical("string", "io.debezium.data.Json")),
    UUID: ColumnType(_text, _logical("string", "io.debezium.data.Uuid")),
}
_FALLBACK = ColumnType(_text, {"type": "string"})


def parse_array(text: str) -> list[Any]:
    """PostgreSQL's array text form (`{a,"b c",NULL,{1,2}}`) as nested lists of `str | None`."""
    if text.startswith("["):  # explicit bounds, e.g. "[0:1]={a,b}"
        text = text[text.index("=") + 1 :]
    result, end = _parse_array_at(text, 0)
    return result


def _parse_array_at(text: str, pos: int) -> tuple[list[Any], int]:  # noqa: C901 - one small state machine
    items: list[Any] = []
    pos += 1  # the opening brace
    length = len(text)
    while pos < length:
        char = text[pos]
        if char == "}":
            return items, pos + 1
        if char == ",":
            pos += 1
            continue
        if char == "{":
            nested, pos = _parse_array_at(text, pos)
            items.append(nested)
        elif char == '"':
            pos += 1
            parts = []
            while text[pos] != '"':
                if text[pos] == "\\":
                    pos += 1
                parts.append(text[pos])
                pos += 1
            items.append("".join(parts))
            pos += 1
        else:
            end = pos
            while text[end] not in ",}":
                end += 1
            token = text[pos:end]
            items.append(None if token.upper() == "NULL" else token)
            pos = end
    raise ValueError(f"unterminated array literal {text!r}")


def _array_type(element: ColumnType) -> ColumnType:
    convert = element.convert

    def element_value(item: Any) -> Any:
        if item is None:
            return None
        if isinstance(item, list):
            return [element_value(inner) for inner in item]
        return item if convert is _text else convert(item.encode())

    def array(raw: bytes) -> list[Any]:
        if raw == b"{}":
            return []
        text = raw.decode()
        if '"' not in text and "{" not in text[1:] and "NULL" not in text:
            # The common case: one dimension, no quoting, no NULLs.
            items = text[1:-1].split(",")
            return items if convert is _text else [convert(item.encode()) for item in items]
        return [element_value(item) for item in parse_array(text)]

    return ColumnType(array, {"type": "array", "items": {**element.schema, "optional": True}})


def column_type(type_oid: int, type_modifier: int, decimal_mode: DecimalHandlingMode) -> ColumnType:
    """How to convert and describe a column of this type; unknown types travel as their text form."""
    if type_oid == NUMERIC:
        return _decimal_type(type_modifier, decimal_mode)
    element = ARRAY_ELEMENT.get(type_oid)
    if element is not None:
        return _array_type(column_type(element, type_modifier, decimal_mode))
    return _SCALARS.get(type_oid, _FALLBACK)
