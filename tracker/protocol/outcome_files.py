"""Reading a protocol file's outcome measures (SPEC §10): ``[[instruments]]``,
``[[timepoints]]`` and ``[outcomes]``, every problem recorded at once."""

from dataclasses import dataclass
from typing import TypeVar

from tracker.protocol.outcomes import (
    Anchor,
    Band,
    Instrument,
    InstrumentItem,
    InstrumentKind,
    OutcomeRules,
    Scoring,
    Subscale,
    Timepoint,
)
from tracker.protocol.tables import Table


@dataclass(frozen=True)
class OutcomeMeasures:
    instruments: tuple[Instrument, ...]
    timepoints: tuple[Timepoint, ...]
    outcomes: OutcomeRules | None


E = TypeVar("E", InstrumentKind, Scoring, Anchor)


def _choice(table: Table, key: str, enum: type[E], default: E | None = None) -> E | None:
    if default is not None and not table.has(key):
        return default
    text = table.string(key)
    if text is None:
        return None
    try:
        return enum(text)
    except ValueError:
        known = ", ".join(str(member) for member in enum)
        table.problem(key, f"unknown value {text!r} (expected one of {known})")
        return None


def _read_item(table: Table) -> InstrumentItem | None:
    code = table.code("code")
    label = table.string("label")
    low = table.integer("min", minimum=0)
    high = table.integer("max", minimum=0)
    text = table.string("text") if table.has("text") else None
    table.finish()
    if low is not None and high is not None and low >= high:
        table.problem("max", f"must be above min ({low}), found {high}")
        return None
    if code is None or label is None or low is None or high is None:
        return None
    return InstrumentItem(code=code, label=label, minimum=low, maximum=high, text=text)


def _read_bands(table: Table, low: int, high: int) -> tuple[Band, ...] | None:
    bands: list[Band] = []
    for band_table in table.tables("bands") or []:
        minimum = band_table.integer("min", minimum=0)
        maximum = band_table.integer("max", minimum=0)
        label = band_table.string("label")
        band_table.finish()
        if minimum is None or maximum is None or label is None:
            return None
        bands.append(Band(minimum, maximum, label))
    bands.sort(key=lambda band: band.minimum)
    expected = low
    for band in bands:
        # Bands cover the instrument's range without a gap or an overlap.
        if band.minimum != expected or band.maximum < band.minimum:
            table.problem(
                "bands", f"band {band.label!r} must start at {expected} (found {band.minimum})"
            )
            return None
        expected = band.maximum + 1
    if bands and expected != high + 1:
        table.problem("bands", f"the last band must end at the maximum total {high}")
        return None
    return tuple(bands)


def _read_items(table: Table, licensed: bool | None) -> tuple[InstrumentItem, ...] | None:
    items: list[InstrumentItem] = []
    valid = True
    for item_table in table.tables("items") or []:
        item = _read_item(item_table)
        if item is None:
            valid = False
        elif any(known.code == item.code for known in items):
            item_table.problem("code", f"duplicate item code {item.code!r}")
            valid = False
        else:
            items.append(item)
    if valid and not items:
        table.problem("items", "must list at least one item")
        valid = False
    if licensed and any(item.text for item in items):
        # A licensed scale's wording is the licence holder's: a site loads it, the repository
        # never carries it.
        table.problem("items", "a licensed instrument ships codes and short labels, not text")
        valid = False
    return tuple(items) if valid else None


def _read_subscales(table: Table, codes: set[str]) -> tuple[Subscale, ...] | None:
    if not table.has("subscales"):
        return ()
    subscales: list[Subscale] = []
    valid = True
    for sub_table in table.tables("subscales") or []:
        sub_code = sub_table.code("code")
        sub_title = sub_table.string("title")
        members = sub_table.list_of("items")
        sub_table.finish()
        unknown = [m for m in members or [] if m not in codes]
        if unknown:
            sub_table.problem("items", f"unknown items {unknown}")
        if sub_code is None or sub_title is None or members is None or unknown:
            valid = False
            continue
        subscales.append(Subscale(sub_code, sub_title, tuple(str(m) for m in members)))
    return tuple(subscales) if valid else None


def _read_instrument(table: Table, declared: set[str]) -> Instrument | None:
    code = table.code("code")
    if code is not None:
        declared.add(code)  # a broken instrument is still known to the timepoints naming it
    title = table.string("title")
    kind = _choice(table, "kind", InstrumentKind)
    licensed = table.boolean("licensed")
    scoring = _choice(table, "scoring", Scoring, Scoring.SUM)
    items = _read_items(table, licensed)
    subscales = _read_subscales(table, {item.code for item in items or ()})
    header = (code, title, kind, licensed, scoring)
    if items is None or subscales is None or any(value is None for value in header):
        table.finish()
        return None
    assert code is not None and title is not None and kind is not None
    assert licensed is not None and scoring is not None
    instrument = Instrument(code, title, kind, licensed, scoring, items, subscales)
    bands: tuple[Band, ...] | None = ()
    if table.has("bands"):
        bands = _read_bands(table, instrument.minimum_total, instrument.maximum_total)
    table.finish()
    if bands is None:
        return None
    return Instrument(code, title, kind, licensed, scoring, items, subscales, bands)


