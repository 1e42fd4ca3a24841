"""HTTP routes of the search API (thin: decode, call the service, shape the response)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from search_api.deps import SearchServiceDep
from search_api.schemas import vehicle_body

router = APIRouter(prefix="/api/v1", tags=["search"])


@router.get("/vehicles/{vehicle_id}")
async def get_vehicle(
    vehicle_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")],
    service: SearchServiceDep,
) -> dict[str, Any]:
    """One vehicle's document: vehicle, dealer, current bid and approved questions."""
    return vehicle_body(await service.get_vehicle(vehicle_id))
