"""Response bodies of the search API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.search.port import StoredHits
from schemas.vehicle import VehicleDocument

# Bookkeeping of the pipeline, not part of what a buyer sees.
INTERNAL_FIELDS = {"positions", "deleted", "qna"}
DOCUMENT_FIELDS = frozenset(VehicleDocument.model_fields)


def vehicle_body(document: VehicleDocument) -> dict[str, Any]:
    return document.model_dump(exclude=INTERNAL_FIELDS)


def hit_bodies(hits: Sequence[VehicleDocument]) -> list[dict[str, Any]]:
    """`vehicle_body` of each hit; hits the engine hands over as stored JSON are answered from it as read, unless
    it was written by a `VehicleDocument` with other fields (then the hit is validated as any other)."""
    if not isinstance(hits, StoredHits):
        return [vehicle_body(hit) for hit in hits]
    bodies = []
    for position, fields in enumerate(hits.fields):
        if fields.keys() == DOCUMENT_FIELDS:
            bodies.append({name: value for name, value in fields.items() if name not in INTERNAL_FIELDS})
        else:
            bodies.append(vehicle_body(hits[position]))
    return bodies
