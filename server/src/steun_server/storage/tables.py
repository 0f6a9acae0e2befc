"""The database schema: one SQLAlchemy ``MetaData`` for the whole server, one Alembic chain.

Times are seconds since the epoch as double precision (the wire uses the same floats). Secrets are never
stored: session tokens, enrollment secrets and recovery codes only as SHA-256 hex (they are random and long),
passwords as argon2id. ``users``…``audit_heads`` are queried by ``steun_server.auth`` and
``steun_server.audit``; ``device_groups``…``inventories`` by ``steun_server.fleet``.

Changing a table here means adding an Alembic revision in ``steun_server/migrations/versions/``.
"""

from __future__ import annotations

import sqlalchemy as sa

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

#: The device group that always exists (made by migration 0001).
DEFAULT_GROUP = "default"
SHA256_HEX = 64

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(256), nullable=False, server_default=""),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    # base32 TOTP secret once enrolment is verified; pending until then
    sa.Column("totp_secret", sa.String(64), nullable=True),
    sa.Column("totp_pending_secret", sa.String(64), nullable=True),
    # the last 30-second step a code was accepted for: the same step is never accepted twice
    sa.Column("totp_last_step", sa.BigInteger, nullable=True),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("password_changed_at", sa.Double, nullable=False),
    sa.CheckConstraint("role IN ('technician', 'specialist', 'admin')", name="role"),
)

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("token_hash", sa.String(SHA256_HEX), primary_key=True),
    sa.Column(
        "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_seen_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    sa.Column("source_address", sa.String(64), nullable=False, server_default=""),
    sa.Column("user_agent", sa.String(256), nullable=False, server_default=""),
)

recovery_codes = sa.Table(
    "recovery_codes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("code_hash", sa.String(SHA256_HEX), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("used_at", sa.Double, nullable=True),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    # assigned by the writer (head + 1), never by the database: the primary key is what stops two nodes
    # from appending two different records with the same number (a silent fork of the chain)
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time", sa.Double, nullable=False),
    sa.Column("event", sa.String(64), nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=True),
    sa.Column("source", sa.String(64), nullable=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(SHA256_HEX), nullable=False),
    sa.Column("hash", sa.String(SHA256_HEX), nullable=False),
)

audit_heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(SHA256_HEX), nullable=False),
    sa.Column("signed_at", sa.Double, nullable=False),
    # b64url Ed25519 signature by the org key over steun_server.audit.head_message(seq, hash)
    sa.Column("signature", sa.String(128), nullable=False),
    # b64url raw org public key that made it (so a key rotation stays verifiable)
    sa.Column("public_key", sa.String(64), nullable=False),
)

device_groups = sa.Table(
    "device_groups",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("description", sa.String(256), nullable=False, server_default=""),
    sa.Column("created_at", sa.Double, nullable=False),
)

