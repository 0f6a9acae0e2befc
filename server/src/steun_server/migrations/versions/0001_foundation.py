"""Foundation: accounts, sessions, audit chain, device groups, enrollment tokens, devices, inventories.

Revision ID: 0001
Revises:
Create Date: 2025-11-29
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False, server_default=""),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("totp_secret", sa.String(64), nullable=True),
        sa.Column("totp_pending_secret", sa.String(64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger, nullable=True),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("password_changed_at", sa.Double, nullable=False),
        sa.CheckConstraint("role IN ('technician', 'specialist', 'admin')", name="ck_users_role"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_seen_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("source_address", sa.String(64), nullable=False, server_default=""),
        sa.Column("user_agent", sa.String(256), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("token_hash", name="pk_web_sessions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_web_sessions_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("used_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_codes"),
        sa.UniqueConstraint("code_hash", name="uq_recovery_codes_code_hash"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_recovery_codes_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("time", sa.Double, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_event", "audit_log", ["event"])
    op.create_table(
        "audit_heads",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("signed_at", sa.Double, nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_heads"),
    )
    groups = op.create_table(
        "device_groups",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_device_groups"),
    )
    op.bulk_insert(
        groups,
        [{"name": "default", "description": "Devices enrolled without a group", "created_at": time.time()}],
    )
    op.create_table(
        "enrollment_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("used_at", sa.Double, nullable=True),
        sa.Column("used_by_device", sa.String(64), nullable=True),
        sa.Column("created_by", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_enrollment_tokens"),
        sa.UniqueConstraint("secret_hash", name="uq_enrollment_tokens_secret_hash"),
        sa.ForeignKeyConstraint(
            ["group_name"],
            ["device_groups.name"],
            name="fk_enrollment_tokens_group_name_device_groups",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_enrollment_tokens_created_by_users", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_enrollment_tokens_expires_at", "enrollment_tokens", ["expires_at"])
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("hostname", sa.String(256), nullable=False),
        sa.Column("os", sa.String(256), nullable=False),
        sa.Column("enrolled_at", sa.Double, nullable=False),
        sa.Column("last_seen", sa.Double, nullable=True),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("public_key", name="uq_devices_public_key"),
        sa.ForeignKeyConstraint(
            ["group_name"],
            ["device_groups.name"],
            name="fk_devices_group_name_device_groups",
            ondelete="RESTRICT",
        ),
    )
    op.create_index("ix_devices_group_name", "devices", ["group_name"])
    op.create_table(
        "inventories",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("json", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_inventories"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_inventories_device_id_devices", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    for table in (
        "inventories",
        "devices",
        "enrollment_tokens",
        "device_groups",
        "audit_heads",
        "audit_log",
        "recovery_codes",
        "web_sessions",
        "users",
    ):
        op.drop_table(table)
