"""Outcome measures in the core (SPEC §10): scoring, bands, change from baseline, response and
remission against totals worked out by hand, timepoint windows, the protocol files' outcome
sections, and properties over random item scores."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.protocol import ProtocolFileError, load_protocol, load_protocol_file
from tracker.protocol.outcomes import (
    AnchorDays,
    Instrument,
    TimepointStatus,
    change_from_baseline,
    in_window,
    item_problems,
    score,
    target_day,
    timepoint_status,
    window_of,
)

PROTOCOLS = Path(__file__).resolve().parents[2] / "fixtures" / "protocols"
MDD = load_protocol_file(PROTOCOLS / "mdma-mdd-v1.toml")
PTSD = load_protocol_file(PROTOCOLS / "mdma-at-v2.toml")
MADRS = MDD.instrument("madrs")
PHQ9 = MDD.instrument("phq9")
CSSRS = MDD.instrument("cssrs")
CAPS5 = PTSD.instrument("caps5")
RULES = MDD.outcomes
assert RULES is not None

MADRS_CODES = [item.code for item in MADRS.items]


def madrs(*values: int) -> dict[str, int]:
    return dict(zip(MADRS_CODES, values, strict=True))


# --- hand-worked examples ------------------------------------------------------------------
# Participant A: baseline MADRS 4+4+3+4+2+3+3+4+4+3 = 34 (moderate);
# primary endpoint 1+1+1+2+0+1+1+1+1+0 = 9 (mild): change -25, 25 >= 17 so a response, 9 <= 10
# so a remission.
# Participant B: baseline 5+5+4+4+3+4+4+4+4+3 = 40 (severe); endpoint 3+3+2+2+2+2+2+2+2+1 = 21
# (moderate): change -19, 19 < 20 so no response, 21 > 10 so no remission.
# Participant C: baseline 30, endpoint exactly 15: a reduction of exactly 50 % is a response.
HAND_WORKED = [
    (
        madrs(4, 4, 3, 4, 2, 3, 3, 4, 4, 3),
        madrs(1, 1, 1, 2, 0, 1, 1, 1, 1, 0),
        (34, "moderate", 9, "mild", -25, True, True),
    ),
    (
        madrs(5, 5, 4, 4, 3, 4, 4, 4, 4, 3),
        madrs(3, 3, 2, 2, 2, 2, 2, 2, 2, 1),
        (40, "severe", 21, "moderate", -19, False, False),
    ),
    (
        madrs(3, 3, 3, 3, 3, 3, 3, 3, 3, 3),
        madrs(2, 2, 2, 2, 2, 1, 1, 1, 1, 1),
        (30, "moderate", 15, "mild", -15, True, False),
    ),
]


@pytest.mark.parametrize(("baseline", "endpoint", "expected"), HAND_WORKED)
def test_madrs_scores_changes_response_and_remission_match_the_hand_worked_figures(
    baseline: dict[str, int], endpoint: dict[str, int], expected: tuple[object, ...]
) -> None:
    first = score(MADRS, baseline)
    then = score(MADRS, endpoint)
    change = change_from_baseline(RULES, "madrs", first.total, then.total)
    assert (
        first.total,
        first.band,
        then.total,
        then.band,
        change.change_from_baseline,
        change.response,
        change.remission,
    ) == expected


def test_phq9_total_and_band_by_hand() -> None:
    # 2+2+1+3+0+1+2+0+0 = 11: moderate (10-14).
    values = dict(zip([i.code for i in PHQ9.items], [2, 2, 1, 3, 0, 1, 2, 0, 0], strict=True))
    result = score(PHQ9, values)
    assert (result.total, result.band) == (11, "moderate")
    # Only the primary instrument has response and remission.
    change = change_from_baseline(RULES, "phq9", 18, 11)
    assert (change.change_from_baseline, change.response, change.remission) == (-7, None, None)


def test_caps5_subscales_are_the_cluster_sums() -> None:
    values = {item.code: 0 for item in CAPS5.items}
    values.update({"b1": 3, "b2": 2, "c1": 4, "d2": 1, "d4": 2, "e3": 3, "e6": 4})
    result = score(CAPS5, values)
    assert result.total == 19
    assert dict(result.subscales) == {
        "intrusion": 5,
        "avoidance": 4,
        "cognition_mood": 3,
        "arousal": 7,
    }
    assert result.band is None  # CAPS-5 ships no bands


def test_cssrs_severity_is_the_most_severe_item_answered_yes() -> None:
    none = {item.code: 0 for item in CSSRS.items}
    assert score(CSSRS, none).total == 0
    passive = none | {"wish_dead": 1}
    assert (score(CSSRS, passive).total, score(CSSRS, passive).band) == (
        1,
        "passive or non-specific ideation",
    )
    intent = none | {"wish_dead": 1, "nonspecific": 1, "intent": 1}
    assert (score(CSSRS, intent).total, score(CSSRS, intent).band) == (4, "active ideation")


def test_every_missing_unknown_and_out_of_range_item_is_named() -> None:
    values: dict[str, object] = {code: 2 for code in MADRS_CODES}
    del values["lassitude"]
    values["reduced_sleep"] = 7
    values["inner_tension"] = 1.5
    values["mood"] = 1
    problems = item_problems(MADRS, values)
    assert problems == (
        "madrs item inner_tension (Inner tension) must be a whole number from 0 to 6.",
        "madrs item reduced_sleep (Reduced sleep) must be from 0 to 6; 7 was entered.",
        "madrs item lassitude (Lassitude) is missing.",
        "madrs has no item 'mood'.",
    )
    with pytest.raises(ValueError, match="lassitude"):
        score(MADRS, values)  # type: ignore[arg-type]


def test_response_needs_a_baseline_above_zero() -> None:
    assert change_from_baseline(RULES, "madrs", None, 8).response is None
    assert change_from_baseline(RULES, "madrs", 0, 0).response is None
    assert change_from_baseline(RULES, "madrs", None, 8).remission is True


# --- timepoints ----------------------------------------------------------------------------

ENROLLED = date(2027, 1, 4)
DOSED = (date(2027, 2, 1), date(2027, 3, 1), date(2027, 4, 5))


def test_windows_are_counted_from_their_anchors() -> None:
    anchors = AnchorDays(ENROLLED, DOSED, treatment_ended_on=DOSED[-1])
    baseline = MDD.timepoint("baseline")
    assert window_of(baseline, anchors) == (date(2027, 1, 4), date(2027, 2, 1))
    cycle_1 = MDD.timepoint("cycle_1")
    # 21 days after 1 Feb is 22 Feb; 3 days before to 7 after.
    assert window_of(cycle_1, anchors) == (date(2027, 2, 19), date(2027, 3, 1))
    endpoint = MDD.timepoint("primary_endpoint")
    # 56 days after 5 April is 31 May; 7 before, 14 after.
    assert target_day(endpoint, anchors) == date(2027, 5, 31)
    assert window_of(endpoint, anchors) == (date(2027, 5, 24), date(2027, 6, 14))
    month_12 = MDD.timepoint("month_12")
    assert target_day(month_12, anchors) == date(2028, 4, 4)
    assert in_window(endpoint, anchors, date(2027, 6, 14)) is True
    assert in_window(endpoint, anchors, date(2027, 6, 15)) is False


def test_a_participant_who_stopped_after_cycle_1_is_followed_from_their_last_dosing() -> None:
    anchors = AnchorDays(ENROLLED, DOSED[:1], treatment_ended_on=DOSED[0])
    month_12 = MDD.timepoint("month_12")
    assert target_day(month_12, anchors) == DOSED[0] + timedelta(days=365)
    # The later cycles' timepoints never come.
    assert target_day(MDD.timepoint("cycle_2"), anchors) is None


def test_timepoint_status_moves_from_not_yet_to_due_to_overdue() -> None:
    anchors = AnchorDays(ENROLLED, DOSED, treatment_ended_on=DOSED[-1])
    endpoint = MDD.timepoint("primary_endpoint")

    def status(today: date, **kwargs: bool) -> TimepointStatus:
        flags = {"done": False, "missed": False} | kwargs
        return timepoint_status(endpoint, anchors, today, **flags)

    assert status(date(2027, 5, 23)) == TimepointStatus.NOT_YET
    assert status(date(2027, 5, 24)) == TimepointStatus.DUE
    assert status(date(2027, 6, 15)) == TimepointStatus.OVERDUE
    assert status(date(2027, 6, 15), done=True) == TimepointStatus.DONE
    assert status(date(2027, 6, 15), missed=True) == TimepointStatus.MISSED
    # The baseline is due from enrolment until the first dosing is known.
    before = AnchorDays(ENROLLED)
    baseline = MDD.timepoint("baseline")
    assert (
        timepoint_status(baseline, before, ENROLLED, done=False, missed=False)
        == TimepointStatus.DUE
    )
    assert in_window(baseline, before, ENROLLED) is True


# --- the protocol files --------------------------------------------------------------------


def test_the_protocol_without_outcome_measures_keeps_its_content_hash() -> None:
    # The hash recorded when version 1 was first loaded: outcome measures must not change it.
    v1 = load_protocol_file(PROTOCOLS / "mdma-at-v1.toml")
    assert v1.instruments == () and not v1.has_follow_up
    assert v1.content_hash() == "b7b100eea1e6db941d0c2d75daa1913e3efbe6ede5b707c095427c20d367a378"


def test_licensed_scales_ship_no_wording_and_free_ones_do() -> None:
    for protocol in (MDD, PTSD):
        for instrument in protocol.instruments:
            texts = [item.text for item in instrument.items]
            if instrument.licensed:
                assert texts == [None] * len(texts), instrument.code
            else:
                assert all(texts), instrument.code
    assert {i.code for i in MDD.instruments if not i.licensed} == {"phq9", "gad7"}


def _with_outcomes(extra: str) -> str:
    text = (PROTOCOLS / "mdma-at-v1.toml").read_text()
    return text + "\n" + extra


BROKEN = """
[[instruments]]
code = "scale"
title = "A scale"
kind = "clinician"
licensed = true

