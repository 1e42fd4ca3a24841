"""The pgoutput decoder and the value conversions, on hand-built bytes (no server)."""

from __future__ import annotations

import base64
import random
import struct

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from connectors.postgres.pgoutput import (
    PG_EPOCH_OFFSET_US,
    Begin,
    Commit,
    Delete,
    Insert,
    ProtocolError,
    Relation,
    Truncate,
    TypeInfo,
    Update,
    decode_message,
    format_lsn,
    parse_lsn,
)
from connectors.postgres.values import column_type, parse_array
from hub.topics import murmur2
from schemas.debezium import UNAVAILABLE_VALUE


def tuple_data(*values: bytes | None | str) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value == "u":
            out += b"u"
        elif isinstance(value, bytes):
            out += b"t" + struct.pack(">i", len(value)) + value
    return out


def test_begin_and_commit() -> None:
    begin = decode_message(b"B" + struct.pack(">QqI", 0x1_0000_0010, 1_000_000, 42))
    assert begin == Begin(0x1_0000_0010, 1_000_000 + PG_EPOCH_OFFSET_US, 42)
    commit = decode_message(b"C" + struct.pack(">BQQq", 0, 100, 120, 5))
    assert commit == Commit(0, 100, 120, 5 + PG_EPOCH_OFFSET_US)


def test_relation_and_type() -> None:
    body = struct.pack(">I", 16384) + b"public\0vehicles\0d" + struct.pack(">h", 2)
    body += b"\x01id\0" + struct.pack(">Ii", 20, -1) + b"\x00price\0" + struct.pack(">Ii", 1700, 786438)
    relation = decode_message(b"R" + body)
    assert isinstance(relation, Relation)
    assert (relation.relation_id, relation.namespace, relation.name) == (16384, "public", "vehicles")
    assert [(c.name, c.type_oid, c.type_modifier, c.is_key) for c in relation.columns] == [
        ("id", 20, -1, True),
        ("price", 1700, 786438, False),
    ]
    assert decode_message(b"Y" + struct.pack(">I", 99999) + b"public\0mood\0") == TypeInfo(99999, "public", "mood")


def test_insert_tuple_kinds() -> None:
    message = b"I" + struct.pack(">I", 7) + b"N" + tuple_data(b"1", None, "u", b"h\xc3\xa9")
    insert = decode_message(message)
    assert insert == Insert(7, [b"1", None, UNAVAILABLE_VALUE, b"h\xc3\xa9"])
    converted = decode_message(message, {7: (int, bytes.decode, bytes.decode, bytes.decode)})
    assert isinstance(converted, Insert)
    assert converted.new == [1, None, UNAVAILABLE_VALUE, "hé"]


def test_update_with_old_key_and_delete() -> None:
    update = decode_message(b"U" + struct.pack(">I", 7) + b"K" + tuple_data(b"1", None) + b"N" + tuple_data(b"2", b"x"))
    assert update == Update(7, [b"2", b"x"], [b"1", None], True)
    plain = decode_message(b"U" + struct.pack(">I", 7) + b"N" + tuple_data(b"2", b"y"))
    assert plain == Update(7, [b"2", b"y"], None, False)
    full = decode_message(b"U" + struct.pack(">I", 7) + b"O" + tuple_data(b"2", b"x") + b"N" + tuple_data(b"2", b"y"))
    assert full == Update(7, [b"2", b"y"], [b"2", b"x"], False)
    assert decode_message(b"D" + struct.pack(">I", 7) + b"K" + tuple_data(b"3", None)) == Delete(7, [b"3", None], True)


def test_truncate_and_unknown() -> None:
    truncate = decode_message(b"T" + struct.pack(">iB", 2, 3) + struct.pack(">II", 10, 11))
    assert truncate == Truncate((10, 11), cascade=True, restart_identity=True)
    assert decode_message(b"M" + b"\0" * 20) is None
    with pytest.raises(ProtocolError):
        decode_message(b"Z")
    with pytest.raises(ProtocolError):
        decode_message(b"I" + struct.pack(">I", 7) + b"N" + struct.pack(">h", 1) + b"q")


def test_lsn_text() -> None:
    assert format_lsn(0x1_0000_00A0) == "1/A0"
    assert parse_lsn("1/A0") == 0x1_0000_00A0


def test_scalar_conversions() -> None:
    def convert(oid: int, raw: bytes, typmod: int = -1, mode: str = "string") -> object:
        return column_type(oid, typmod, mode).convert(raw)  # type: ignore[arg-type]

    assert convert(16, b"t") is True
    assert convert(20, b"-9007199254740993") == -9007199254740993
    assert convert(701, b"1.5") == 1.5
    assert convert(1082, b"1970-01-02") == 1
    assert convert(1114, b"1970-01-01 00:00:01.5") == 1_500_000
    assert convert(1184, b"2024-05-01 10:11:12.123+00") == "2024-05-01T10:11:12.123Z"
    assert convert(1083, b"00:00:02") == 2_000_000
    assert convert(3802, b'{"a": 1}') == '{"a": 1}'
    assert convert(17, b"\\x0102") == base64.b64encode(b"\x01\x02").decode()
    assert convert(99999, b"happy") == "happy"


def test_numeric_modes() -> None:
    typmod = ((12 << 16) | 2) + 4  # numeric(12, 2)
    assert column_type(1700, typmod, "string").convert(b"-1.50") == "-1.50"
    assert column_type(1700, typmod, "double").convert(b"-1.50") == -1.5
    precise = column_type(1700, typmod, "precise")
    assert precise.schema["parameters"] == {"scale": "2", "connect.decimal.precision": "12"}
    assert base64.b64decode(precise.convert(b"-1.50")) == (-150).to_bytes(2, "big", signed=True)
    assert base64.b64decode(precise.convert(b"1.28")) == b"\x00\x80"  # Java BigInteger(128).toByteArray()
    assert base64.b64decode(precise.convert(b"-1.28")) == b"\x80"
    variable = column_type(1700, -1, "precise").convert(b"3.125")
    assert variable == {"scale": 3, "value": base64.b64encode((3125).to_bytes(2, "big")).decode()}


def test_arrays() -> None:
    assert parse_array('{a,"b c","d\\"e",NULL,"NULL"}') == ["a", "b c", 'd"e', None, "NULL"]
    assert parse_array("{{1,2},{3,4}}") == [["1", "2"], ["3", "4"]]
    assert column_type(1009, -1, "string").convert(b"{x,y}") == ["x", "y"]
    assert column_type(1007, -1, "string").convert(b"{1,NULL,3}") == [1, None, 3]
    assert column_type(1007, -1, "string").convert(b"{}") == []


def test_murmur2_matches_the_java_client() -> None:
    rng = random.Random(7)
    for length in range(40):
        data = rng.randbytes(length)
        assert murmur2(data) == aiokafka_murmur2(data)
