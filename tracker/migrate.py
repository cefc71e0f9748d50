"""Alembic, driven from the app's own settings (no alembic.ini to keep in step)."""

from __future__ import annotations

import logging

# Alembic's plugin set-up chatter (logged on import) says nothing a user acts on.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from tracker.paths import MIGRATIONS  # noqa: E402


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    config.set_main_option(
        "file_template",
        "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s",
    )
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head", app_url: str | None = None) -> str | None:
    """Migrate as the owner (``database_url``). On PostgreSQL, when the app connects as another
    role (``app_url``), give that role only what it needs; return its name."""
    command.upgrade(alembic_config(database_url), revision)
    if app_url is None:
        return None
    owner, app_role = make_url(database_url), make_url(app_url)
    if owner.get_backend_name() != "postgresql" or owner.username == app_role.username:
        return None
    grant_app_role(database_url, str(app_role.username))
    return app_role.username


# Tables the app appends to and never changes: their history is the record.
APPEND_ONLY_TABLES = (
    "audit_events",
    "notes",
    "assessments",
    "missed_timepoints",
    # The investigational product's record (SPEC §12).
    "dea_registrations",
    "storage_locations",
    "drug_lots",
    "ledger_entries",
    "ledger_witnesses",
    "loss_reports",
    "count_explanations",
)


def grant_app_role(owner_url: str, role: str) -> None:
    """The app's grants, given again from nothing after every upgrade: read and write the
    tables (no DELETE, no TRUNCATE, nothing on the schema), only append to the append-only
    ones, only read Alembic's version. Owning nothing, the role cannot ALTER a table, so it
    cannot disable or drop the triggers that keep the audit trail append-only."""
    from tracker.db import create_engine

    quoted = '"' + role.replace('"', '""') + '"'
    engine = create_engine(owner_url)
    try:
        with engine.begin() as connection:
            run = connection.exec_driver_sql
            run(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}")
            run(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {quoted}")
            run(f"REVOKE CREATE ON SCHEMA public FROM {quoted}")
            run(f"GRANT USAGE ON SCHEMA public TO {quoted}")
            run(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {quoted}")
            for table in (*APPEND_ONLY_TABLES, "alembic_version"):
                run(f"REVOKE INSERT, UPDATE ON {table} FROM {quoted}")
            run(f"GRANT INSERT ON {', '.join(APPEND_ONLY_TABLES)} TO {quoted}")
            run(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
    finally:
        engine.dispose()


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str) -> None:
    command.current(alembic_config(database_url), verbose=False)


def revision(database_url: str, message: str) -> None:
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
