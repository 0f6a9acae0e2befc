"""Chat transcripts attached to session records by the technician's console.

Revision ID: 0003_session_transcripts
Revises: 0002_diagnostics
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_session_transcripts"
down_revision = "0002_diagnostics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_transcripts",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("technician_id", sa.Integer, nullable=False),
        sa.Column("technician", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("messages", sa.Integer, nullable=False),
        sa.Column("dropped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_session_transcripts"),
    )
    op.create_index("ix_session_transcripts_device_id", "session_transcripts", ["device_id"])


def downgrade() -> None:
    op.drop_index("ix_session_transcripts_device_id", table_name="session_transcripts")
    op.drop_table("session_transcripts")
