"""/api/v1/cars (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/cars", tags=["cars"])
