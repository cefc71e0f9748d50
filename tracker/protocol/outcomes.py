"""Outcome measures as protocol data (SPEC §10): instruments, their scoring and severity bands,
response and remission, and the assessment timepoints with their anchors and windows.

Pure functions over plain values: the services, the pages, the reports and the compliance
checks all score and place an assessment through this module, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from tracker.protocol.states import CLOSED_STATES, State


class InstrumentKind(StrEnum):
    """Who answers: a blinded clinician rater, or the participant (self-report)."""

    CLINICIAN = "clinician"
    SELF = "self"


class Scoring(StrEnum):
    """How the items make the total. ``sum`` adds them; ``highest_item`` is the position (from
    1) of the last item, in protocol order, scored above its minimum: the severity of ideation
    of the C-SSRS screen, where each item is a more severe kind than the one before."""

    SUM = "sum"
    HIGHEST_ITEM = "highest_item"


@dataclass(frozen=True)
class InstrumentItem:
    """One item. ``text`` is the item's wording where the instrument's licence allows shipping
    it (PHQ-9, GAD-7); licensed scales ship a code and a short label only."""

    code: str
    label: str
    minimum: int
    maximum: int
    text: str | None = None


@dataclass(frozen=True)
class Subscale:
    code: str
    title: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class Band:
    """A severity band: totals from ``minimum`` to ``maximum`` inclusive."""

    minimum: int
    maximum: int
    label: str


@dataclass(frozen=True)
class Instrument:
    code: str
    title: str
    kind: InstrumentKind
    licensed: bool
    scoring: Scoring
    items: tuple[InstrumentItem, ...]
    subscales: tuple[Subscale, ...] = ()
    bands: tuple[Band, ...] = ()

    @property
    def minimum_total(self) -> int:
        if self.scoring == Scoring.HIGHEST_ITEM:
            return 0
        return sum(item.minimum for item in self.items)

    @property
    def maximum_total(self) -> int:
        if self.scoring == Scoring.HIGHEST_ITEM:
            return len(self.items)
        return sum(item.maximum for item in self.items)

    def item(self, code: str) -> InstrumentItem:
        for item in self.items:
            if item.code == code:
                return item
        raise KeyError(code)

    def band_of(self, total: int) -> str | None:
        for band in self.bands:
            if band.minimum <= total <= band.maximum:
                return band.label
        return None


class Anchor(StrEnum):
    """What a timepoint's day is counted from."""

    ENROLMENT = "enrolment"
    BEFORE_FIRST_DOSING = "before_first_dosing"
    AFTER_DOSING = "after_dosing"
    AFTER_LAST_DOSING = "after_last_dosing"


@dataclass(frozen=True)
class Timepoint:
    """An assessment visit: its instruments, the day it targets and the window around it.

    ``cycle`` belongs to ``after_dosing`` only. A ``before_first_dosing`` timepoint (the
    baseline) targets the first dosing day itself; its window opens ``window_before_days``
    earlier. Timepoints anchored after the last dosing are the follow-up timepoints."""

    code: str
    title: str
    instruments: tuple[str, ...]
    anchor: Anchor
    offset_days: int = 0
    window_before_days: int = 0
    window_after_days: int = 0
    cycle: int | None = None

    @property
    def follow_up(self) -> bool:
        return self.anchor == Anchor.AFTER_LAST_DOSING


@dataclass(frozen=True)
class OutcomeRules:
    """The primary outcome and how response and remission are derived from it."""

    primary_instrument: str
    baseline_timepoint: str
    primary_timepoint: str
    response_reduction: float = 0.5  # at least this share below the baseline total
    remission_max_total: int | None = None  # a total at or below this is a remission


# --- scoring -------------------------------------------------------------------------------


def item_problems(instrument: Instrument, scores: Mapping[str, object]) -> tuple[str, ...]:
    """Every reason the item scores cannot be stored: each missing item, each unknown code,
    each value that is not a whole number in the item's range. Empty when they can."""
    problems = []
    known = {item.code for item in instrument.items}
    for item in instrument.items:
        if item.code not in scores or scores[item.code] is None:
            problems.append(f"{instrument.code} item {item.code} ({item.label}) is missing.")
            continue
        value = scores[item.code]
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(
                f"{instrument.code} item {item.code} ({item.label}) must be a whole number "
                f"from {item.minimum} to {item.maximum}."
            )
        elif not item.minimum <= value <= item.maximum:
            problems.append(
                f"{instrument.code} item {item.code} ({item.label}) must be from {item.minimum} "
                f"to {item.maximum}; {value} was entered."
            )
    for code in sorted(set(scores) - known):
        problems.append(f"{instrument.code} has no item {code!r}.")
    return tuple(problems)


@dataclass(frozen=True)
class Score:
    total: int
    subscales: Mapping[str, int]
    band: str | None


def _total(instrument: Instrument, codes: Sequence[str], scores: Mapping[str, int]) -> int:
    if instrument.scoring == Scoring.HIGHEST_ITEM:
        highest = 0
        for position, code in enumerate(codes, start=1):
            if scores[code] > instrument.item(code).minimum:
                highest = position
        return highest
    return sum(scores[code] for code in codes)


