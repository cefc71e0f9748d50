"""Investigational-product accountability (SPEC §12): the ledger of a lot, its balance, what
an entry may do to it, the doses a dispensing covers, loss-report deadlines and the lot checks
C20 to C23.

A ledger is a sequence of lines in the order they were written. Each line moves the balance
by its effect; a correction reverses one earlier line (its effect is the opposite), so the
balance is always receipts - dispensings + returns - destructions - losses over the lines
that stand. Pure functions over plain values: the services, the pages and the compliance
report all call them, so the refusal and the report cannot disagree."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from tracker.protocol.compliance_records import (
    CheckResult,
    Evidence,
    Severity,
    judged,
    not_applicable,
)

INITIAL_NOTICE_BUSINESS_DAYS = 1
FORM_106_DAYS = 45
COUNT_EVERY_DAYS = 730  # a physical count at least every 24 months
DESTRUCTION_WITNESSES = 2


class EntryKind(StrEnum):
    RECEIPT = "receipt"
    DISPENSING = "dispensing"
    RETURN = "return"
    DESTRUCTION = "destruction"
    LOSS = "loss"
    COUNT = "count"
    CORRECTION = "correction"


# How each kind moves the balance, per unit.
_SIGN = {
    EntryKind.RECEIPT: 1,
    EntryKind.DISPENSING: -1,
    EntryKind.RETURN: 1,
    EntryKind.DESTRUCTION: -1,
    EntryKind.LOSS: -1,
    EntryKind.COUNT: 0,
}
TAKES_UNITS = (EntryKind.DISPENSING, EntryKind.DESTRUCTION, EntryKind.LOSS)
ENTRY_KINDS = tuple(k.value for k in EntryKind)


@dataclass(frozen=True)
class LedgerLine:
    """One entry of a lot's ledger, with what the checks need of it."""

    id: int
    kind: EntryKind
    units: int
    occurred_at: datetime
    reverses: int | None = None  # a correction: the line it reverses
    dispensing: int | None = None  # a return: the dispensing its units came back from
    counted_units: int | None = None  # a count
    expected_units: int | None = None  # a count: the book balance when it was made
    explained: bool = False  # a count that differed: its difference explained
    witnesses: int = 0  # a destruction: witnesses who signed
    initial_notice_at: datetime | None = None  # a loss
    form_106_at: datetime | None = None  # a loss


def reversed_ids(lines: Sequence[LedgerLine]) -> frozenset[int]:
    return frozenset(line.reverses for line in lines if line.reverses is not None)


def effect(line: LedgerLine, by_id: dict[int, LedgerLine]) -> int:
    """How far ``line`` moves the balance (a correction: the opposite of what it reverses)."""
    if line.kind is EntryKind.CORRECTION:
        assert line.reverses is not None
        return -effect(by_id[line.reverses], by_id)
    return _SIGN[line.kind] * line.units


def running_balances(lines: Sequence[LedgerLine]) -> list[tuple[LedgerLine, int]]:
    """Each line with the balance after it, in ledger order."""
    by_id = {line.id: line for line in lines}
    balance = 0
    out = []
    for line in lines:
        balance += effect(line, by_id)
        out.append((line, balance))
    return out


def balance(lines: Sequence[LedgerLine]) -> int:
    by_id = {line.id: line for line in lines}
    return sum(effect(line, by_id) for line in lines)


def standing(lines: Sequence[LedgerLine], kind: EntryKind) -> list[LedgerLine]:
    """The lines of ``kind`` that no correction reverses."""
    gone = reversed_ids(lines)
    return [line for line in lines if line.kind is kind and line.id not in gone]


def totals(lines: Sequence[LedgerLine]) -> dict[EntryKind, int]:
    """Units per kind over the standing lines: the terms of the balance."""
    return {
        kind: sum(line.units for line in standing(lines, kind))
        for kind in (
            EntryKind.RECEIPT,
            EntryKind.DISPENSING,
            EntryKind.RETURN,
            EntryKind.DESTRUCTION,
            EntryKind.LOSS,
        )
    }


