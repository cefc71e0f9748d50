"""The migrations are the schema: one head, reversible, and in step with the models."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import tracker.models  # noqa: F401
from tests.support.databases import scratch_database
from tracker import migrate
from tracker.db import Base, create_engine


def test_one_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, script.get_heads()


def test_revision_files_are_dated() -> None:
    import re

    for path in migrate.MIGRATIONS.joinpath("versions").glob("*.py"):
        assert re.match(r"^\d{8}_\d{4}_[0-9a-f]+_[a-z0-9_]+\.py$", path.name), path.name


def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_downgrade_upgrade_and_models_agree(backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with scratch_database(backend, tmp_path) as url:
        migrate.upgrade(url)
        assert _diff(url) == []
        migrate.downgrade(url, "base")
        assert _tables(url) <= {"alembic_version"}
        migrate.upgrade(url)
        assert _diff(url) == []
        assert {"audit_events", "users", "sites"} <= _tables(url)