enrollment_tokens = sa.Table(
    "enrollment_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("secret_hash", sa.String(SHA256_HEX), nullable=False, unique=True),
    sa.Column(
        "group_name",
        sa.String(64),
        sa.ForeignKey("device_groups.name", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    sa.Column("used_at", sa.Double, nullable=True),
    sa.Column("used_by_device", sa.String(64), nullable=True),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # b64url raw Ed25519 public key of the agent identity
    sa.Column("public_key", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "group_name",
        sa.String(64),
        sa.ForeignKey("device_groups.name", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    sa.Column("hostname", sa.String(256), nullable=False),
    sa.Column("os", sa.String(256), nullable=False),
    sa.Column("enrolled_at", sa.Double, nullable=False),
    sa.Column("last_seen", sa.Double, nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
)

inventories = sa.Table(
    "inventories",
    metadata,
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("json", sa.Text, nullable=False),
    sa.Column("digest", sa.String(SHA256_HEX), nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# -- routine tests (steun_server.diagnostics; migration 0002_diagnostics) -----------------------------------

diag_runs = sa.Table(
    "diag_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    # 'console' (a technician asked) or 'schedule' (the group's interval came round)
    sa.Column("trigger", sa.String(16), nullable=False),
    # the technician's username for console runs; null for scheduled runs
    sa.Column("requested_by", sa.String(128), nullable=True),
    # JSON {"groups": [...], "checks": [...]}; both empty: everything
    sa.Column("selection", sa.Text, nullable=False, server_default="{}"),
    # the Policy sent to the agent (group policy over catalogue defaults), as JSON
    sa.Column("policy", sa.Text, nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("finished_at", sa.Double, nullable=True),
    # running | done | cancelled | timeout | disconnected | rejected | abandoned
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
    sa.CheckConstraint("trigger IN ('console', 'schedule')", name="trigger"),
    sa.Index("ix_diag_runs_device_started", "device_id", "started_at"),
    sa.Index("ix_diag_runs_started_at", "started_at"),
)

diag_results = sa.Table(
    "diag_results",
    metadata,
    # BIGINT on PostgreSQL; INTEGER (the rowid) on SQLite, where only that autoincrements
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("diag_runs.id", ondelete="CASCADE"), nullable=False),
    # copied from the run so that per-device and fleet queries need no join
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    sa.Column("check_id", sa.String(64), nullable=False),
    # '' for a result about the machine as a whole (the wire's null subject), so it can be indexed
    sa.Column("subject", sa.String(256), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("severity", sa.SmallInteger, nullable=False),
    # the headline value when it is a number (the history chart reads this)
    sa.Column("value_num", sa.Double, nullable=True),
    # the whole CheckResult as the agent sent it (msgspec JSON)
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("summary_key", sa.String(96), nullable=False),
    sa.Column("kb_key", sa.String(96), nullable=True),
    sa.Column("duration_ms", sa.Double, nullable=False, server_default="0"),
    sa.Column("time", sa.Double, nullable=False),
    sa.Index("ix_diag_results_device_check_time", "device_id", "check_id", "subject", "time"),
    sa.Index("ix_diag_results_run", "run_id"),
    sa.Index("ix_diag_results_status_time", "status", "time"),
)

diag_latest = sa.Table(
    "diag_latest",
    metadata,
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("check_id", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(256), primary_key=True, server_default=""),
    sa.Column("result_id", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("severity", sa.SmallInteger, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("time", sa.Double, nullable=False),
    # when the current run of warn/fail results began (null while passing)
    sa.Column("failing_since", sa.Double, nullable=True),
    sa.Index("ix_diag_latest_check_status", "check_id", "status"),
    sa.Index("ix_diag_latest_device_severity", "device_id", "severity"),
)

diag_group_policy = sa.Table(
    "diag_group_policy",
    metadata,
    sa.Column(
        "group_name", sa.String(64), sa.ForeignKey("device_groups.name", ondelete="CASCADE"), primary_key=True
    ),
    # a steun_protocol.diagnostics.Policy as JSON (the group's settings; the catalogue supplies the rest)
    sa.Column("policy", sa.Text, nullable=False, server_default="{}"),
    # seconds between scheduled runs; null or 0: no schedule
    sa.Column("interval_s", sa.Integer, nullable=True),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=True),
)

session_transcripts = sa.Table(
    "session_transcripts",
    metadata,
    # one transcript per session, attached once by its technician's console when the session ended
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("device_id", sa.String(64), nullable=False, index=True),
    sa.Column("technician_id", sa.Integer, nullable=False),
    sa.Column("technician", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("messages", sa.Integer, nullable=False),
    sa.Column("dropped", sa.Integer, nullable=False, server_default="0"),
    # SHA-256 of ``body``; the audit chain's session.transcript event holds the same digest
    sa.Column("sha256", sa.String(64), nullable=False),
    # {"dropped": n, "messages": [{id, from, time, text, phrase}]} as JSON
    sa.Column("body", sa.Text, nullable=False),
)

__all__ = [
    "DEFAULT_GROUP",
    "audit_heads",
    "audit_log",
    "device_groups",
    "devices",
    "diag_group_policy",
    "diag_latest",
    "diag_results",
    "diag_runs",
    "enrollment_tokens",
    "inventories",
    "metadata",
    "recovery_codes",
    "session_transcripts",
    "users",
    "web_sessions",
]
