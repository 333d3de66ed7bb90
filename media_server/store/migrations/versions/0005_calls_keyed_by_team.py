"""Call ids are unique per team: the calls table's key becomes (team, id), and the rows of a call (participants,
channels, segments) name their call by team and id. Event ids and segment ids are 64 bits (PostgreSQL); a
participant's phone is as long as the call's metadata keeps (256).

Each of the four tables is rebuilt beside the old one (``*_v5``), filled from it, and takes its place: the same on
SQLite (which cannot change a primary key in place) and PostgreSQL, in the migration's one transaction. Rows of a
call whose call is gone (none are expected) are not carried over.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

CALL_COLUMNS = [
    "id",
    "team",
    "source",
    "status",
    "end_reason",
    "started_at",
    "ended_at",
    "node",
    "metadata",
    "speakers",
    "metrics",
    "disposition",
    "keywords",
]
# The rows of a call, beside their call's key: (table, its own columns).
CHILDREN = {
    "participants": ["role", "consent", "transcribed", "external_id", "name", "phone", "email"],
    "channels": ["index", "speaker", "sample_rate", "transcribed"],
    "segments": ["channel", "speaker", "text", "start", "end", "confidence", "words"],
}


def _of_call(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["team", "call_id"], ["calls_v5.team", "calls_v5.id"], ondelete="CASCADE", name=f"fk_{table}_call"
    )


def _create_new_tables() -> None:
    op.create_table(
        "calls_v5",
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("end_reason", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("node", sa.String(64), nullable=False, server_default=""),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("speakers", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("disposition", sa.String(64), nullable=False, server_default=""),
        sa.Column("keywords", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("team", "id", name="pk_calls"),
    )
    op.create_table(
        "participants_v5",
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("consent", sa.String(16), nullable=False),
        sa.Column("transcribed", sa.Boolean(), nullable=False),
        sa.Column("external_id", sa.String(256), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("phone", sa.String(256), nullable=False),  # (as long as metadata keeps; PostgreSQL enforces it)
        sa.Column("email", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("team", "call_id", "role", name="pk_participants"),
        _of_call("participants"),
    )
    op.create_table(
        "channels_v5",
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("transcribed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("team", "call_id", "index", name="pk_channels"),
        _of_call("channels"),
    )
    op.create_table(
        "segments_v5",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        _of_call("segments"),
    )


def _table(name: str, columns: list[str]) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in columns))


def upgrade() -> None:
    _create_new_tables()
    old_calls = _table("calls", CALL_COLUMNS)
    op.execute(_table("calls_v5", CALL_COLUMNS).insert().from_select(CALL_COLUMNS, sa.select(old_calls)))
    for name, columns in CHILDREN.items():
        old = _table(name, ["call_id", *columns] + (["id"] if name == "segments" else []))
        rows = (
            sa.select(old_calls.c.team, old.c.call_id, *(old.c[c] for c in columns))
            .select_from(old.join(old_calls, old_calls.c.id == old.c.call_id))
            .order_by(old.c.id if name == "segments" else old.c.call_id)
        )
        new = _table(f"{name}_v5", ["team", "call_id", *columns])
        op.execute(new.insert().from_select(["team", "call_id", *columns], rows))
    # The children first (on SQLite with foreign keys on, dropping a table deletes its rows: the old children must
    # be gone before the old calls), then each new table takes its name (references to it follow the rename).
    op.drop_index("ix_segments_call_id", table_name="segments")
    for name in CHILDREN:
        op.drop_table(name)
    op.drop_index("ix_calls_team_started", table_name="calls")
    op.drop_index("ix_calls_status_node", table_name="calls")
    op.drop_table("calls")
    for name in ["calls", *CHILDREN]:
        op.rename_table(f"{name}_v5", name)
    op.create_index("ix_calls_team_started", "calls", ["team", "started_at"])
    op.create_index("ix_calls_status_node", "calls", ["status", "node"])
    op.create_index("ix_segments_call", "segments", ["team", "call_id"])
    # A call's events are found by team and call id.
    op.drop_index("ix_events_call_id", table_name="events")
    op.create_index("ix_events_call", "events", ["team", "call_id", "id"])
    if op.get_bind().dialect.name == "postgresql":  # (SQLite's INTEGER is 64 bits already)
        op.alter_column("events", "id", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)
        op.alter_column("counters", "value", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)


def downgrade() -> None:
    """Back to call ids unique across teams: fails (a unique violation) where two teams use the same call id."""
    op.drop_index("ix_events_call", table_name="events")
    op.create_index("ix_events_call_id", "events", ["call_id", "id"])
    old_calls = _table("calls", CALL_COLUMNS)
    op.create_table(
        "calls_v4",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("end_reason", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("node", sa.String(64), nullable=False, server_default=""),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("speakers", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("disposition", sa.String(64), nullable=False, server_default=""),
        sa.Column("keywords", sa.Text(), nullable=False, server_default=""),
    )
    op.execute(_table("calls_v4", CALL_COLUMNS).insert().from_select(CALL_COLUMNS, sa.select(old_calls)))
    op.create_table(
        "participants_v4",
        sa.Column("call_id", sa.String(128), sa.ForeignKey("calls_v4.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("consent", sa.String(16), nullable=False),
        sa.Column("transcribed", sa.Boolean(), nullable=False),
        sa.Column("external_id", sa.String(256), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("phone", sa.String(64), nullable=False),
        sa.Column("email", sa.String(256), nullable=False),
    )
    op.create_table(
        "channels_v4",
        sa.Column("call_id", sa.String(128), sa.ForeignKey("calls_v4.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("index", sa.Integer(), primary_key=True),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("transcribed", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "segments_v4",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(128), sa.ForeignKey("calls_v4.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
    )
    for name, columns in CHILDREN.items():
        old = _table(name, ["call_id", *columns] + (["id"] if name == "segments" else []))
        rows = sa.select(old.c.call_id, *(old.c[c] for c in columns)).order_by(
            old.c.id if name == "segments" else old.c.call_id
        )
        op.execute(_table(f"{name}_v4", ["call_id", *columns]).insert().from_select(["call_id", *columns], rows))
    op.drop_index("ix_segments_call", table_name="segments")
    for name in CHILDREN:
        op.drop_table(name)
    op.drop_index("ix_calls_team_started", table_name="calls")
    op.drop_index("ix_calls_status_node", table_name="calls")
    op.drop_table("calls")
    for name in ["calls", *CHILDREN]:
        op.rename_table(f"{name}_v4", name)
    op.create_index("ix_calls_team_started", "calls", ["team", "started_at"])
    op.create_index("ix_calls_status_node", "calls", ["status", "node"])
    op.create_index("ix_segments_call_id", "segments", ["call_id"])
