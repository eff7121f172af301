"""What the spider hands to the pipeline: one fetched article page, as received."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from archive.store import Known


@dataclass
class FetchedPage:
    """An article URL's response (200, 304, 404 or 410) with what the archive needs of it."""

    url: str
    method: str
    request_headers: list[tuple[str, str]]
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    fetched_at: datetime
    ip_address: str | None = None
    known: Known | None = None
    requested_url: str | None = None  # differs from `url` after a redirect
    # set by the pipeline, for logs and tests
    outcome: str | None = field(default=None)
