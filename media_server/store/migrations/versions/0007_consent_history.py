"""Consent history: every change of a participant's consent on a call (from what, to what, who, how, when);
the access audit: who read or changed what (one row per request or subscription); a call's legal hold (kept from
retention's purge and erasure); receipts of erasures; anonymised daily aggregates per team, day and rep (filled
from the calls already stored, when the server starts).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("participant", sa.String(16), nullable=False),
        sa.Column("previous", sa.String(16), nullable=False, server_default=""),
        sa.Column("consent", sa.String(16), nullable=False),
        sa.Column("by_key", sa.String(64), nullable=False, server_default=""),
        sa.Column("by_label", sa.String(128), nullable=False, server_default=""),
        sa.Column("by_role", sa.String(16), nullable=False, server_default=""),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_consent_changes_call", "consent_changes", ["team", "call_id", "id"])
    op.create_table(
        "access_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("key_label", sa.String(128), nullable=False, server_default=""),
        sa.Column("key_role", sa.String(16), nullable=False, server_default=""),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("target", sa.String(512), nullable=False, server_default=""),
        sa.Column("via", sa.String(16), nullable=False, server_default=""),
        sa.Column("remote", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("ix_access_audit_team_at", "access_audit", ["team", "at"])
    # (plain ADD COLUMN, not a batch copy of the table: on SQLite that copy would drop the calls' rows in other
    # tables, whose foreign keys cascade)
    op.add_column("calls", sa.Column("legal_hold", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("calls", sa.Column("counted", sa.String(300), nullable=False, server_default=""))
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("key_label", sa.String(128), nullable=False, server_default=""),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("calls", sa.JSON(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("held", sa.JSON(), nullable=False),
    )
    op.create_table(
        "daily_aggregates",
        sa.Column("team", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("rep", sa.String(256), primary_key=True),
        sa.Column("figures", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("daily_aggregates")
    op.drop_table("erasures")
    op.drop_column("calls", "counted")
    op.drop_column("calls", "legal_hold")
    op.drop_index("ix_access_audit_team_at", "access_audit")
    op.drop_table("access_audit")
    op.drop_index("ix_consent_changes_call", "consent_changes")
    op.drop_table("consent_changes")
