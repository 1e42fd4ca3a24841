"""Response bodies of the search API."""

from __future__ import annotations

from typing import Any

from schemas.vehicle import VehicleDocument

# Bookkeeping of the pipeline, not part of what a buyer sees.
INTERNAL_FIELDS = {"positions", "deleted", "qna"}


def vehicle_body(document: VehicleDocument) -> dict[str, Any]:
    return document.model_dump(exclude=INTERNAL_FIELDS)
