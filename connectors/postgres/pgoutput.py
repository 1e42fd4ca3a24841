"""Decoder of PostgreSQL's `pgoutput` logical replication protocol, version 1 (binary messages).

Tuple values come out raw: `bytes` (the column's text form), `None` (SQL NULL) or `UNAVAILABLE_VALUE`
(an unchanged TOASTed value the WAL record does not carry). Converting them is `values.py`'s job.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.debezium import UNAVAILABLE_VALUE

# Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
PG_EPOCH_OFFSET_US = 946_684_800_000_000

# Raw: `bytes | str | None`; after conversion, whatever the converters return.
RawTuple = list[Any]
Converters = Mapping[int, Sequence[Callable[[bytes], Any]]]

_I16 = struct.Struct(">h").unpack_from
_I32 = struct.Struct(">i").unpack_from
_U32 = struct.Struct(">I").unpack_from
_BEGIN = struct.Struct(">QqI").unpack_from
_COMMIT = struct.Struct(">BQQq").unpack_from
_RELATION_COLUMN_TAIL = struct.Struct(">Ii").unpack_from

_KIND_TEXT = ord("t")
_KIND_BINARY = ord("b")
_KIND_NULL = ord("n")
_KIND_UNCHANGED = ord("u")


class ProtocolError(ValueError):
    """The bytes are not a pgoutput v1 message this decoder understands."""


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_ts_us: int  # Unix epoch
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts_us: int


@dataclass(frozen=True, slots=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class RelationColumn:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    relation_id: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[RelationColumn, ...]


@dataclass(frozen=True, slots=True)
class TypeInfo:
    type_oid: int
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Insert:
    relation_id: int
    new: RawTuple


@dataclass(frozen=True, slots=True)
class Update:
    relation_id: int
    new: RawTuple
    old: RawTuple | None  # present when the key changed ('K') or with REPLICA IDENTITY FULL ('O')
    old_is_key: bool


@dataclass(frozen=True, slots=True)
class Delete:
    relation_id: int
    old: RawTuple
    old_is_key: bool


@dataclass(frozen=True, slots=True)
class Truncate:
    relation_ids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


Message = Begin | Commit | Origin | Relation | TypeInfo | Insert | Update | Delete | Truncate


def decode_tuple(
    buf: bytes, pos: int, converters: Sequence[Callable[[bytes], Any]] | None = None
) -> tuple[RawTuple, int]:
    """TupleData at `pos`: the values and the position after it. The hot path of the connector.

    With `converters` (one per column), each text value is passed through its converter as it is read;
    without, values stay raw `bytes`."""
    (count,) = _I16(buf, pos)
    pos += 2
    if converters is None or len(converters) != count:
        converters = [_identity] * count
    values: RawTuple = []
    append = values.append
    for convert in converters:
        kind = buf[pos]
        if kind == _KIND_TEXT:
            start = pos + 5
            pos = start + _I32(buf, pos + 1)[0]
            append(convert(buf[start:pos]))
        elif kind == _KIND_NULL:
            pos += 1
            append(None)
        elif kind == _KIND_UNCHANGED:
            pos += 1
            append(UNAVAILABLE_VALUE)
        elif kind == _KIND_BINARY:  # only sent when binary output is requested, which the hub never does
            start = pos + 5
            pos = start + _I32(buf, pos + 1)[0]
            append(buf[start:pos])
        else:
            raise ProtocolError(f"unknown tuple value kind {chr(kind)!r} at offset {pos}")
    return values, pos


def _identity(raw: bytes) -> bytes:
    return raw


def _cstring(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode(), end + 1


def _decode_relation(buf: bytes) -> Relation:
    (relation_id,) = _U32(buf, 1)
    namespace, pos = _cstring(buf, 5)
    name, pos = _cstring(buf, pos)
    replica_identity = chr(buf[pos])
    (count,) = _I16(buf, pos + 1)
    pos += 3
    columns = []
    for _ in range(count):
        flags = buf[pos]
        column_name, pos = _cstring(buf, pos + 1)
        type_oid, type_modifier = _RELATION_COLUMN_TAIL(buf, pos)
        pos += 8
        columns.append(RelationColumn(column_name, type_oid, type_modifier, bool(flags & 1)))
    return Relation(relation_id, namespace or "pg_catalog", name, replica_identity, tuple(columns))


def _decode_update(buf: bytes, converters: Converters | None) -> Update:
    (relation_id,) = _U32(buf, 1)
    convert = converters.get(relation_id) if converters else None
    marker = buf[5]
    old: RawTuple | None = None
    old_is_key = False
    pos = 6
    if marker in (ord("K"), ord("O")):
        old_is_key = marker == ord("K")
        old, pos = decode_tuple(buf, 6, convert)
        marker = buf[pos]
        pos += 1
    if marker != ord("N"):
        raise ProtocolError(f"update without a new tuple (marker {chr(marker)!r})")
    new, _ = decode_tuple(buf, pos, convert)
    return Update(relation_id, new, old, old_is_key)


def _decode_truncate(buf: bytes) -> Truncate:
    (count,) = _I32(buf, 1)
    options = buf[5]
    ids = struct.unpack_from(f">{count}I", buf, 6)
    return Truncate(tuple(ids), bool(options & 1), bool(options & 2))


def decode_message(buf: bytes, converters: Converters | None = None) -> Message | None:
    """One pgoutput message; `None` for message types the hub does not use (e.g. logical messages).

    `converters` maps relation ids to per-column converters applied to the tuples of that relation."""
    tag = buf[0]
    if tag == 73:  # 'I'
        (relation_id,) = _U32(buf, 1)
        if buf[5] != 78:  # 'N'
            raise ProtocolError("insert without a new tuple")
        return Insert(relation_id, decode_tuple(buf, 6, converters.get(relation_id) if converters else None)[0])
    if tag == 85:  # 'U'
        return _decode_update(buf, converters)
    if tag == 68:  # 'D'
        (relation_id,) = _U32(buf, 1)
        old, _ = decode_tuple(buf, 6, converters.get(relation_id) if converters else None)
        return Delete(relation_id, old, buf[5] == ord("K"))
    if tag == 66:  # 'B'
        final_lsn, ts, xid = _BEGIN(buf, 1)
        return Begin(final_lsn, ts + PG_EPOCH_OFFSET_US, xid)
    if tag == 67:  # 'C'
        flags, commit_lsn, end_lsn, ts = _COMMIT(buf, 1)
        return Commit(flags, commit_lsn, end_lsn, ts + PG_EPOCH_OFFSET_US)
    if tag == 82:  # 'R'
        return _decode_relation(buf)
    if tag == 89:  # 'Y'
        (type_oid,) = _U32(buf, 1)
        namespace, pos = _cstring(buf, 5)
        name, _ = _cstring(buf, pos)
        return TypeInfo(type_oid, namespace, name)
    if tag == 79:  # 'O'
        (lsn,) = struct.unpack_from(">Q", buf, 1)
        return Origin(lsn, _cstring(buf, 9)[0])
    if tag == 84:  # 'T'
        return _decode_truncate(buf)
    if tag in (77, 83, 69, 65, 115, 99, 75, 80, 114):  # logical message, streaming, two-phase: not requested
        return None
    raise ProtocolError(f"unknown pgoutput message type {chr(tag)!r}")


def format_lsn(lsn: int) -> str:
    """PostgreSQL's `X/X` notation of an LSN."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)
