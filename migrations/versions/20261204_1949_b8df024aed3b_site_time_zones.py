"""Site time (issue 17): the IANA time zone each site works in; pages show and take times
in it, everything is stored in UTC.

Revision ID: b8df024aed3b
Revises: ba84b055439a
Create Date: 2026-12-04 19:49:56.036933
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b8df024aed3b"
down_revision = "ba84b055439a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("time_zone", sa.String(length=64), server_default="UTC", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
