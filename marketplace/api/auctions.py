"""/api/v1/auctions (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/auctions", tags=["auctions"])
