"""API keys' lifecycle: an optional expiry, when a key was last used (at most once a minute), and which key a
rotation replaced (``rotated_from``: the old key is revoked when the new one is made, or after a grace period).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # (plain ADD COLUMN, as in 0007: nullable columns and defaults, no batch copy of the table)
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_keys", sa.Column("rotated_from", sa.String(32), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("api_keys", "rotated_from")
    op.drop_column("api_keys", "last_used_at")
    op.drop_column("api_keys", "expires_at")
