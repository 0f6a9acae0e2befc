"""Routine tests: runs, their results, and each device group's diagnostics policy and schedule.

Revision ID: 0002_diagnostics
Revises: 0001
Create Date: 2025-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_diagnostics"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "diag_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        # 'console' (a technician asked) or 'schedule' (the group's interval came round).
        sa.Column("trigger", sa.String(16), nullable=False),
        # The technician's username for console runs; null for scheduled runs.
        sa.Column("requested_by", sa.String(128), nullable=True),
        # What was asked: JSON {"groups": [...], "checks": [...]}; both empty means everything.
        sa.Column("selection", sa.Text, nullable=False, server_default="{}"),
        # The Policy sent to the agent (group policy over catalogue defaults), as JSON.
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double, nullable=True),
        # running | done | cancelled | timeout | disconnected | rejected
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("checks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("results", sa.Integer, nullable=False, server_default="0"),
        sa.Column("count_pass", sa.Integer, nullable=False, server_default="0"),
        sa.Column("count_warn", sa.Integer, nullable=False, server_default="0"),
        sa.Column("count_fail", sa.Integer, nullable=False, server_default="0"),
        sa.Column("count_error", sa.Integer, nullable=False, server_default="0"),
        sa.Column("count_na", sa.Integer, nullable=False, server_default="0"),
        sa.Column("timed_out", sa.Text, nullable=False, server_default="[]"),
        sa.Column("wall_ms", sa.Double, nullable=True),
        sa.CheckConstraint("trigger IN ('console', 'schedule')", name="ck_diag_runs_trigger"),
        sa.PrimaryKeyConstraint("id", name="pk_diag_runs"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_diag_runs_device_id_devices", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_diag_runs_device_started", "diag_runs", ["device_id", "started_at"])
    op.create_index("ix_diag_runs_started_at", "diag_runs", ["started_at"])
    op.create_table(
        "diag_results",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.String(64), nullable=False),
        # Denormalised from the run so that the per-device and fleet queries need no join.
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("check_id", sa.String(64), nullable=False),
        # '' for a result about the machine as a whole (the wire's null subject), so that it can be indexed.
        sa.Column("subject", sa.String(256), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.SmallInteger, nullable=False),
        sa.Column("value_num", sa.Double, nullable=True),
        # The whole CheckResult as the agent sent it (value, unit, measured, thresholds, params, detail).
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("summary_key", sa.String(96), nullable=False),
        sa.Column("kb_key", sa.String(96), nullable=True),
        sa.Column("duration_ms", sa.Double, nullable=False, server_default="0"),
        sa.Column("time", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_diag_results"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["diag_runs.id"], name="fk_diag_results_run_id_diag_runs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_diag_results_device_id_devices", ondelete="CASCADE"
        ),
    )
    # Latest per device+check(+subject), the history of one series, and "failing since".
    op.create_index(
        "ix_diag_results_device_check_time", "diag_results", ["device_id", "check_id", "subject", "time"]
    )
    op.create_index("ix_diag_results_run", "diag_results", ["run_id"])
    # Fleet: "most frequent failures this week" (warn and fail are a small share of results: status leads).
    # "Devices failing X now" reads diag_latest; the retention purge walks the primary key (oldest first).
    op.create_index("ix_diag_results_status_time", "diag_results", ["status", "time"])
    # The latest result of every (device, check, subject), kept current on insert: the device page, the
    # device list's worst status and the fleet's "failing now" read this small table, not the history.
    op.create_table(
        "diag_latest",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("check_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False, server_default=""),
        sa.Column("result_id", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.SmallInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("time", sa.Double, nullable=False),
        # When the current streak of non-passing results began (null while passing).
        sa.Column("failing_since", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("device_id", "check_id", "subject", name="pk_diag_latest"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_diag_latest_device_id_devices", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_diag_latest_check_status", "diag_latest", ["check_id", "status"])
    op.create_index("ix_diag_latest_device_severity", "diag_latest", ["device_id", "severity"])
    op.create_table(
        "diag_group_policy",
        sa.Column("group_name", sa.String(64), nullable=False),
        # A steun_protocol.diagnostics.Policy as JSON (overrides only; the catalogue supplies the rest).
        sa.Column("policy", sa.Text, nullable=False, server_default="{}"),
        # Seconds between scheduled runs; null or 0: no schedule.
        sa.Column("interval_s", sa.Integer, nullable=True),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("group_name", name="pk_diag_group_policy"),
        sa.ForeignKeyConstraint(
            ["group_name"],
            ["device_groups.name"],
            name="fk_diag_group_policy_group_name_device_groups",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    for table in ("diag_group_policy", "diag_latest", "diag_results", "diag_runs"):
        op.drop_table(table)
