"""Investigational product accountability (SPEC §12): DEA registrations, storage locations,
lots, the append-only ledger with its witnesses, loss reports and count explanations, and the
dispensing a dose names.

Revision ID: abf627cfba4d
Revises: d920061af67a
Create Date: 2026-12-04 18:33:36.081898
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracker.db

revision = "abf627cfba4d"
down_revision = "d920061af67a"
branch_labels = None
depends_on = None

# The product's record is append-only like the audit trail: a mistake is reversed by a
# correction entry, never edited.
APPEND_ONLY = (
    "dea_registrations",
    "storage_locations",
    "drug_lots",
    "ledger_entries",
    "ledger_witnesses",
    "loss_reports",
    "count_explanations",
)
MESSAGE = "the drug ledger is append-only: write a correction entry with a reason"


def _create_guards() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        op.execute(
            f"""
            CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
    for table in APPEND_ONLY:
        if sqlite:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
                )
            continue
        op.execute(
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
        )


def _drop_guards() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in APPEND_ONLY:
        if sqlite:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    if not sqlite:
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")


def upgrade() -> None:
    op.create_table(
        "dea_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("registrant", sa.String(length=200), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["users.id"], name=op.f("fk_dea_registrations_recorded_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_dea_registrations_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dea_registrations")),
    )
    with op.batch_alter_table("dea_registrations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dea_registrations_site_id"), ["site_id"], unique=False)

    op.create_table(
        "storage_locations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_storage_locations_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_storage_locations_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_locations")),
        sa.UniqueConstraint("site_id", "name", name=op.f("uq_storage_locations_site_id_name")),
    )
    with op.batch_alter_table("storage_locations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_storage_locations_site_id"), ["site_id"], unique=False)

    op.create_table(
        "drug_lots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=False),
        sa.Column("lot_number", sa.String(length=60), nullable=False),
        sa.Column("strength_mg", sa.Numeric(precision=7, scale=2, asdecimal=False), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("arm", sa.String(length=60), nullable=True),
        sa.Column("storage_location_id", sa.Integer(), nullable=True),
        sa.Column("created_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("strength_mg > 0", name=op.f("ck_drug_lots_strength_positive")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_drug_lots_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_drug_lots_site_id_sites")),
        sa.ForeignKeyConstraint(
            ["storage_location_id"],
            ["storage_locations.id"],
            name=op.f("fk_drug_lots_storage_location_id_storage_locations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drug_lots")),
        sa.UniqueConstraint(
            "site_id", "product", "lot_number", name=op.f("uq_drug_lots_site_id_product_lot_number")
        ),
    )
    with op.batch_alter_table("drug_lots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drug_lots_site_id"), ["site_id"], unique=False)

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "receipt",
                "dispensing",
                "return",
                "destruction",
                "loss",
                "count",
                "correction",
                name="entrykind",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("occurred_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reverses_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("dispensing_id", sa.Integer(), nullable=True),
        sa.Column("supplier", sa.String(length=200), nullable=True),
        sa.Column("dea_form_222", sa.String(length=40), nullable=True),
        sa.Column("witness_id", sa.Integer(), nullable=True),
        sa.Column("dea_form_41", sa.String(length=40), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("counted_units", sa.Integer(), nullable=True),
        sa.Column("expected_units", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(kind = 'correction') = (reverses_id IS NOT NULL)",
            name=op.f("ck_ledger_entries_correction_reverses"),
        ),
        sa.CheckConstraint(
            "(kind = 'count') = (counted_units IS NOT NULL AND expected_units IS NOT NULL)",
            name=op.f("ck_ledger_entries_count_has_figures"),
        ),
        sa.CheckConstraint(
            "(kind = 'dispensing') = (session_id IS NOT NULL)",
            name=op.f("ck_ledger_entries_dispensing_has_session"),
        ),
        sa.CheckConstraint(
            "(kind = 'return') = (dispensing_id IS NOT NULL)",
            name=op.f("ck_ledger_entries_return_has_dispensing"),
        ),
        sa.CheckConstraint(
            "kind <> 'correction' OR reason IS NOT NULL",
            name=op.f("ck_ledger_entries_correction_has_reason"),
        ),
        sa.CheckConstraint(
            "kind <> 'destruction' OR dea_form_41 IS NOT NULL",
            name=op.f("ck_ledger_entries_destruction_documented"),
        ),
        sa.CheckConstraint(
            "kind <> 'loss' OR description IS NOT NULL",
            name=op.f("ck_ledger_entries_loss_described"),
        ),
        sa.CheckConstraint(
            "kind <> 'receipt' OR (dea_form_222 IS NOT NULL AND witness_id IS NOT NULL)",
            name=op.f("ck_ledger_entries_receipt_documented"),
        ),
        sa.CheckConstraint(
            "kind IN ('receipt', 'dispensing', 'return', 'destruction', 'loss', 'count', 'correction')",
            name=op.f("ck_ledger_entries_kind_known"),
        ),
        sa.CheckConstraint("units >= 0", name=op.f("ck_ledger_entries_units_not_negative")),
        sa.ForeignKeyConstraint(
            ["dispensing_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_entries_dispensing_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["drug_lots.id"], name=op.f("fk_ledger_entries_lot_id_drug_lots")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["users.id"], name=op.f("fk_ledger_entries_recorded_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_entries_reverses_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["therapy_sessions.id"],
            name=op.f("fk_ledger_entries_session_id_therapy_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["witness_id"], ["users.id"], name=op.f("fk_ledger_entries_witness_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_ledger_entries_reverses_id")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_entries_dispensing_id"), ["dispensing_id"], unique=False
        )
        batch_op.create_index("ix_ledger_entries_lot_kind", ["lot_id", "kind"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ledger_entries_session_id"), ["session_id"], unique=False
        )

    op.create_table(
        "count_explanations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("explained_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("explained_by_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_count_explanations_entry_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["explained_by_id"],
            ["users.id"],
            name=op.f("fk_count_explanations_explained_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_count_explanations")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_count_explanations_entry_id")),
    )
    op.create_table(
        "ledger_witnesses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("printed_name", sa.String(length=200), nullable=False),
        sa.Column("meaning", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_witnesses_entry_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ledger_witnesses_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_witnesses")),
        sa.UniqueConstraint(
            "entry_id", "user_id", name=op.f("uq_ledger_witnesses_entry_id_user_id")
        ),
    )
    with op.batch_alter_table("ledger_witnesses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_witnesses_entry_id"), ["entry_id"], unique=False
        )

    op.create_table(
        "loss_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("report", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=80), nullable=False),
        sa.Column("reported_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", tracker.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "report IN ('initial_notice', 'dea_form_106')",
            name=op.f("ck_loss_reports_report_known"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_loss_reports_entry_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["users.id"], name=op.f("fk_loss_reports_recorded_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loss_reports")),
        sa.UniqueConstraint("entry_id", "report", name=op.f("uq_loss_reports_entry_id_report")),
    )
    with op.batch_alter_table("dose_administrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispensing_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_dose_administrations_dispensing_id"), ["dispensing_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_dose_administrations_dispensing_id_ledger_entries"),
            "ledger_entries",
            ["dispensing_id"],
            ["id"],
        )

    _create_guards()


def downgrade() -> None:
    _drop_guards()
    with op.batch_alter_table("dose_administrations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_dose_administrations_dispensing_id_ledger_entries"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_dose_administrations_dispensing_id"))
        batch_op.drop_column("dispensing_id")

    op.drop_table("loss_reports")
    with op.batch_alter_table("ledger_witnesses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_witnesses_entry_id"))

    op.drop_table("ledger_witnesses")
    op.drop_table("count_explanations")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_session_id"))
        batch_op.drop_index("ix_ledger_entries_lot_kind")
        batch_op.drop_index(batch_op.f("ix_ledger_entries_dispensing_id"))

    op.drop_table("ledger_entries")
    with op.batch_alter_table("drug_lots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drug_lots_site_id"))

    op.drop_table("drug_lots")
    with op.batch_alter_table("storage_locations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_storage_locations_site_id"))

    op.drop_table("storage_locations")
    with op.batch_alter_table("dea_registrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dea_registrations_site_id"))

    op.drop_table("dea_registrations")