# --- the site's registration ---------------------------------------------------------------


def dea_number_problems(number: str) -> list[str]:
    """A DEA registration number: two letters, six digits and a check digit (the sum of the
    first, third and fifth digits plus twice the sum of the second, fourth and sixth ends in
    the seventh)."""
    if not (
        len(number) == 9 and number.isascii() and number[:2].isalpha() and number[2:].isdigit()
    ):
        return [f"A DEA registration number is two letters and seven digits, not {number!r}."]
    digits = [int(c) for c in number[2:]]
    check = (digits[0] + digits[2] + digits[4] + 2 * (digits[1] + digits[3] + digits[5])) % 10
    if check != digits[6]:
        return [f"{number} is not a valid DEA registration number: its check digit is wrong."]
    return []


# --- what an entry may do -----------------------------------------------------------------


def units_problems(kind: EntryKind, units: int, lines: Sequence[LedgerLine]) -> list[str]:
    """Why an entry of ``units`` of ``kind`` cannot be written: none below one, none that
    takes the balance below zero (with the figures)."""
    if kind is EntryKind.COUNT or kind is EntryKind.CORRECTION:
        return []
    if units < 1:
        return [f"A {kind} is of at least 1 unit, not {units}."]
    if kind in TAKES_UNITS:
        have = balance(lines)
        if units > have:
            return [
                f"A {kind} of {units} units is refused: the lot's balance is {have} units; "
                f"it would fall to {have - units}."
            ]
    return []


def correction_problems(target: LedgerLine | None, lines: Sequence[LedgerLine]) -> list[str]:
    """A correction reverses one standing entry that is not itself a correction, once, and
    never takes the balance below zero."""
    if target is None:
        return ["The entry to correct is not in this lot's ledger."]
    if target.kind is EntryKind.CORRECTION:
        return ["A correction is not corrected: write the right entry again instead."]
    if target.id in reversed_ids(lines):
        return [f"Entry #{target.id} has already been corrected."]
    if target.kind is EntryKind.DISPENSING and any(
        line.dispensing == target.id for line in standing(lines, EntryKind.RETURN)
    ):
        return [f"Units of dispensing #{target.id} were returned: correct the returns first."]
    by_id = {line.id: line for line in lines}
    after = balance(lines) - effect(target, by_id)
    if after < 0:
        return [
            f"Reversing entry #{target.id} would take the balance to {after} units: the units "
            "it brought in have gone out since. Correct the later entries first."
        ]
    return []


def expiry_problems(kind: EntryKind, expires_on: date, occurred_at: datetime) -> list[str]:
    if kind is EntryKind.DISPENSING and occurred_at.date() > expires_on:
        return [f"The lot expired on {expires_on:%Y-%m-%d}: expired product is not dispensed."]
    return []


# --- doses and dispensings ----------------------------------------------------------------


def dispensing_number(entry_id: int) -> str:
    """What the blinded staff see of a dispensing: its number, never the lot or product."""
    return f"D-{entry_id:06d}"


@dataclass(frozen=True)
class DispensingUse:
    """What became of one dispensing: units out, doses given from it, units returned."""

    units: int
    strength_mg: float
    dosed_mg: int
    returned_units: int

    @property
    def used_units(self) -> int:
        return round(self.dosed_mg / self.strength_mg) if self.strength_mg else 0

    @property
    def unused_units(self) -> int:
        return self.units - self.returned_units - self.used_units

    @property
    def available_mg(self) -> float:
        return (self.units - self.returned_units) * self.strength_mg - self.dosed_mg


