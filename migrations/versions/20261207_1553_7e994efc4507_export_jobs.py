"""Background exports (issue "Scale"): the job table a worker (`tracker jobs work`) takes
its work from: who asked for which file, its state, lease and attempts, and the file made.

Revision ID: 7e994efc4507
Revises: b8df024aed3b
Create Date: 2026-12-07 15:53:39.554374
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracker.db

revision = "7e994efc4507"
down_revision = "b8df024aed3b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("requested_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", tracker.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", tracker.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=120), nullable=True),
        sa.Column("lease_until", tracker.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.Column("expires_at", tracker.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("file_deleted_at", tracker.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('compliance_pdf', 'odm', 'sdtm_xpt', 'sdtm_json', 'sdtm_csv', 'fhir')",
            name=op.f("ck_export_jobs_kind_known"),
        ),
        sa.CheckConstraint(
            "state <> 'done' OR (file_name IS NOT NULL AND file_size IS NOT NULL AND file_sha256 IS NOT NULL AND expires_at IS NOT NULL)",
            name=op.f("ck_export_jobs_done_has_file"),
        ),
        sa.CheckConstraint(
            "state <> 'failed' OR error IS NOT NULL", name=op.f("ck_export_jobs_failed_has_error")
        ),
        sa.CheckConstraint(
            "state <> 'running' OR (worker IS NOT NULL AND lease_until IS NOT NULL)",
            name=op.f("ck_export_jobs_running_is_leased"),
        ),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_export_jobs_state_known"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_export_jobs_attempts_not_negative")),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["users.id"], name=op.f("fk_export_jobs_requested_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_jobs")),
    )
    with op.batch_alter_table("export_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_export_jobs_queue", ["state", "requested_at"], unique=False)
        batch_op.create_index(
            "ix_export_jobs_requester", ["requested_by_id", "requested_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("export_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_export_jobs_requester")
        batch_op.drop_index("ix_export_jobs_queue")

    op.drop_table("export_jobs")
