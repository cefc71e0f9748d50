"""The drug ledger through the services (SPEC §12), on SQLite and PostgreSQL: a lot needs the
site's registration; the balance never goes below zero; a dose at a registered site names a
dispensing of its session and stays within it; unused units go back before the session is
completed; a destruction is signed by two witnesses; a correction reverses one entry; the
ledger's tables refuse UPDATE and DELETE; a blinded reader and the audit trail never learn
which product an arm-bound lot holds."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tests.factories import PASSWORD, actor, make_user
from tracker import clock
from tracker.audit.models import AuditEvent
from tracker.auth.services import PasswordRefused
from tracker.dosing import services as dosing_services
from tracker.errors import InvalidInput, PermissionDenied, RuleViolation
from tracker.participants.models import Participant
from tracker.pharmacy import presenters, services
from tracker.pharmacy.models import LedgerEntry
from tracker.protocol.compliance import run_checks
from tracker.protocol.compliance_records import Outcome, StudyFacts
from tracker.reports.records import load_records
from tracker.sessions import services as session_services
from tracker.study.services import definition_of

EXPIRES = date(2030, 1, 1)


@pytest.fixture
def pharmacist(db_session: Session):  # type: ignore[no-untyped-def]
    return make_user(db_session, "pharmacist", "S01", username="pharm1")


@pytest.fixture
def lot(db_session: Session, pharmacist, team):  # type: ignore[no-untyped-def]
    """A registered site with an open-label lot of 20 mg capsules and 30 units received."""
    services.register_site(
        db_session,
        actor(pharmacist),
        "S01",
        number="RS1234563",
        registrant="S01 pharmacy",
        expires_on=EXPIRES,
    )
    row = services.create_lot(
        db_session,
        actor(pharmacist),
        pharmacist,
        site="S01",
        product="MDMA 20 mg capsules",
        lot="L-1",
        strength_mg=20,
        expires_on=EXPIRES,
    )
    services.record_entry(
        db_session,
        actor(pharmacist),
        pharmacist,
        row,
        kind="receipt",
        units=30,
        occurred_at=clock.now(),
        dea_form_222="221000001",
        witness=team.coordinator.username,
    )
    return row


@pytest.fixture
def session_row(dosing):  # type: ignore[no-untyped-def]
    """A dosing session (cycle 1) that started two hours ago."""
    return dosing[1]


def _entry(db, pharmacist, lot, kind, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("occurred_at", clock.now())
    return services.record_entry(db, actor(pharmacist), pharmacist, lot, kind=kind, **kw)


def _dose(db, team, row, mg, kind="initial", minutes=30, **kw):  # type: ignore[no-untyped-def]
    return dosing_services.record_dose(
        db,
        team.as_therapist(),
        row,
        administered_at=row.started_at + timedelta(minutes=minutes),
        amount_mg=mg,
        kind=kind,
        **kw,
    )


def test_a_lot_needs_the_sites_registration_and_a_pharmacist(db_session, pharmacist, team) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match="no DEA registration"):
        services.create_lot(
            db_session,
            actor(pharmacist),
            pharmacist,
            site="S01",
            product="P",
            lot="1",
            strength_mg=20,
            expires_on=EXPIRES,
        )
    with pytest.raises(PermissionDenied):
        services.create_lot(
            db_session,
            team.as_coordinator,
            team.coordinator,
            site="S01",
            product="P",
            lot="1",
            strength_mg=20,
            expires_on=EXPIRES,
        )
    with pytest.raises(InvalidInput, match="two letters and seven digits"):
        services.register_site(
            db_session, actor(pharmacist), "S01", number="12", registrant="x", expires_on=EXPIRES
        )


def test_the_balance_never_goes_below_zero(db_session, pharmacist, lot, session_row) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuleViolation, match="balance is 30 units; it would fall to -1"):
        _entry(db_session, pharmacist, lot, "dispensing", units=31, session_id=session_row.id)
    with pytest.raises(RuleViolation, match="balance is 30 units"):
        _entry(db_session, pharmacist, lot, "loss", units=40, description="gone")
    _entry(db_session, pharmacist, lot, "dispensing", units=9, session_id=session_row.id)
    assert presenters.lot_view(db_session, pharmacist, lot).balance == 21
    with pytest.raises(InvalidInput, match="receipt names its witness"):
        _entry(db_session, pharmacist, lot, "receipt", units=5, dea_form_222="2")


def test_a_dose_names_a_dispensing_and_stays_within_it(
    db_session, team, pharmacist, lot, session_row
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuleViolation, match="pharmacist dispenses the product"):
        _dose(db_session, team, session_row, 120)
    dispensing = _entry(
        db_session, pharmacist, lot, "dispensing", units=8, session_id=session_row.id
    )
    dose = _dose(db_session, team, session_row, 120, minutes=5)
    assert dose.dispensing_id == dispensing.id  # the session's only dispensing
    with pytest.raises(RuleViolation, match="covers 40 mg more"):
        _dose(db_session, team, session_row, 60, "supplemental", minutes=105)
    # The unused 2 units go back before the session is completed.
    end = clock.now() - timedelta(minutes=5)
    with pytest.raises(InvalidInput, match="2 unused units"):
        session_services.update_session(
            db_session,
            team.as_therapist(),
            session_row,
            ended_at=end,
            status="completed",
            overnight_stay=True,
        )
    with pytest.raises(RuleViolation, match="2 unused units"):
        _entry(db_session, pharmacist, lot, "return", units=3, dispensing_id=dispensing.id)
    _entry(db_session, pharmacist, lot, "return", units=2, dispensing_id=dispensing.id)
    session_services.update_session(
        db_session,
        team.as_therapist(),
        session_row,
        ended_at=end,
        status="completed",
        overnight_stay=True,
    )
    assert presenters.lot_view(db_session, pharmacist, lot).balance == 30 - 8 + 2
    # C19 passes: the dose names its dispensing.
    participant = db_session.get(Participant, session_row.participant_id)
    (record,) = load_records(db_session, [participant])
    results = run_checks(
        record, definition_of(participant.protocol_version), StudyFacts(True, None, clock.now())
    )
    assert next(r for r in results if r.check_id == "C19").outcome is Outcome.PASS


def test_a_destruction_is_signed_by_two_witnesses(db_session, team, pharmacist, lot) -> None:  # type: ignore[no-untyped-def]
    two = [
        services.Witness(team.investigator.username, PASSWORD),
        services.Witness(team.coordinator.username, PASSWORD),
    ]
    with pytest.raises(InvalidInput, match="2 different people"):
        _entry(
            db_session,
            pharmacist,
            lot,
            "destruction",
            units=2,
            dea_form_41="F41",
            witnesses=two[:1],
        )
    with pytest.raises(PasswordRefused):
        _entry(
            db_session,
            pharmacist,
            lot,
            "destruction",
            units=2,
            dea_form_41="F41",
            witnesses=[two[0], services.Witness(team.coordinator.username, "wrong")],
        )
    entry = _entry(
        db_session, pharmacist, lot, "destruction", units=2, dea_form_41="F41", witnesses=two
    )
    view = presenters.lot_view(db_session, pharmacist, lot)
    (row,) = [e for e in view.entries if e.id == entry.id]
    assert [w.printed_name for w in row.witnesses] == [
        team.investigator.printed_name,
        team.coordinator.printed_name,
    ]


def test_a_correction_reverses_one_entry_with_a_reason(db_session, pharmacist, lot) -> None:  # type: ignore[no-untyped-def]
    wrong = _entry(db_session, pharmacist, lot, "loss", units=3, description="miscounted")
    with pytest.raises(InvalidInput, match="reason"):
        _entry(db_session, pharmacist, lot, "correction", reverses=wrong.id)
    _entry(db_session, pharmacist, lot, "correction", reverses=wrong.id, reason="Found in the safe")
    with pytest.raises(RuleViolation, match="already been corrected"):
        _entry(db_session, pharmacist, lot, "correction", reverses=wrong.id, reason="again")
    view = presenters.lot_view(db_session, pharmacist, lot)
    assert view.balance == 30 and view.open_reports == []


def test_a_count_that_differs_waits_for_its_explanation(db_session, team, pharmacist, lot) -> None:  # type: ignore[no-untyped-def]
    count = _entry(db_session, pharmacist, lot, "count", counted_units=29)
    assert count.expected_units == 30
    assert presenters.lot_view(db_session, pharmacist, lot).open_discrepancies == [count.id]
    services.explain_count(
        db_session,
        team.as_investigator,
        team.investigator,
        count,
        explanation="One capsule was dispensed on paper during the outage; see loss #",
    )
    assert presenters.lot_view(db_session, pharmacist, lot).open_discrepancies == []


def test_the_ledger_is_append_only(db_session, pharmacist, lot) -> None:  # type: ignore[no-untyped-def]
    entry = db_session.scalar(sa.select(LedgerEntry).where(LedgerEntry.lot_id == lot.id))
    db_session.commit()
    with pytest.raises(DBAPIError, match="append-only"):
        db_session.execute(
            sa.text("UPDATE ledger_entries SET units = 1 WHERE id = :id"), {"id": entry.id}
        )
    db_session.rollback()
    with pytest.raises(DBAPIError, match="append-only"):
        db_session.execute(sa.text("DELETE FROM ledger_entries WHERE id = :id"), {"id": entry.id})
    db_session.rollback()


def test_an_arm_bound_lot_is_blind_to_the_blinded_and_the_trail(
    db_session, team, pharmacist, lot
) -> None:  # type: ignore[no-untyped-def]
    from tracker.audit.services import Actor
    from tracker.paths import FIXTURES
    from tracker.study.services import activate_protocol

    activate_protocol(
        db_session,
        Actor.system(),
        (FIXTURES / "protocols" / "mdma-mdd-v2.toml").read_text(encoding="utf-8"),
    )
    placebo = services.create_lot(
        db_session,
        actor(pharmacist),
        pharmacist,
        site="S01",
        product="Placebo capsules matched",
        lot="PLC-9",
        strength_mg=20,
        expires_on=EXPIRES,
        arm="active_placebo",
    )
    blinded = presenters.lot_view(db_session, team.coordinator, placebo)
    assert blinded.masked and "Placebo" not in blinded.product and blinded.lot_number == "blinded"
    assert blinded.arm is None and "arm" not in blinded.to_dict()
    assert presenters.lot_view(db_session, pharmacist, placebo).arm == "active_placebo"
    trail = " ".join(
        str(e.new_values)
        for e in db_session.scalars(sa.select(AuditEvent).where(AuditEvent.entity_type == "lot"))
    )
    assert "PLC-9" not in trail and "Placebo" not in trail and "content_hash" in trail
    with pytest.raises(InvalidInput, match="not an arm"):
        services.create_lot(
            db_session,
            actor(pharmacist),
            pharmacist,
            site="S01",
            product="X",
            lot="X",
            strength_mg=20,
            expires_on=EXPIRES,
            arm="nonsense",
        )


def test_a_session_is_not_closed_with_product_out(
    db_session, team, pharmacist, lot, session_row
) -> None:  # type: ignore[no-untyped-def]
    dispensing = _entry(
        db_session, pharmacist, lot, "dispensing", units=6, session_id=session_row.id
    )
    with pytest.raises(
        InvalidInput,
        match="6 unused units: the pharmacist returns them before the session is cancelled",
    ):
        session_services.update_session(
            db_session, team.as_coordinator, session_row, status="cancelled"
        )
    _entry(db_session, pharmacist, lot, "return", units=6, dispensing_id=dispensing.id)
    session_services.update_session(
        db_session, team.as_coordinator, session_row, status="cancelled"
    )
    # A cancelled session takes no more product.
    with pytest.raises(RuleViolation, match="is cancelled"):
        _entry(db_session, pharmacist, lot, "dispensing", units=1, session_id=session_row.id)


def test_an_entry_number_tells_a_blinded_reader_nothing(
    db_session, team, pharmacist, lot, session_row
) -> None:  # type: ignore[no-untyped-def]
    """Asking for a dispensing as if it were a count answers as missing (it would name its
    lot); a correction on an arm-bound lot shows no number to the blinded."""
    from tracker.audit.services import Actor
    from tracker.errors import NotFound
    from tracker.paths import FIXTURES
    from tracker.protocol.accountability import EntryKind
    from tracker.study.services import activate_protocol

    dispensing = _entry(
        db_session, pharmacist, lot, "dispensing", units=6, session_id=session_row.id
    )
    with pytest.raises(NotFound):
        services.get_entry(db_session, team.investigator, dispensing.id, EntryKind.COUNT)
    activate_protocol(
        db_session,
        Actor.system(),
        (FIXTURES / "protocols" / "mdma-mdd-v2.toml").read_text(encoding="utf-8"),
    )
    blind = services.create_lot(
        db_session,
        actor(pharmacist),
        pharmacist,
        site="S01",
        product="Kits",
        lot="K-1",
        strength_mg=20,
        expires_on=EXPIRES,
        arm="active_placebo",
    )
    _entry(
        db_session,
        pharmacist,
        blind,
        "receipt",
        units=10,
        dea_form_222="2",
        witness=team.coordinator.username,
    )
    wrong = _entry(db_session, pharmacist, blind, "loss", units=1, description="miscounted")
    _entry(db_session, pharmacist, blind, "correction", reverses=wrong.id, reason="Found")
    count = _entry(db_session, pharmacist, blind, "count", counted_units=9)
    view = presenters.lot_view(db_session, team.coordinator, blind)
    assert all(e.id is None and e.reverses is None for e in view.entries)
    assert view.open_discrepancies == [0]  # something to explain, but no number
    assert str(count.id) not in str(view.to_dict()["open_discrepancies"])


def test_a_finding_at_a_site_without_investigator_is_on_the_trail(db_session, team) -> None:  # type: ignore[no-untyped-def]
    from tracker.audit.models import AuditEvent
    from tracker.notifications import services as notifications

    notifications.queue(
        db_session,
        team.as_coordinator,
        site_id=team.site.id,
        kind="serious_adverse_event",
        key="adverse_event:999",
        subject="x",
        body="y",
    )
    team.investigator.is_active = False
    db_session.flush()
    notifications.queue(
        db_session,
        team.as_coordinator,
        site_id=team.site.id,
        kind="serious_adverse_event",
        key="adverse_event:1000",
        subject="x",
        body="y",
    )
    actions = list(
        db_session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.action.like("notification.%"))
        )
    )
    assert actions.count("notification.no_recipient") == 1
