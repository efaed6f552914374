"""Enterprise filings (work in progress: the operations are added here)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["Enterprise filings"])
