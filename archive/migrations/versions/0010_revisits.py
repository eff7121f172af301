"""revisits: article events, due checks, revisit records, run counters (issue 13)

Articles learn when they were last checked, when their text last changed and when they
are next due (`ix_articles_site_next_check`: a run's due revisits are one range scan),
where a moved article went, and their latest full response (`snapshot_id`: validators
for conditional GETs, the payload digest for WARC revisit records). The status
`changed` goes: an edited article is `live` with more than one version. Every article
is due at once after the upgrade, the longest unseen first, within each run's budget.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "article_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name=op.f("fk_article_events_article_id_articles")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["crawl_runs.id"],
            name=op.f("fk_article_events_run_id_crawl_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_article_events")),
    )
    op.create_index("ix_article_events_article_at", "article_events", ["article_id", "at"])
    op.create_index("ix_article_events_at", "article_events", ["at"])
    op.create_index("ix_article_events_kind_at", "article_events", ["kind", "at"])

    # Plain ADD COLUMNs (no batch copy of the biggest tables on SQLite).
    for column in (
        sa.Column("moved_to", sa.Text(), nullable=True),
        sa.Column("last_checked", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_changed", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check", sa.DateTime(timezone=True), nullable=True),
        sa.Column("snapshot_id", sa.Integer(), nullable=True),
    ):
        op.add_column("articles", column)
    for name in (
        "revisits_checked",
        "revisits_not_modified",
        "revisits_failed",
        "articles_restored",
        "articles_moved",
    ):
        op.add_column(
            "crawl_runs", sa.Column(name, sa.Integer(), nullable=False, server_default="0")
        )
    op.add_column(
        "crawl_runs",
        sa.Column("unreachable", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "snapshots",
        sa.Column("record_type", sa.String(length=16), nullable=False, server_default="response"),
    )
    op.add_column("snapshots", sa.Column("refers_to_id", sa.Integer(), nullable=True))

    op.execute("UPDATE articles SET status = 'live' WHERE status = 'changed'")
    op.execute(
        """UPDATE articles SET snapshot_id = (
               SELECT max(s.id) FROM snapshots s
               WHERE s.article_id = articles.id AND s.status_code = 200)"""
    )
    op.execute(
        """UPDATE articles SET last_changed = (
               SELECT v.first_seen FROM article_versions v
               WHERE v.article_id = articles.id AND v.version = articles.version)"""
    )
    op.execute("UPDATE articles SET next_check = last_seen")
    op.create_index("ix_articles_site_next_check", "articles", ["site_id", "next_check", "id"])


def downgrade() -> None:
    op.drop_index("ix_articles_site_next_check", table_name="articles")
    op.execute("UPDATE articles SET status = 'changed' WHERE status = 'live' AND version > 1")
    op.execute("UPDATE articles SET status = 'gone' WHERE status = 'moved'")
    # Plain DROP COLUMNs (SQLite 3.35+): batch mode would copy the tables, and dropping the
    # old `snapshots` fails on SQLite while article_versions points at it.
    dropped = {
        "snapshots": ("refers_to_id", "record_type"),
        "crawl_runs": ("unreachable", "articles_moved", "articles_restored", "revisits_failed",
                       "revisits_not_modified", "revisits_checked"),
        "articles": ("snapshot_id", "next_check", "last_changed", "last_checked", "moved_to"),
    }  # fmt: skip
    for table, columns in dropped.items():
        for column in columns:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    op.drop_index("ix_article_events_kind_at", table_name="article_events")
    op.drop_index("ix_article_events_at", table_name="article_events")
    op.drop_index("ix_article_events_article_at", table_name="article_events")
    op.drop_table("article_events")