def dose_coverage_problems(amount_mg: int, use: DispensingUse, number: str) -> list[str]:
    """A dose is a whole number of the dispensing's units and no more than it has left."""
    problems = []
    if use.strength_mg <= 0:
        return [f"Dispensing {number} has no strength per unit to cover a dose."]
    units = amount_mg / use.strength_mg
    if abs(units - round(units)) > 1e-6:  # strengths are hundredths of a mg: no float modulo
        problems.append(
            f"{amount_mg} mg is not a whole number of the {use.strength_mg:g} mg units of "
            f"dispensing {number}."
        )
    if amount_mg > use.available_mg:
        problems.append(
            f"Dispensing {number} covers {use.available_mg:g} mg more; the dose is {amount_mg} mg."
        )
    return problems


def return_problems(units: int, use: DispensingUse | None, number: str) -> list[str]:
    if use is None:
        return ["A return names a dispensing of this lot."]
    if units > use.unused_units:
        return [
            f"Dispensing {number} has {use.unused_units} unused units "
            f"({use.units} dispensed, {use.used_units} given, {use.returned_units} returned); "
            f"{units} cannot come back."
        ]
    return []


# --- losses ---------------------------------------------------------------------------------


def add_business_days(moment: datetime, days: int) -> datetime:
    """``moment`` moved forward by ``days`` working days (Saturdays and Sundays skipped;
    public holidays are not known to the tracker, so the deadline shown is the earliest)."""
    out = moment
    left = days
    while left:
        out += timedelta(days=1)
        if out.weekday() < 5:
            left -= 1
    return out


def initial_notice_due(discovered_at: datetime) -> datetime:
    return add_business_days(discovered_at, INITIAL_NOTICE_BUSINESS_DAYS)


def form_106_due(discovered_at: datetime) -> datetime:
    return discovered_at + timedelta(days=FORM_106_DAYS)


@dataclass(frozen=True)
class LossDeadline:
    loss_id: int
    report: str  # "initial notice" or "DEA Form 106"
    due_at: datetime
    reported_at: datetime | None

    def overdue(self, now: datetime) -> bool:
        return (self.reported_at or now) > self.due_at

    def open(self) -> bool:
        return self.reported_at is None


def loss_deadlines(line: LedgerLine) -> tuple[LossDeadline, LossDeadline]:
    return (
        LossDeadline(
            line.id, "initial notice", initial_notice_due(line.occurred_at), line.initial_notice_at
        ),
        LossDeadline(line.id, "DEA Form 106", form_106_due(line.occurred_at), line.form_106_at),
    )


# --- counts ---------------------------------------------------------------------------------


def discrepancy(line: LedgerLine) -> int:
    """Counted minus book balance (0 when they agree)."""
    if line.kind is not EntryKind.COUNT or line.counted_units is None:
        return 0
    return line.counted_units - (line.expected_units or 0)


def open_discrepancies(lines: Sequence[LedgerLine]) -> list[LedgerLine]:
    return [
        line
        for line in standing(lines, EntryKind.COUNT)
        if discrepancy(line) and not line.explained
    ]


# --- the lot checks (SPEC §12) ----------------------------------------------------------------


@dataclass(frozen=True)
class LotRecord:
    """A lot as the checks see it."""

    label: str  # "S01 lot MDMA-2026-01" (the arm never)
    lines: tuple[LedgerLine, ...]
    masked: bool = False  # for a blinded reader: entries named by their date, not their number

    def name(self, what: str, line: LedgerLine) -> str:
        return f"{what} of {line.occurred_at:%Y-%m-%d}" if self.masked else f"{what} #{line.id}"


def c20_reconciled(lot: LotRecord, now: datetime) -> CheckResult:
    """The lot's last count agrees with its book balance, or its difference is explained."""
    counts = standing(lot.lines, EntryKind.COUNT)
    if not counts:
        return not_applicable("C20", f"{lot.label}: no physical count yet.")
    last = counts[-1]
    gap = discrepancy(last)
    if not gap:
        return judged("C20", [])
    if last.explained:
        return judged(
            "C20", [], f"The {lot.name('count', last)} differed by {gap:+d} units, explained."
        )
    return judged(
        "C20",
        [
            Evidence(
                f"{lot.label}, {lot.name('count', last)}",
                f"{last.expected_units} units, as the ledger holds, or the difference explained",
                f"{last.counted_units} counted ({gap:+d}), not explained",
            )
        ],
    )


