"""The drug ledger's core (SPEC §12): over random ledgers the balance is always receipts -
dispensings + returns - destructions - losses of the entries that stand, and never below zero;
each planted fault fails its check (C19 to C23)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.protocol.accountability import (
    DispensingUse,
    EntryKind,
    LedgerLine,
    LotRecord,
    add_business_days,
    balance,
    correction_problems,
    dose_coverage_problems,
    initial_notice_due,
    return_problems,
    run_lot_checks,
    running_balances,
    standing,
    units_problems,
)
from tracker.protocol.compliance import c19_doses_dispensed
from tracker.protocol.compliance_records import (
    DoseRecord,
    Outcome,
    ParticipantRecord,
    SessionRecord,
    StudyFacts,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
NOW = T0 + timedelta(days=100)

# An attempted entry: (kind, units, which earlier entry a return or correction refers to).
attempts = st.lists(
    st.tuples(
        st.sampled_from(
            [
                EntryKind.RECEIPT,
                EntryKind.DISPENSING,
                EntryKind.RETURN,
                EntryKind.DESTRUCTION,
                EntryKind.LOSS,
                EntryKind.COUNT,
                EntryKind.CORRECTION,
            ]
        ),
        st.integers(min_value=-3, max_value=40),
        st.integers(min_value=0, max_value=60),
    ),
    max_size=60,
)


def _write(attempted: list[tuple[EntryKind, int, int]]) -> tuple[list[LedgerLine], int]:
    """Apply each attempt the way the service does: only what the core allows is written.
    Returns the ledger and how many attempts were refused."""
    lines: list[LedgerLine] = []
    refused = 0
    returned: dict[int, int] = {}
    for index, (kind, units, pick) in enumerate(attempted):
        moment = T0 + timedelta(hours=index)
        line = LedgerLine(index + 1, kind, units, moment)
        problems = units_problems(kind, units, lines)
        if kind is EntryKind.RETURN:
            dispensings = standing(lines, EntryKind.DISPENSING)
            target = dispensings[pick % len(dispensings)] if dispensings else None
            use = DispensingUse(target.units, 20, 0, returned.get(target.id, 0)) if target else None
            problems += return_problems(units, use, "D")
            line = LedgerLine(index + 1, kind, units, moment, dispensing=target and target.id)
        elif kind is EntryKind.CORRECTION:
            target = lines[pick % len(lines)] if lines else None
            problems += correction_problems(target, lines)
            if target is not None:
                line = LedgerLine(index + 1, kind, target.units, moment, reverses=target.id)
        elif kind is EntryKind.COUNT:
            line = LedgerLine(
                index + 1,
                kind,
                max(units, 0),
                moment,
                counted_units=max(units, 0),
                expected_units=balance(lines),
            )
        if problems:
            refused += 1
            continue
        if kind is EntryKind.RETURN and line.dispensing is not None:
            returned[line.dispensing] = returned.get(line.dispensing, 0) + units
        lines.append(line)
    return lines, refused


@settings(max_examples=400, deadline=None)
@given(attempts)
def test_the_balance_is_the_sum_of_its_terms_and_never_negative(attempted) -> None:  # type: ignore[no-untyped-def]
    lines, _ = _write(attempted)
    gone = {line.reverses for line in lines if line.reverses}
    terms = {
        kind: sum(line.units for line in lines if line.kind is kind and line.id not in gone)
        for kind in EntryKind
    }
    expected = (
        terms[EntryKind.RECEIPT]
        - terms[EntryKind.DISPENSING]
        + terms[EntryKind.RETURN]
        - terms[EntryKind.DESTRUCTION]
        - terms[EntryKind.LOSS]
    )
    # Corrections of corrections are refused, so the formula over standing entries holds.
    assert balance(lines) == expected
    assert all(after >= 0 for _, after in running_balances(lines))


def test_a_dispensing_beyond_the_balance_is_refused_with_the_figures() -> None:
    lines = [LedgerLine(1, EntryKind.RECEIPT, 5, T0)]
    (problem,) = units_problems(EntryKind.DISPENSING, 6, lines)
    assert "balance is 5 units" in problem and "fall to -1" in problem
    assert units_problems(EntryKind.DISPENSING, 5, lines) == []


def test_a_correction_cannot_take_back_units_already_gone() -> None:
    lines = [LedgerLine(1, EntryKind.RECEIPT, 5, T0), LedgerLine(2, EntryKind.DISPENSING, 4, T0)]
    assert correction_problems(lines[0], lines)  # the receipt's units went out since
    assert correction_problems(lines[1], lines) == []  # undoing the dispensing is fine
    corrected = [*lines, LedgerLine(3, EntryKind.CORRECTION, 4, T0, reverses=2)]
    assert "already been corrected" in correction_problems(lines[1], corrected)[0]
    assert correction_problems(corrected[2], corrected)  # a correction is not corrected
    assert balance(corrected) == 5


def test_a_dose_is_whole_units_of_what_is_left_of_its_dispensing() -> None:
    use = DispensingUse(units=9, strength_mg=20, dosed_mg=120, returned_units=0)
    assert dose_coverage_problems(60, use, "D-1") == []
    assert "not a whole number" in dose_coverage_problems(50, use, "D-1")[0]
    assert "covers 60 mg more" in dose_coverage_problems(80, use, "D-1")[0]
    assert use.unused_units == 3
    assert "3 unused units" in return_problems(4, use, "D-1")[0]


def test_the_initial_notice_skips_the_weekend() -> None:
    friday = datetime(2026, 1, 9, 16, 0, tzinfo=UTC)
    assert add_business_days(friday, 1) == datetime(2026, 1, 12, 16, 0, tzinfo=UTC)
    assert initial_notice_due(T0) == T0 + timedelta(days=1)


def _lot(*lines: LedgerLine) -> LotRecord:
    return LotRecord("S01 lot L1", lines)


def _outcomes(lot: LotRecord, now: datetime = NOW) -> dict[str, Outcome]:
    return {r.check_id: r.outcome for r in run_lot_checks(lot, now)}


RECEIPT = LedgerLine(1, EntryKind.RECEIPT, 100, T0)


def test_a_clean_lot_passes_every_check() -> None:
    lot = _lot(
        RECEIPT,
        LedgerLine(2, EntryKind.DESTRUCTION, 2, T0 + timedelta(days=1), witnesses=2),
        LedgerLine(
            3,
            EntryKind.LOSS,
            1,
            T0 + timedelta(days=2),
            initial_notice_at=T0 + timedelta(days=2, hours=20),
            form_106_at=T0 + timedelta(days=20),
        ),
        LedgerLine(
            4, EntryKind.COUNT, 97, T0 + timedelta(days=3), counted_units=97, expected_units=97
        ),
    )
    assert set(_outcomes(lot).values()) == {Outcome.PASS}


def test_each_planted_fault_fails_its_check() -> None:
    unexplained = _lot(
        RECEIPT, LedgerLine(2, EntryKind.COUNT, 98, T0, counted_units=98, expected_units=100)
    )
    assert _outcomes(unexplained)["C20"] is Outcome.FAIL
    explained = _lot(
        RECEIPT,
        LedgerLine(
            2, EntryKind.COUNT, 98, T0, counted_units=98, expected_units=100, explained=True
        ),
    )
    assert _outcomes(explained)["C20"] is Outcome.PASS

    one_witness = _lot(RECEIPT, LedgerLine(2, EntryKind.DESTRUCTION, 2, T0, witnesses=1))
    assert _outcomes(one_witness)["C21"] is Outcome.FAIL

    counted = LedgerLine(2, EntryKind.COUNT, 100, T0, counted_units=100, expected_units=100)
    assert _outcomes(_lot(RECEIPT, counted), T0 + timedelta(days=700))["C22"] is Outcome.PASS
    assert _outcomes(_lot(RECEIPT, counted), T0 + timedelta(days=740))["C22"] is Outcome.FAIL
    never = _outcomes(_lot(RECEIPT), T0 + timedelta(days=740))
    assert never["C22"] is Outcome.FAIL

    loss = LedgerLine(2, EntryKind.LOSS, 1, T0)
    assert _outcomes(_lot(RECEIPT, loss), T0 + timedelta(hours=20))["C23"] is Outcome.PASS
    assert _outcomes(_lot(RECEIPT, loss), T0 + timedelta(days=2))["C23"] is Outcome.FAIL
    late = LedgerLine(
        2,
        EntryKind.LOSS,
        1,
        T0,
        initial_notice_at=T0 + timedelta(days=3),
        form_106_at=T0 + timedelta(days=10),
    )
    assert _outcomes(_lot(RECEIPT, late))["C23"] is Outcome.FAIL
    # A loss reversed by a correction (it was found) is not judged.
    found = _lot(RECEIPT, loss, LedgerLine(3, EntryKind.CORRECTION, 1, T0, reverses=2))
    assert _outcomes(found, T0 + timedelta(days=60))["C23"] is Outcome.NOT_APPLICABLE


def test_c19_fails_a_dose_without_a_dispensing() -> None:
    def record(dispensing: str | None) -> ParticipantRecord:
        dose = DoseRecord(7, "initial", 120, T0, dispensing=dispensing)
        session = SessionRecord(
            3, "dosing", 1, "completed", T0, T0 + timedelta(hours=8), doses=(dose,)
        )
        return ParticipantRecord(
            "S01-0001", "integration", None, None, None, None, None, sessions=(session,)
        )

    facts = StudyFacts(True, None, NOW)
    assert c19_doses_dispensed(record("D-000001"), None, facts).outcome is Outcome.PASS  # type: ignore[arg-type]
    failed = c19_doses_dispensed(record(None), None, facts)  # type: ignore[arg-type]
    assert failed.outcome is Outcome.FAIL
    assert "dose #7" in failed.evidence[0].record


def test_a_dea_number_has_its_check_digit() -> None:
    from tracker.protocol.accountability import dea_number_problems

    assert dea_number_problems("RD1234563") == []
    assert "check digit" in dea_number_problems("RD1234567")[0]
    assert "two letters" in dea_number_problems("12")[0]


def test_a_strength_in_hundredths_covers_whole_units_exactly() -> None:
    use = DispensingUse(units=10, strength_mg=12.1, dosed_mg=0, returned_units=0)
    assert dose_coverage_problems(121, use, "D-1") == []  # 121 % 12.1 is not 0 in floats
    assert "not a whole number" in dose_coverage_problems(120, use, "D-1")[0]


def test_a_masked_lot_names_its_entries_by_date() -> None:
    count = LedgerLine(72, EntryKind.COUNT, 98, T0, counted_units=98, expected_units=100)
    masked = LotRecord("S01 lot (blinded) #2", (RECEIPT, count), masked=True)
    (evidence,) = run_lot_checks(masked, NOW)[0].evidence
    assert "#72" not in evidence.record and "count of 2026-01-05" in evidence.record
    plain = LotRecord("S01 lot L1", (RECEIPT, count))
    assert "count #72" in run_lot_checks(plain, NOW)[0].evidence[0].record