[[instruments.items]]
code = "a"
label = "A"
min = 0
max = 3
text = "The licensed wording"

[[instruments.items]]
code = "a"
label = "A again"
min = 2
max = 2

[[timepoints]]
code = "late"
title = "Late"
instruments = ["scale", "other"]
anchor = "after_dosing"
cycle = 9

[outcomes]
primary_instrument = "missing"
baseline_timepoint = "late"
primary_timepoint = "late"
"""


def test_a_broken_outcome_section_reports_every_problem() -> None:
    with pytest.raises(ProtocolFileError) as caught:
        load_protocol(_with_outcomes(BROKEN))
    problems = caught.value.problems
    assert "instruments[0].items[1].max: must be above min (2), found 2" in problems
    assert "instruments[0].items: a licensed instrument ships codes and short labels, not text" in (
        problems
    )
    assert "timepoints[0].instruments: unknown instruments ['other']" in problems
    assert "timepoints[0].cycle: the protocol has 3 dosing cycles" in problems
    assert "outcomes.primary_instrument: unknown instrument 'missing'" in problems


# --- properties ----------------------------------------------------------------------------


def _scores(instrument: Instrument) -> st.SearchStrategy[dict[str, int]]:
    return st.fixed_dictionaries(
        {item.code: st.integers(item.minimum, item.maximum) for item in instrument.items}
    )


INSTRUMENTS = [*MDD.instruments, *PTSD.instruments]


@pytest.mark.parametrize("instrument", INSTRUMENTS, ids=[i.code for i in INSTRUMENTS])
@given(data=st.data())
def test_a_total_is_always_within_the_instruments_range_and_has_a_band(
    instrument: Instrument, data: st.DataObject
) -> None:
    result = score(instrument, data.draw(_scores(instrument)))
    assert instrument.minimum_total <= result.total <= instrument.maximum_total
    assert (result.band is None) == (not instrument.bands)
    for subscale in instrument.subscales:
        assert 0 <= result.subscales[subscale.code] <= result.total


@given(baseline=_scores(MADRS), endpoint=_scores(MADRS))
def test_remission_implies_the_threshold_and_response_the_reduction(
    baseline: dict[str, int], endpoint: dict[str, int]
) -> None:
    first, then = score(MADRS, baseline).total, score(MADRS, endpoint).total
    change = change_from_baseline(RULES, "madrs", first, then)
    assert change.remission == (then <= 10)
    if change.response:
        assert first - then >= first / 2
    assert change.change_from_baseline == then - first