def score(instrument: Instrument, scores: Mapping[str, int]) -> Score:
    """The total, subscale totals and band of complete, valid item scores."""
    problems = item_problems(instrument, scores)
    if problems:
        raise ValueError(" ".join(problems))
    total = _total(instrument, [item.code for item in instrument.items], scores)
    subscales = {s.code: sum(scores[code] for code in s.items) for s in instrument.subscales}
    return Score(total=total, subscales=subscales, band=instrument.band_of(total))


@dataclass(frozen=True)
class Change:
    """A total against the participant's baseline total of the same instrument."""

    baseline_total: int | None
    change_from_baseline: int | None
    response: bool | None
    remission: bool | None


def change_from_baseline(
    rules: OutcomeRules,
    instrument_code: str,
    baseline_total: int | None,
    total: int,
    *,
    timepoint: str | None = None,
) -> Change:
    """Change from baseline, and for the primary instrument response (a reduction of at least
    the protocol's share) and remission (a total at or below its threshold). Response needs a
    baseline above zero; remission needs none. The baseline itself has none of these."""
    if timepoint == rules.baseline_timepoint:
        return Change(None, None, None, None)
    change = None if baseline_total is None else total - baseline_total
    if instrument_code != rules.primary_instrument:
        return Change(baseline_total, change, None, None)
    response = None
    if baseline_total is not None and baseline_total > 0:
        response = (baseline_total - total) >= rules.response_reduction * baseline_total
    remission = None if rules.remission_max_total is None else total <= rules.remission_max_total
    return Change(baseline_total, change, response, remission)


# --- who records --------------------------------------------------------------------------

SELF_REPORT_RECORDERS = frozenset({"coordinator", "therapist", "investigator", "rater"})


def recorder_refusal(
    instrument: Instrument,
    role: str,
    *,
    assigned: bool,
    attended_a_session: bool,
) -> str | None:
    """Why this user may not record an assessment by ``instrument``, or None (SPEC §10).

    A clinician-rated instrument is recorded by a rater assigned to the participant who has
    never been present at any of the participant's sessions: the blind of the primary outcome.
    A self-report (the participant's own answers) is entered by the participant's coordinator,
    therapist, investigator or rater. ``assigned`` says whether the user belongs to the
    participant in their role (their site's coordinator or investigator, an assigned therapist
    or rater)."""
    if instrument.kind == InstrumentKind.CLINICIAN:
        if role != "rater":
            return (
                f"{instrument.title} is clinician-rated: only a blinded rater assigned to the "
                f"participant records it, not a {role}."
            )
        if not assigned:
            return f"{instrument.title}: you are not a rater assigned to this participant."
        if attended_a_session:
            return (
                f"{instrument.title}: you were present at one of this participant's sessions, so "
                "you are not blind to their treatment; another rater must record it."
            )
        return None
    if role not in SELF_REPORT_RECORDERS or not assigned:
        return f"{instrument.title} is entered by the participant's own study team."
    return None


# --- timepoints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorDays:
    """The days a participant's timepoints are counted from. ``dosing_days[n - 1]`` is the day
    of cycle n's dosing session (its start, or its scheduled day before it starts);
    ``treatment_ended_on`` is the day of the last dosing once treatment is over (completed or
    discontinued), or the day it was discontinued when no dosing took place; ``withdrawn_on``
    the day the participant withdrew from the study (follow-up ends there)."""

    enrolled_on: date
    dosing_days: tuple[date, ...] = ()
    treatment_ended_on: date | None = None
    withdrawn_on: date | None = None


def anchor_days_of(
    enrolled_on: date,
    dosings: Sequence[tuple[int, date]],
    *,
    treatment_over: bool,
    dosing_cycles: int,
    left_treatment_on: date | None = None,
    withdrawn_on: date | None = None,
) -> AnchorDays:
    """The anchors from the participant's dosing sessions (cycle, day; the first per cycle
    counts) and whether treatment is over; ``left_treatment_on`` is the day treatment stopped,
    used when there was no dosing."""
    by_cycle: dict[int, date] = {}
    for cycle, day in dosings:
        by_cycle.setdefault(cycle, day)
    days = tuple(by_cycle[c] for c in sorted(by_cycle) if c <= dosing_cycles)
    ended_on = None
    if treatment_over:
        ended_on = days[-1] if days else left_treatment_on
    return AnchorDays(
        enrolled_on=enrolled_on,
        dosing_days=days,
        treatment_ended_on=ended_on,
        withdrawn_on=withdrawn_on,
    )


def treatment_over(state: str, cycle: int, dosing_cycles: int) -> bool:
    """Treatment is over in follow-up, once closed, or in the integration of the last cycle."""
    return State(state) in CLOSED_STATES | {State.FOLLOW_UP} or (
        state == State.INTEGRATION and cycle >= dosing_cycles
    )


