"""Write as you go: a call's row exists while it is live (``ended_at`` empty, ``node`` holding it); the event log
that subscribers resume from across restarts; the counter that keeps event ids from ever being reused.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.alter_column("ended_at", existing_type=sa.DateTime(timezone=True), nullable=True)
        batch.add_column(sa.Column("node", sa.String(64), nullable=False, server_default=""))
    op.create_index("ix_calls_status_node", "calls", ["status", "node"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_events_team_id", "events", ["team", "id"])
    op.create_index("ix_events_call_id", "events", ["call_id", "id"])
    op.create_table(
        "counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("counters")
    op.drop_index("ix_events_call_id", "events")
    op.drop_index("ix_events_team_id", "events")
    op.drop_table("events")
    op.drop_index("ix_calls_status_node", "calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("node")
        batch.alter_column("ended_at", existing_type=sa.DateTime(timezone=True), nullable=False)
