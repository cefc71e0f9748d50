"""Childbearing potential recorded per participant (SPEC §4), in place of a flag nothing set.

Participants whose pregnancy tests were required are recorded as of childbearing potential;
for everyone else who is not male it is left unrecorded, which counts as yes: a negative
pregnancy test is due before dosing until someone records no. Males are never recorded.

Revision ID: 1507439710a3
Revises: 7709f115c364
Create Date: 2026-12-02 15:38:34.681529
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "1507439710a3"
down_revision = "7709f115c364"
branch_labels = None
depends_on = None

participants = sa.table(
    "participants",
    sa.column("sex", sa.String),
    sa.column("childbearing_potential", sa.Boolean),
    sa.column("pregnancy_tests_required", sa.Boolean),
)


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("childbearing_potential", sa.Boolean(), nullable=True))
    op.execute(
        participants.update()
        .where(participants.c.pregnancy_tests_required.is_(True), participants.c.sex != "male")
        .values(childbearing_potential=True)
    )
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("pregnancy_tests_required")
        batch_op.create_check_constraint(
            "childbearing_not_male", "sex <> 'male' OR childbearing_potential IS NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_constraint("childbearing_not_male", type_="check")
        batch_op.add_column(
            sa.Column(
                "pregnancy_tests_required",
                sa.Boolean(),
                server_default=sa.text("false"),
                nullable=False,
            )
        )
    op.execute(
        participants.update()
        .where(
            participants.c.sex != "male",
            sa.or_(
                participants.c.childbearing_potential.is_(None),
                participants.c.childbearing_potential.is_(True),
            ),
        )
        .values(pregnancy_tests_required=True)
    )
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("childbearing_potential")