def target_day(timepoint: Timepoint, anchors: AnchorDays) -> date | None:
    """The day a timepoint targets, or None while its anchor has not happened."""
    base: date | None
    if timepoint.anchor == Anchor.ENROLMENT:
        base = anchors.enrolled_on
    elif timepoint.anchor == Anchor.BEFORE_FIRST_DOSING:
        base = anchors.dosing_days[0] if anchors.dosing_days else None
    elif timepoint.anchor == Anchor.AFTER_DOSING:
        cycle = timepoint.cycle or 1
        base = anchors.dosing_days[cycle - 1] if len(anchors.dosing_days) >= cycle else None
    else:
        base = anchors.treatment_ended_on
    return None if base is None else base + timedelta(days=timepoint.offset_days)


def window_of(timepoint: Timepoint, anchors: AnchorDays) -> tuple[date, date] | None:
    """The first and last day an assessment of the timepoint counts as in its window."""
    day = target_day(timepoint, anchors)
    if day is None:
        return None
    return (
        day - timedelta(days=timepoint.window_before_days),
        day + timedelta(days=timepoint.window_after_days),
    )


def in_window(timepoint: Timepoint, anchors: AnchorDays, on: date) -> bool | None:
    """Whether an assessment made ``on`` falls in the window; None while it cannot be known.
    A baseline before the first dosing has been scheduled counts from enrolment on."""
    window = window_of(timepoint, anchors)
    if window is None:
        if timepoint.anchor == Anchor.BEFORE_FIRST_DOSING:
            return on >= anchors.enrolled_on
        return None
    return window[0] <= on <= window[1]


class TimepointStatus(StrEnum):
    NOT_YET = "not_yet"  # its anchor has not happened, or its window has not opened
    DUE = "due"  # the window is open
    OVERDUE = "overdue"  # the window has closed and nothing is recorded
    DONE = "done"
    MISSED = "missed"  # recorded as missed, with a reason
    NOT_APPLICABLE = "not_applicable"  # treatment ended before the cycle it follows


def timepoint_status(
    timepoint: Timepoint,
    anchors: AnchorDays,
    today: date,
    *,
    done: bool,
    missed: bool,
) -> TimepointStatus:
    if done:
        return TimepointStatus.DONE
    if missed:
        return TimepointStatus.MISSED
    if never_comes(timepoint, anchors):
        return TimepointStatus.NOT_APPLICABLE
    window = window_of(timepoint, anchors)
    if window is None:
        # The baseline is due from enrolment until the first dosing is known.
        if timepoint.anchor == Anchor.BEFORE_FIRST_DOSING:
            return TimepointStatus.DUE
        return TimepointStatus.NOT_YET
    if today < window[0]:
        return TimepointStatus.NOT_YET
    if today <= window[1]:
        return TimepointStatus.DUE
    return TimepointStatus.OVERDUE


def never_comes(timepoint: Timepoint, anchors: AnchorDays) -> bool:
    """A timepoint after a dosing cycle that treatment ended before (who stopped after cycle 1
    has no cycle 2 or 3 timepoint; they are followed up instead)."""
    return (
        timepoint.anchor == Anchor.AFTER_DOSING
        and anchors.treatment_ended_on is not None
        and len(anchors.dosing_days) < (timepoint.cycle or 1)
    )


def missing_instruments(
    timepoint: Timepoint, recorded: Collection[tuple[str, str]]
) -> tuple[str, ...]:
    """The instruments of ``timepoint`` without an assessment among ``recorded`` (timepoint,
    instrument) pairs: a timepoint is done when there are none."""
    return tuple(code for code in timepoint.instruments if (timepoint.code, code) not in recorded)


def window_closed(timepoint: Timepoint, anchors: AnchorDays, today: date) -> bool:
    window = window_of(timepoint, anchors)
    return window is not None and today > window[1]


class Retention(StrEnum):
    """Where a follow-up timepoint stands in the study's retention (SPEC §10, C17)."""

    DONE = "done"
    MISSED = "missed"  # recorded as missed, with a reason
    WITHDRAWN = "withdrawn"  # the participant withdrew before its window closed
    LOST = "lost"  # the window closed with nothing recorded: silently lost to follow-up
    NOT_DUE = "not_due"  # its window has not closed yet


def follow_up_retention(
    timepoint: Timepoint,
    anchors: AnchorDays,
    today: date,
    *,
    done: bool,
    missed: bool,
) -> Retention | None:
    """A follow-up timepoint's place in the retention figures; None for a timepoint that is
    not follow-up or a participant whose treatment has not ended (not yet followed up). Who
    entered treatment and left it, by completing, discontinuing or withdrawing, stays in the
    denominator: the figure shows who was followed, not only who stayed."""
    if not timepoint.follow_up or anchors.treatment_ended_on is None:
        return None
    status = timepoint_status(timepoint, anchors, today, done=done, missed=missed)
    if status is TimepointStatus.DONE:
        return Retention.DONE
    if status is TimepointStatus.MISSED:
        return Retention.MISSED
    window = window_of(timepoint, anchors)
    withdrew = anchors.withdrawn_on
    if withdrew is not None and (window is None or withdrew <= window[1]):
        return Retention.WITHDRAWN
    if status is TimepointStatus.OVERDUE:
        return Retention.LOST
    return Retention.NOT_DUE
