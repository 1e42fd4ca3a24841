"""Response bodies of the search API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.search.port import StoredHits
from schemas.vehicle import DealerSummary, Question, VehicleDocument

# Bookkeeping of the pipeline, not part of what a buyer sees.
INTERNAL_FIELDS = {"positions", "deleted", "qna"}
DOCUMENT_FIELDS = frozenset(VehicleDocument.model_fields)
DEALER_FIELDS = frozenset(DealerSummary.model_fields)
QUESTION_FIELDS = frozenset(Question.model_fields)


def vehicle_body(document: VehicleDocument) -> dict[str, Any]:
    return document.model_dump(exclude=INTERNAL_FIELDS)


def hit_bodies(hits: Sequence[VehicleDocument]) -> list[dict[str, Any]]:
    """`vehicle_body` of each hit; hits the engine hands over as stored JSON are answered from it as read, unless
    it was written by a `VehicleDocument` with other fields (then the hit is validated as any other)."""
    if not isinstance(hits, StoredHits):
        return [vehicle_body(hit) for hit in hits]
    bodies = []
    for position, fields in enumerate(hits.fields):
        if written_by_this_model(fields):
            bodies.append({name: value for name, value in fields.items() if name not in INTERNAL_FIELDS})
        else:
            bodies.append(vehicle_body(hits[position]))
    return bodies


def written_by_this_model(fields: dict[str, Any]) -> bool:
    """Whether a stored document has exactly the fields `VehicleDocument` writes today, nested ones included."""
    if fields.keys() != DOCUMENT_FIELDS:
        return False
    dealer = fields["dealer"]
    if dealer is not None and dealer.keys() != DEALER_FIELDS:
        return False
    return all(question.keys() == QUESTION_FIELDS for question in fields["questions"])
