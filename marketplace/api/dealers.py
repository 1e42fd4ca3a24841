"""/api/v1/dealers (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/dealers", tags=["dealers"])
