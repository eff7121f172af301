"""provenance and decoding: why each field is what it is, and how each page was decoded

`article_versions.provenance` keeps, for every extracted field, the rule that took it and
the raw string it came from (issue 16); `snapshots.encoding` / `encoding_reason` record
the codec a page was decoded with and why, and `snapshots.extract_warnings` what looked
wrong in its fields (mojibake), which `ufarchive status` counts. All null for what was
stored before: `ufarchive reparse` fills them in.

Revision ID: 0011
Revises: 0013
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def upgrade() -> None:
    # Plain ADD COLUMNs (no batch copy): SQLite adds a nullable column in place, and a
    # batch copy of `snapshots` would have to drop a table that versions point at.
    op.add_column("snapshots", sa.Column("encoding", sa.String(length=32), nullable=True))
    op.add_column("snapshots", sa.Column("encoding_reason", sa.String(length=32), nullable=True))
    op.add_column("snapshots", sa.Column("extract_warnings", _json(), nullable=True))
    op.add_column("article_versions", sa.Column("provenance", _json(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMNs (SQLite 3.35+), as 0010: a batch copy would drop `snapshots`.
    for table, column in (
        ("article_versions", "provenance"),
        ("snapshots", "extract_warnings"),
        ("snapshots", "encoding_reason"),
        ("snapshots", "encoding"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
