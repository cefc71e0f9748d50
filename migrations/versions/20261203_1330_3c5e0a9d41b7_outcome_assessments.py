"""Outcome measures (SPEC §10): the rater role, rater assignments, assessments, missed
timepoints, the follow-up state, and which protocol version new enrolments use.

Revision ID: 3c5e0a9d41b7
Revises: 1507439710a3
Create Date: 2026-12-03 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracker.db

revision = "3c5e0a9d41b7"
down_revision = "1507439710a3"
branch_labels = None
depends_on = None

OLD_ROLES = "role IN ('coordinator', 'therapist', 'investigator', 'auditor', 'admin')"
NEW_ROLES = "role IN ('coordinator', 'therapist', 'investigator', 'auditor', 'admin', 'rater')"


OLD_STATES = (
    "'screening', 'preparation', 'dosing', 'integration', 'on_hold', 'completed', "
    "'screen_failed', 'withdrawn'"
)
NEW_STATES = (
    "'screening', 'preparation', 'dosing', 'integration', 'on_hold', 'follow_up', "
    "'completed', 'screen_failed', 'withdrawn'"
)


def _states(values: str) -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_participants_state_known"), type_="check")
        batch_op.drop_constraint(op.f("ck_participants_held_from_known"), type_="check")
        batch_op.create_check_constraint("state_known", f"state IN ({values})")
        batch_op.create_check_constraint(
            "held_from_known", f"held_from IS NULL OR held_from IN ({values})"
        )
    with op.batch_alter_table("transition_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_transition_events_from_state_known"), type_="check")
        batch_op.drop_constraint(op.f("ck_transition_events_to_state_known"), type_="check")
        batch_op.create_check_constraint("from_state_known", f"from_state IN ({values})")
        batch_op.create_check_constraint("to_state_known", f"to_state IN ({values})")


def _roles(check: str) -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_role_known"), type_="check")
        batch_op.create_check_constraint("role_known", check)


def upgrade() -> None:
    _roles(NEW_ROLES)
    _states(NEW_STATES)
    with op.batch_alter_table("protocol_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("activated_at", tracker.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "rater_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("assigned_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("assigned_by_id", sa.Integer(), nullable=True),
        sa.Column("ended_at", tracker.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["assigned_by_id"], ["users.id"], name=op.f("fk_rater_assignments_assigned_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_rater_assignments_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_rater_assignments_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rater_assignments")),
    )
    with op.batch_alter_table("rater_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rater_assignments_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_rater_assignments_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "uq_rater_assignments_active",
            ["participant_id", "user_id"],
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )
    op.create_table(
        "assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("timepoint", sa.String(length=60), nullable=False),
        sa.Column("instrument", sa.String(length=60), nullable=False),
        sa.Column("administered_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("subscales", sa.JSON(), nullable=False),
        sa.Column("band", sa.String(length=60), nullable=True),
        sa.Column("in_window", sa.Boolean(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recorded_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("total >= 0", name=op.f("ck_assessments_total_positive")),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_assessments_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["users.id"], name=op.f("fk_assessments_recorded_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessments")),
        sa.UniqueConstraint(
            "participant_id",
            "timepoint",
            "instrument",
            name=op.f("uq_assessments_participant_id_timepoint_instrument"),
        ),
    )
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assessments_participant_id"), ["participant_id"], unique=False
        )
    op.create_table(
        "missed_timepoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("timepoint", sa.String(length=60), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_missed_timepoints_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["users.id"], name=op.f("fk_missed_timepoints_recorded_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_missed_timepoints")),
        sa.UniqueConstraint(
            "participant_id",
            "timepoint",
            name=op.f("uq_missed_timepoints_participant_id_timepoint"),
        ),
    )
    with op.batch_alter_table("missed_timepoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_missed_timepoints_participant_id"), ["participant_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("missed_timepoints")
    op.drop_table("assessments")
    op.drop_table("rater_assignments")
    with op.batch_alter_table("protocol_versions", schema=None) as batch_op:
        batch_op.drop_column("activated_at")
    raters = op.get_bind().scalar(sa.text("SELECT count(*) FROM users WHERE role = 'rater'"))
    if raters:
        # Users are never deleted (the audit trail names them): change their role first.
        raise RuntimeError(f"{raters} rater account(s) exist; give them another role first.")
    following = op.get_bind().scalar(
        sa.text(
            "SELECT count(*) FROM transition_events "
            "WHERE from_state = 'follow_up' OR to_state = 'follow_up'"
        )
    )
    if following:
        # History is never rewritten: a study that used the follow-up phase stays upgraded.
        raise RuntimeError(f"{following} transition(s) into or out of follow-up are recorded.")
    _states(OLD_STATES)
    _roles(OLD_ROLES)