def _optional_days(table: Table, key: str) -> int | None:
    return table.integer(key, minimum=0) if table.has(key) else 0


def _timepoint_instruments(
    table: Table, listed: list[object] | None, known: set[str]
) -> tuple[str, ...] | None:
    if listed is None:
        return None
    unknown = [i for i in listed if i not in known]
    if unknown:
        table.problem("instruments", f"unknown instruments {unknown}")
    if not listed:
        table.problem("instruments", "must list at least one instrument")
    return tuple(str(i) for i in listed) if listed and not unknown else None


def _timepoint_cycle(
    table: Table, anchor: Anchor | None, cycle: int | None, dosing_cycles: int | None
) -> tuple[bool, int | None]:
    """(whether the cycle is consistent with the anchor, the cycle)."""
    if anchor == Anchor.AFTER_DOSING and cycle is None:
        table.problem("cycle", "an after_dosing timepoint names its cycle")
        return False, None
    if anchor is not None and anchor != Anchor.AFTER_DOSING and cycle is not None:
        table.problem("cycle", "only an after_dosing timepoint has a cycle")
        return False, None
    if cycle is not None and dosing_cycles is not None and cycle > dosing_cycles:
        table.problem("cycle", f"the protocol has {dosing_cycles} dosing cycles")
        return False, None
    return True, cycle


def _read_timepoint(
    table: Table, instrument_codes: set[str], dosing_cycles: int | None
) -> Timepoint | None:
    code = table.code("code")
    title = table.string("title")
    listed = table.list_of("instruments")
    anchor = _choice(table, "anchor", Anchor)
    offset = table.integer("offset_days", minimum=0) if table.has("offset_days") else 0
    before = _optional_days(table, "window_before_days")
    after = _optional_days(table, "window_after_days")
    cycle = table.integer("cycle") if table.has("cycle") else None
    table.finish()
    instruments = _timepoint_instruments(table, listed, instrument_codes)
    cycle_ok, cycle = _timepoint_cycle(table, anchor, cycle, dosing_cycles)
    values = (code, title, instruments, anchor, offset, before, after)
    if not cycle_ok or any(value is None for value in values):
        return None
    assert code is not None and title is not None and instruments is not None
    assert anchor is not None and offset is not None and before is not None and after is not None
    return Timepoint(
        code=code,
        title=title,
        instruments=instruments,
        anchor=anchor,
        offset_days=offset,
        window_before_days=before,
        window_after_days=after,
        cycle=cycle,
    )


def _read_rules(
    table: Table, instruments: dict[str, Instrument], timepoints: dict[str, Timepoint]
) -> OutcomeRules | None:
    primary = table.code("primary_instrument")
    baseline = table.code("baseline_timepoint")
    endpoint = table.code("primary_timepoint")
    reduction = (
        table.number("response_reduction", 0.01, 1.0) if table.has("response_reduction") else 0.5
    )
    remission = (
        table.integer("remission_max_total", minimum=0)
        if table.has("remission_max_total")
        else None
    )
    table.finish()
    if primary is not None and primary not in instruments:
        table.problem("primary_instrument", f"unknown instrument {primary!r}")
        return None
    for key, code in (("baseline_timepoint", baseline), ("primary_timepoint", endpoint)):
        if code is None:
            continue
        if code not in timepoints:
            table.problem(key, f"unknown timepoint {code!r}")
            return None
        if primary is not None and primary not in timepoints[code].instruments:
            table.problem(key, f"timepoint {code!r} does not assess {primary!r}")
            return None
    if baseline is not None and timepoints[baseline].anchor != Anchor.BEFORE_FIRST_DOSING:
        table.problem("baseline_timepoint", "the baseline is anchored before_first_dosing")
        return None
    if primary is None or baseline is None or endpoint is None or reduction is None:
        return None
    return OutcomeRules(primary, baseline, endpoint, reduction, remission)


def read_outcome_measures(root: Table, dosing_cycles: int | None) -> OutcomeMeasures | None:
    """The outcome measures of a protocol file; an empty set when it has none, None (with the
    problems recorded) when they cannot be used."""
    if not root.has("instruments"):
        for key in ("timepoints", "outcomes"):
            if root.has(key):
                root.problem(key, "needs [[instruments]]")
        return OutcomeMeasures((), (), None)
    instruments: dict[str, Instrument] = {}
    declared: set[str] = set()
    valid = True
    for table in root.tables("instruments") or []:
        instrument = _read_instrument(table, declared)
        if instrument is None:
            valid = False
        elif instrument.code in instruments:
            table.problem("code", f"duplicate instrument code {instrument.code!r}")
            valid = False
        else:
            instruments[instrument.code] = instrument
    timepoints: dict[str, Timepoint] = {}
    for table in root.tables("timepoints") or []:
        timepoint = _read_timepoint(table, declared, dosing_cycles)
        if timepoint is None:
            valid = False
        elif timepoint.code in timepoints:
            table.problem("code", f"duplicate timepoint code {timepoint.code!r}")
            valid = False
        else:
            timepoints[timepoint.code] = timepoint
    rules_table = root.table("outcomes")
    rules = _read_rules(rules_table, instruments, timepoints) if rules_table else None
    if not valid or rules is None:
        return None
    return OutcomeMeasures(tuple(instruments.values()), tuple(timepoints.values()), rules)
