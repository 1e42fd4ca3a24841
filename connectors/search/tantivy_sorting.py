"""Sort keys of the embedded engine: one unsigned fast field per sortable field and direction.

tantivy orders top documents by a single fast field, and breaks ties by segment order, which changes when
segments merge. A key that packs the value and the vehicle id (`value << 32 | id`) orders by value, then
id, in one field: pages never overlap, and a `search_after` cursor is a plain range (`key > cursor`).
The descending key stores the value mirrored, so ties still run by ascending id and a missing value sorts
last in both directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.search.fields import AUCTION_ENDS_AT, FLOAT_FIELDS, SORT_FIELDS, epoch_seconds, id_rank
from connectors.search.port import SortOrder
from schemas.vehicle import VehicleDocument

ID_BITS = 32
ID_MASK = (1 << ID_BITS) - 1
# Highest value part a present value can take; `MISSING` (one above) sorts after every present value.
MAX_VALUE = (1 << 32) - 2
MISSING = MAX_VALUE + 1


def sort_key_field(name: str, order: SortOrder) -> str:
    return f"sort_{order}_{name}"


def value_part(name: str, value: Any) -> int | None:
    """The unsigned 32-bit value a field sorts by: money in cents, timestamps in seconds, grades in tenths."""
    if value is None:
        return None
    if name == AUCTION_ENDS_AT:
        number = epoch_seconds(value)
        if number is None:
            return None
    elif name == "condition_grade":
        number = round(float(value) * 10)
    elif name in FLOAT_FIELDS:
        number = round(float(value) * 100)
    else:
        number = int(value)
    return min(max(number, 0), MAX_VALUE)


def sort_key(name: str, order: SortOrder, value: Any, document_id: str) -> int:
    part = value_part(name, value)
    if part is None:
        part = MISSING
    elif order == "desc":
        part = MAX_VALUE - part
    return part << ID_BITS | id_rank(document_id)


_SORT_KEY_FIELDS = tuple((name, sort_key_field(name, "asc"), sort_key_field(name, "desc")) for name in SORT_FIELDS)


def document_sort_keys(document: VehicleDocument) -> dict[str, int]:
    """Both keys of every sort field, as `sort_key` makes them (inlined: this runs for every indexed document)."""
    rank = id_rank(document.id)
    keys: dict[str, int] = {}
    for name, asc_field, desc_field in _SORT_KEY_FIELDS:
        part = value_part(name, getattr(document, name))
        if part is None:
            keys[asc_field] = keys[desc_field] = MISSING << ID_BITS | rank
        else:
            keys[asc_field] = part << ID_BITS | rank
            keys[desc_field] = (MAX_VALUE - part) << ID_BITS | rank
    return keys


def cursor_key(name: str, order: SortOrder, search_after: Sequence[Any]) -> int:
    """The key of the last hit a `search_after` cursor names ([value, id])."""
    value, document_id = search_after[0], search_after[1]
    if not isinstance(document_id, str):
        raise ValueError("the last value of search_after must be the document id (a string)")
    if value is not None and name != AUCTION_ENDS_AT and not isinstance(value, int | float):
        raise ValueError(f"search_after value of {name!r} must be a number or null")
    return sort_key(name, order, value, document_id)
