"""Reading a protocol TOML file into a ``ProtocolDefinition``, reporting every problem at once."""

import tomllib
from pathlib import Path

from tracker.protocol.definition import (
    AlertThresholds,
    ChecklistCategory,
    ChecklistItem,
    DosingRules,
    ItemKind,
    ProtocolDefinition,
    Schedule,
    VitalSignRules,
)
from tracker.protocol.failures import NEVER_OVERRIDABLE, GuardCode
from tracker.protocol.outcome_files import read_outcome_measures
from tracker.protocol.randomisation_file import read_randomisation
from tracker.protocol.tables import Table, describe


class ProtocolFileError(ValueError):
    """A protocol file that cannot be used; ``problems`` names every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        heading = f"protocol file has {count} problem{'s' if count != 1 else ''}:"
        super().__init__("\n".join([heading, *(f"- {problem}" for problem in self.problems)]))


def _read_schedule(table: Table) -> Schedule | None:
    preparation = table.integer("preparation_sessions", minimum=0)
    cycles = table.integer("dosing_cycles")
    integration = table.integer("integration_sessions_per_cycle", minimum=0)
    first_within = table.integer("first_integration_within_hours")
    interval_min = table.integer("dosing_interval_min_days")
    interval_max = table.integer("dosing_interval_max_days")
    table.finish()
    if interval_min is not None and interval_max is not None and interval_min > interval_max:
        table.problem(
            None,
            f"dosing_interval_min_days ({interval_min}) is greater than "
            f"dosing_interval_max_days ({interval_max})",
        )
        return None
    if (
        preparation is None
        or cycles is None
        or integration is None
        or first_within is None
        or interval_min is None
        or interval_max is None
    ):
        return None
    return Schedule(
        preparation_sessions=preparation,
        dosing_cycles=cycles,
        integration_sessions_per_cycle=integration,
        first_integration_within_hours=first_within,
        dosing_interval_min_days=interval_min,
        dosing_interval_max_days=interval_max,
    )


def _read_initial_doses(table: Table) -> tuple[tuple[int, ...], bool] | None:
    """Return the readable doses and whether all were valid, so cross-checks still run."""
    values = table.list_of("initial_doses_mg")
    if values is None:
        return None
    if not values:
        table.problem("initial_doses_mg", "must list at least one dose")
        return None
    doses: list[int] = []
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            table.problem(
                f"initial_doses_mg[{index}]",
                f"expected a positive integer, found {describe(value)}",
            )
        elif value in doses:
            table.problem(f"initial_doses_mg[{index}]", f"duplicate dose {value}")
        else:
            doses.append(value)
    return tuple(doses), len(doses) == len(values)


def _read_dosing(table: Table) -> DosingRules | None:
    read_doses = _read_initial_doses(table)
    initial_doses, doses_valid = read_doses if read_doses is not None else ((), False)
    fraction = table.number("supplemental_fraction", minimum=0.0, maximum=1.0)
    window_min = table.integer("supplemental_window_min_minutes", minimum=0)
    window_max = table.integer("supplemental_window_max_minutes", minimum=0)
    max_per_session = table.integer("max_per_session_mg")
    monitoring = table.number("monitoring_min_hours", minimum=0.0)
    therapists = table.integer("therapists_present")
    overnight = table.boolean("overnight_stay_required")
    pregnancy_within = table.integer("pregnancy_test_within_hours")
    table.finish()
    consistent = True
    if window_min is not None and window_max is not None and window_min > window_max:
        table.problem(
            None,
            f"supplemental_window_min_minutes ({window_min}) is greater than "
            f"supplemental_window_max_minutes ({window_max})",
        )
        consistent = False
    if initial_doses and max_per_session is not None and max(initial_doses) > max_per_session:
        table.problem(
            None,
            f"the largest initial dose ({max(initial_doses)} mg) is above "
            f"max_per_session_mg ({max_per_session} mg)",
        )
        consistent = False
    if (
        not consistent
        or not doses_valid
        or fraction is None
        or window_min is None
        or window_max is None
        or max_per_session is None
        or monitoring is None
        or therapists is None
        or overnight is None
        or pregnancy_within is None
    ):
        return None
    return DosingRules(
        initial_doses_mg=initial_doses,
        supplemental_fraction=fraction,
        supplemental_window_min_minutes=window_min,
        supplemental_window_max_minutes=window_max,
        max_per_session_mg=max_per_session,
        monitoring_min_hours=monitoring,
        therapists_present=therapists,
        overnight_stay_required=overnight,
        pregnancy_test_within_hours=pregnancy_within,
    )


def _read_vital_signs(table: Table) -> VitalSignRules | None:
    baseline = table.integer("baseline_within_minutes")
    max_gap = table.integer("max_gap_minutes")
    thresholds_table = table.table("alert_thresholds")
    table.finish()
    thresholds: AlertThresholds | None = None
    if thresholds_table is not None:
        systolic = thresholds_table.integer("systolic_mmhg")
        diastolic = thresholds_table.integer("diastolic_mmhg")
        heart_rate = thresholds_table.integer("heart_rate_bpm")
        temperature = thresholds_table.number("temperature_c", minimum=30.0, maximum=45.0)
        thresholds_table.finish()
        if (
            systolic is not None
            and diastolic is not None
            and heart_rate is not None
            and temperature is not None
        ):
            thresholds = AlertThresholds(systolic, diastolic, heart_rate, temperature)
    if baseline is None or max_gap is None or thresholds is None:
        return None
    return VitalSignRules(
        baseline_within_minutes=baseline, max_gap_minutes=max_gap, alert_thresholds=thresholds
    )


def _read_overrides(table: Table) -> frozenset[str] | None:
    values = table.list_of("guards")
    table.finish()
    if values is None:
        return None
    known = {str(code) for code in GuardCode}
    guards: set[str] = set()
    valid = True
    for index, value in enumerate(values):
        key = f"guards[{index}]"
        if not isinstance(value, str):
            table.problem(key, f"expected a string, found {describe(value)}")
            valid = False
        elif value not in known:
            table.problem(key, f"unknown guard {value!r}")
            valid = False
        elif value in NEVER_OVERRIDABLE:
            table.problem(key, f"guard {value!r} is never overridable (SPEC §3)")
            valid = False
        elif value in guards:
            table.problem(key, f"duplicate guard {value!r}")
            valid = False
        else:
            guards.add(value)
    return frozenset(guards) if valid else None


def _read_categories(table: Table) -> tuple[ChecklistCategory, ...] | None:
    tables = table.tables("categories")
    if tables is None:
        return None
    if not tables:
        table.problem("categories", "must list at least one category")
        return None
    categories: list[ChecklistCategory] = []
    seen: dict[str, str] = {}
    valid = True
    for category_table in tables:
        code = category_table.code("code")
        title = category_table.string("title")
        category_table.finish()
        if code is not None and code in seen:
            category_table.problem("code", f"duplicate category code {code!r} (also {seen[code]})")
            valid = False
            continue
        if code is not None:
            seen[code] = category_table.where()
        if code is None or title is None:
            valid = False
            continue
        categories.append(ChecklistCategory(code=code, title=title))
    return tuple(categories) if valid else None


def _read_items(table: Table, category_codes: set[str] | None) -> tuple[ChecklistItem, ...] | None:
    tables = table.tables("items")
    if tables is None:
        return None
    if not tables:
        table.problem("items", "must list at least one item")
        return None
    kinds = ", ".join(str(kind) for kind in ItemKind)
    items: list[ChecklistItem] = []
    seen: dict[str, str] = {}
    valid = True
    for item_table in tables:
        code = item_table.code("code")
        category = item_table.string("category")
        question = item_table.string("question")
        kind_text = item_table.string("kind")
        item_table.finish()
        kind: ItemKind | None = None
        if kind_text is not None:
            if kind_text in {str(known) for known in ItemKind}:
                kind = ItemKind(kind_text)
            else:
                item_table.problem("kind", f"unknown kind {kind_text!r} (expected one of {kinds})")
        # Without a readable category list there is nothing to check the reference against.
        if category is not None and category_codes is not None and category not in category_codes:
            item_table.problem("category", f"unknown category {category!r}")
            category = None
        if code is not None and code in seen:
            item_table.problem("code", f"duplicate item code {code!r} (also {seen[code]})")
            code = None
        elif code is not None:
            seen[code] = item_table.where()
        if code is None or category is None or question is None or kind is None:
            valid = False
            continue
        items.append(ChecklistItem(code=code, category=category, question=question, kind=kind))
    return tuple(items) if valid else None


def load_protocol(text: str) -> ProtocolDefinition:
    """Parse and validate a protocol TOML document.

    Raises ``ProtocolFileError`` listing every problem found: invalid TOML, missing or unknown
    keys, wrong types, out-of-range or inconsistent values (a minimum above its maximum),
    unknown item kinds or categories, duplicate codes, guards that may not be overridden, and
    categories without items.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProtocolFileError([f"not valid TOML: {error}"]) from error
    problems: list[str] = []
    root = Table(data, "", problems)

    header = root.table("protocol")
    code = version = title = None
    if header is not None:
        code = header.string("code")
        version = header.string("version")
        title = header.string("title")
        header.finish()

    schedule_table = root.table("schedule")
    schedule = _read_schedule(schedule_table) if schedule_table is not None else None
    dosing_table = root.table("dosing")
    dosing = _read_dosing(dosing_table) if dosing_table is not None else None
    vitals_table = root.table("vital_signs")
    vital_signs = _read_vital_signs(vitals_table) if vitals_table is not None else None
    overrides_table = root.table("overrides")
    overridable = _read_overrides(overrides_table) if overrides_table is not None else None

    categories: tuple[ChecklistCategory, ...] | None = None
    items: tuple[ChecklistItem, ...] | None = None
    checklist_table = root.table("checklist")
    if checklist_table is not None:
        categories = _read_categories(checklist_table)
        category_codes = {category.code for category in categories} if categories else None
        items = _read_items(checklist_table, category_codes)
        checklist_table.finish()
        if categories is not None and items is not None:
            used = {item.category for item in items}
            for category in categories:
                if category.code not in used:
                    checklist_table.problem(
                        "categories", f"category {category.code!r} has no items"
                    )
    measures = read_outcome_measures(root, schedule.dosing_cycles if schedule else None)
    randomisation = read_randomisation(root, measures.outcomes if measures else None)
    root.finish()

    if problems:
        raise ProtocolFileError(problems)
    # Every reader above records a problem whenever it returns None, so these hold here.
    assert code is not None and version is not None and title is not None
    assert schedule is not None and dosing is not None and vital_signs is not None
    assert overridable is not None and categories is not None and items is not None
    assert measures is not None
    return ProtocolDefinition(
        code=code,
        version=version,
        title=title,
        schedule=schedule,
        dosing=dosing,
        vital_signs=vital_signs,
        overridable_guards=overridable,
        categories=categories,
        checklist=items,
        instruments=measures.instruments if measures else (),
        timepoints=measures.timepoints if measures else (),
        outcomes=measures.outcomes if measures else None,
        randomisation=randomisation,
    )


def load_protocol_file(path: str | Path) -> ProtocolDefinition:
    """Read and validate the protocol TOML file at ``path`` (see ``load_protocol``)."""
    return load_protocol(Path(path).read_text(encoding="utf-8"))
