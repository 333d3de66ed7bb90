"""The keywords said in each call (for history filters), and the audit log of listen-ins.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # "|Pricing|Acme|": one case-insensitive LIKE finds a keyword on SQLite and PostgreSQL alike.
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("keywords", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "listen_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("key_label", sa.String(128), nullable=False, server_default=""),
        sa.Column("key_role", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=False, server_default=""),
    )
    op.create_index("ix_listen_audit_team_started", "listen_audit", ["team", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_listen_audit_team_started", "listen_audit")
    op.drop_table("listen_audit")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("keywords")
