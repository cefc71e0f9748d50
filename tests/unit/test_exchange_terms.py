"""The core's mappings into the exchange standards' terms."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.protocol.exchange_terms import (
    DS_WITHDRAWAL,
    RESEARCH_SUBJECT_STATUS,
    VITAL_SIGN_TERMS,
    ae_severity,
    clip,
    ds_decode,
    item_test_code,
    study_day,
    total_code,
    visit,
)
from tracker.protocol.sessions import SessionKind
from tracker.protocol.states import State, WithdrawalCategory


def test_study_days_have_no_day_zero() -> None:
    start = date(2026, 3, 10)
    assert study_day(date(2026, 3, 10), start) == 1
    assert study_day(datetime(2026, 3, 11, 23, 59, tzinfo=UTC), start) == 2
    assert study_day(date(2026, 3, 9), start) == -1
    assert study_day(date(2026, 2, 28), start) == -10
    assert study_day(None, start) is None and study_day(date(2026, 1, 1), None) is None


@given(st.dates(), st.dates())
def test_a_study_day_is_never_zero_and_keeps_the_order(day: date, start: date) -> None:
    result = study_day(day, start)
    assert result != 0
    assert (result > 0) == (day >= start)


def test_visits_number_the_sessions_in_protocol_order() -> None:
    assert visit(SessionKind.PREPARATION, 0, 2) == (1.02, "PREPARATION 2")
    assert visit(SessionKind.DOSING, 1, 1) == (11.0, "DOSING CYCLE 1")
    assert visit(SessionKind.INTEGRATION, 1, 3) == (11.03, "INTEGRATION CYCLE 1.3")
    assert visit(SessionKind.DOSING, 3, 1) == (31.0, "DOSING CYCLE 3")
    numbers = [
        visit(SessionKind.PREPARATION, 0, 3)[0],
        visit(SessionKind.DOSING, 1, 1)[0],
        visit(SessionKind.INTEGRATION, 1, 1)[0],
        visit(SessionKind.DOSING, 2, 1)[0],
    ]
    assert numbers == sorted(numbers)


def test_every_state_has_a_fhir_status_and_every_withdrawal_a_disposition() -> None:
    assert set(RESEARCH_SUBJECT_STATUS) == set(State)
    assert set(DS_WITHDRAWAL) == set(WithdrawalCategory)
    assert ds_decode(State.WITHDRAWN, "lost_to_follow_up") == "LOST TO FOLLOW-UP"
    assert ds_decode(State.WITHDRAWN, None) == "OTHER"
    assert ds_decode(State.COMPLETED, None) == "COMPLETED"
    assert ds_decode(State.SCREEN_FAILED, None) == "SCREEN FAILURE"
    assert ds_decode(State.DOSING, None) is None


def test_vital_signs_carry_cdisc_and_loinc_codes() -> None:
    assert [(t.testcd, t.loinc, t.ucum) for t in VITAL_SIGN_TERMS] == [
        ("SYSBP", "8480-6", "mm[Hg]"),
        ("DIABP", "8462-4", "mm[Hg]"),
        ("PULSE", "8867-4", "/min"),
        ("TEMP", "8310-5", "Cel"),
    ]


@pytest.mark.parametrize(
    ("grade", "severity"), [(1, "MILD"), (2, "MODERATE"), (3, "SEVERE"), (5, "SEVERE")]
)
def test_severity_from_the_grade(grade: int, severity: str) -> None:
    assert ae_severity(grade) == severity


def test_question_codes_fit_eight_characters() -> None:
    assert item_test_code("madrs", 1) == "MADRS01"
    assert item_test_code("phq9", 9) == "PHQ909"
    assert item_test_code("caps5", 20) == "CAPS520"
    assert item_test_code("a-very-long-instrument", 12) == "AVERYL12"
    assert total_code("madrs") == "MADRSTOT" and len(total_code("instrument")) == 8


@given(st.text(max_size=400))
def test_clipped_text_fits_200_bytes_and_is_a_prefix(text: str) -> None:
    clipped = clip(text)
    assert len(clipped.encode("utf-8")) <= 200
    assert text.startswith(clipped)
    if len(text.encode("utf-8")) <= 200:
        assert clipped == text


def test_dm_arms_name_the_arm_or_why_there_is_none() -> None:
    from tracker.protocol.exchange_terms import BLINDED_ARM, OPEN_LABEL_ARM, dm_arms

    arm = ("midomafetamine", "Midomafetamine")
    treated = dm_arms(screen_failed=False, randomised_protocol=True, planned=arm, treated=True)
    assert (treated.armcd, treated.actarm, treated.armnrs) == (
        "MIDOMAFETAMINE",
        "Midomafetamine",
        "",
    )
    waiting = dm_arms(screen_failed=False, randomised_protocol=True, planned=arm, treated=False)
    assert (waiting.armcd, waiting.actarmcd, waiting.armnrs) == (
        "MIDOMAFETAMINE", "", "ASSIGNED, NOT TREATED"
    )  # fmt: skip
    blinded = dm_arms(
        screen_failed=False, randomised_protocol=True, planned=BLINDED_ARM, treated=True
    )
    assert (blinded.armcd, blinded.arm) == BLINDED_ARM
    unassigned = dm_arms(screen_failed=False, randomised_protocol=True, planned=None, treated=False)
    assert (unassigned.armcd, unassigned.armnrs) == ("", "NOT ASSIGNED")
    open_label = dm_arms(screen_failed=False, randomised_protocol=False, planned=None, treated=True)
    assert (open_label.armcd, open_label.actarm) == OPEN_LABEL_ARM
    failed = dm_arms(screen_failed=True, randomised_protocol=True, planned=None, treated=False)
    assert (failed.armcd, failed.armnrs) == ("", "SCREEN FAILURE")


def test_timepoint_visits_fall_between_the_sessions() -> None:
    from tracker.protocol.exchange_terms import timepoint_visit
    from tracker.protocol.outcomes import Anchor, Timepoint

    baseline = Timepoint("baseline", "Baseline", ("madrs",), Anchor.BEFORE_FIRST_DOSING)
    cycle_1 = Timepoint("cycle_1", "After cycle 1", ("madrs",), Anchor.AFTER_DOSING, 7, cycle=1)
    primary = Timepoint("primary_endpoint", "Primary", ("madrs",), Anchor.AFTER_LAST_DOSING, 56)
    assert timepoint_visit(baseline) == (9.0, "BASELINE")
    assert timepoint_visit(cycle_1) == (19.0, "CYCLE 1")
    assert timepoint_visit(primary) == (100.056, "PRIMARY ENDPOINT")
    # The baseline before dosing cycle 1, cycle 1's assessment after its integration sessions.
    assert visit(SessionKind.PREPARATION, 0, 3)[0] < 9.0 < visit(SessionKind.DOSING, 1, 1)[0]
    assert visit(SessionKind.INTEGRATION, 1, 4)[0] < 19.0 < visit(SessionKind.DOSING, 2, 1)[0]
