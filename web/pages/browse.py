"""Pages and API of the web UI: browse (see web/pages/__init__.py)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
