"""Randomisation and blinding (SPEC §11): the statistician and pharmacist roles, lists and
their entries, emergency unblindings, blinding-integrity guesses, the study's unblinding.

Revision ID: d920061af67a
Revises: 3c5e0a9d41b7
Create Date: 2026-12-03 18:10:16.818179
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracker.db

revision = "d920061af67a"
down_revision = "3c5e0a9d41b7"
branch_labels = None
depends_on = None

OLD_ROLES = "('coordinator', 'therapist', 'investigator', 'auditor', 'admin', 'rater')"
NEW_ROLES = (
    "('coordinator', 'therapist', 'investigator', 'auditor', 'admin', 'rater', 'pharmacist', "
    "'statistician')"
)
OLD_SITELESS = "('auditor', 'admin')"
NEW_SITELESS = "('auditor', 'admin', 'statistician')"


def _roles(roles: str, siteless: str) -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_role_known"), type_="check")
        batch_op.drop_constraint(op.f("ck_users_site_matches_role"), type_="check")
        batch_op.create_check_constraint("role_known", f"role IN {roles}")
        batch_op.create_check_constraint(
            "site_matches_role",
            f"(role IN {siteless} AND site_id IS NULL) OR "
            f"(NOT role IN {siteless} AND site_id IS NOT NULL)",
        )


def upgrade() -> None:
    _roles(NEW_ROLES, NEW_SITELESS)
    op.create_table(
        "emergency_unblindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("unblinded_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_emergency_unblindings_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_emergency_unblindings_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergency_unblindings")),
    )
    with op.batch_alter_table("emergency_unblindings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_emergency_unblindings_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "randomisation_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("protocol_version_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("per_stratum", sa.Integer(), nullable=True),
        sa.Column("entries_count", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "source IN ('generated', 'imported')", name=op.f("ck_randomisation_lists_source_known")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_randomisation_lists_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["protocol_version_id"],
            ["protocol_versions.id"],
            name=op.f("fk_randomisation_lists_protocol_version_id_protocol_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_randomisation_lists")),
    )
    with op.batch_alter_table("randomisation_lists", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_randomisation_lists_protocol_version_id"),
            ["protocol_version_id"],
            unique=False,
        )

    op.create_table(
        "study_unblindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unblinded_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=False),
        sa.Column("statistician_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_study_unblindings_once")),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["users.id"], name=op.f("fk_study_unblindings_admin_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["statistician_id"],
            ["users.id"],
            name=op.f("fk_study_unblindings_statistician_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_unblindings")),
    )
    op.create_table(
        "blinding_guesses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("respondent", sa.String(length=20), nullable=False),
        sa.Column("respondent_user_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("timepoint", sa.String(length=60), nullable=True),
        sa.Column("guess", sa.String(length=60), nullable=False),
        sa.Column("confidence", sa.Integer(), nullable=False),
        sa.Column("recorded_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "respondent IN ('participant', 'therapist', 'rater')",
            name=op.f("ck_blinding_guesses_respondent_known"),
        ),
        sa.CheckConstraint(
            "(session_id IS NULL) <> (timepoint IS NULL)",
            name=op.f("ck_blinding_guesses_session_or_timepoint"),
        ),
        sa.CheckConstraint(
            "confidence BETWEEN 1 AND 5", name=op.f("ck_blinding_guesses_confidence_range")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_blinding_guesses_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["users.id"], name=op.f("fk_blinding_guesses_recorded_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["respondent_user_id"],
            ["users.id"],
            name=op.f("fk_blinding_guesses_respondent_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["therapy_sessions.id"],
            name=op.f("fk_blinding_guesses_session_id_therapy_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blinding_guesses")),
    )
    with op.batch_alter_table("blinding_guesses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_blinding_guesses_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "randomisation_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("stratum", sa.String(length=120), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("block", sa.Integer(), nullable=False),
        sa.Column("block_size", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=60), nullable=False),
        sa.Column("randomisation_number", sa.String(length=20), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.Column("allocated_at", tracker.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("allocated_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(participant_id IS NULL) = (allocated_at IS NULL)",
            name=op.f("ck_randomisation_entries_allocation_complete"),
        ),
        sa.ForeignKeyConstraint(
            ["allocated_by_id"],
            ["users.id"],
            name=op.f("fk_randomisation_entries_allocated_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["randomisation_lists.id"],
            name=op.f("fk_randomisation_entries_list_id_randomisation_lists"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_randomisation_entries_participant_id_participants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_randomisation_entries")),
        sa.UniqueConstraint(
            "list_id",
            "stratum",
            "position",
            name=op.f("uq_randomisation_entries_list_id_stratum_position"),
        ),
        sa.UniqueConstraint("participant_id", name=op.f("uq_randomisation_entries_participant_id")),
        sa.UniqueConstraint(
            "randomisation_number", name=op.f("uq_randomisation_entries_randomisation_number")
        ),
    )
    with op.batch_alter_table("randomisation_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_randomisation_entries_next", ["list_id", "stratum", "participant_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("randomisation_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_randomisation_entries_next")

    op.drop_table("randomisation_entries")
    with op.batch_alter_table("blinding_guesses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blinding_guesses_participant_id"))

    op.drop_table("blinding_guesses")
    op.drop_table("study_unblindings")
    with op.batch_alter_table("randomisation_lists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_randomisation_lists_protocol_version_id"))

    op.drop_table("randomisation_lists")
    with op.batch_alter_table("emergency_unblindings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_emergency_unblindings_participant_id"))

    op.drop_table("emergency_unblindings")
    _roles(OLD_ROLES, OLD_SITELESS)
