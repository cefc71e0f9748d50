"""Every tamper case of the drill (tests/support/tamper_drill.py) is caught: on SQLite always,
and on PostgreSQL (a throwaway cluster with an owner and an app role) where it runs."""

from __future__ import annotations

import pytest

from tests.support.databases import postgres_or_skip
from tests.support.tamper_drill import drill, table

CASES = {
    "edit",
    "delete",
    "reorder",
    "insert",
    "tail truncation",
    "full recompute",
    "trigger disabled by the app's credentials",
    "older backup restored",
}


def test_every_tamper_case_is_caught_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    outcomes = drill(root=tmp_path)
    assert {o.case for o in outcomes} == CASES
    assert all(o.detected for o in outcomes), table(outcomes)
    by = {o.case: o.by for o in outcomes}
    # What the chain alone misses, the checkpoints catch.
    assert by["tail truncation"] == by["full recompute"] == "checkpoint"


@pytest.mark.slow
def test_every_tamper_case_is_caught_on_postgresql(tmp_path) -> None:  # type: ignore[no-untyped-def]
    postgres_or_skip()
    outcomes = [o for o in drill(postgres=True, root=tmp_path) if o.backend == "postgresql"]
    assert {o.case for o in outcomes} == CASES
    assert all(o.detected for o in outcomes), table(outcomes)
    trigger = next(o for o in outcomes if o.case.startswith("trigger"))
    assert trigger.by == "privileges" and "must be owner" in trigger.message