def c21_destructions_witnessed(lot: LotRecord, now: datetime) -> CheckResult:
    destructions = standing(lot.lines, EntryKind.DESTRUCTION)
    if not destructions:
        return not_applicable("C21", f"{lot.label}: nothing destroyed.")
    return judged(
        "C21",
        [
            Evidence(
                f"{lot.label}, {lot.name('destruction', line)}",
                f"{DESTRUCTION_WITNESSES} witnesses who signed",
                f"{line.witnesses}",
            )
            for line in destructions
            if line.witnesses < DESTRUCTION_WITNESSES
        ],
    )


def c22_count_recent(lot: LotRecord, now: datetime) -> CheckResult:
    """A physical count within the last 24 months (a lot received more recently and not yet
    counted is not yet due)."""
    counts = standing(lot.lines, EntryKind.COUNT)
    receipts = standing(lot.lines, EntryKind.RECEIPT)
    since = counts[-1].occurred_at if counts else (receipts[0].occurred_at if receipts else None)
    if since is None:
        return not_applicable("C22", f"{lot.label}: nothing received.")
    due = since + timedelta(days=COUNT_EVERY_DAYS)
    if now <= due:
        if counts:
            return judged("C22", [])
        return not_applicable("C22", f"{lot.label}: first count due by {due:%Y-%m-%d}.")
    last = f"last count {counts[-1].occurred_at:%Y-%m-%d}" if counts else "never counted"
    return judged(
        "C22",
        [Evidence(lot.label, f"a physical count by {due:%Y-%m-%d}", last)],
    )


def c23_losses_reported(lot: LotRecord, now: datetime) -> CheckResult:
    losses = standing(lot.lines, EntryKind.LOSS)
    if not losses:
        return not_applicable("C23", f"{lot.label}: no loss.")
    evidence = []
    pending = []
    for line in losses:
        for deadline in loss_deadlines(line):
            where = f"{lot.label}, {lot.name('loss', line)}: {deadline.report}"
            if deadline.overdue(now):
                found = (
                    f"sent {deadline.reported_at:%Y-%m-%d %H:%M} UTC"
                    if deadline.reported_at
                    else "not sent"
                )
                evidence.append(Evidence(where, f"by {deadline.due_at:%Y-%m-%d %H:%M} UTC", found))
            elif deadline.open():
                pending.append(
                    f"{deadline.report} for the {lot.name('loss', line)} due "
                    f"{deadline.due_at:%Y-%m-%d}"
                )
    return judged("C23", evidence, ("Pending: " + "; ".join(pending)) if pending else "")


@dataclass(frozen=True)
class LotCheck:
    id: str
    description: str
    severity: Severity
    run: Callable[[LotRecord, datetime], CheckResult]


LOT_CHECKS = (
    LotCheck(
        "C20",
        "Every lot's balance reconciles with its last physical count",
        Severity.CRITICAL,
        c20_reconciled,
    ),
    LotCheck(
        "C21",
        "Every destruction witnessed by two people who each signed",
        Severity.CRITICAL,
        c21_destructions_witnessed,
    ),
    LotCheck(
        "C22",
        "A physical count of every lot within the last 24 months",
        Severity.MAJOR,
        c22_count_recent,
    ),
    LotCheck(
        "C23",
        "Every loss reported in time (initial notice, DEA Form 106)",
        Severity.CRITICAL,
        c23_losses_reported,
    ),
)


def run_lot_checks(lot: LotRecord, now: datetime) -> tuple[CheckResult, ...]:
    """Every lot check, in id order."""
    return tuple(check.run(lot, now) for check in LOT_CHECKS)
