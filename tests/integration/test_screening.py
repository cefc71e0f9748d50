"""Enrolment, the checklist and its outcomes, assessments, the signature and consent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.factories import PASSWORD, actor, all_no, make_participant, make_user
from tracker.audit.models import AuditEvent
from tracker.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation
from tracker.participants import queries
from tracker.participants.models import TherapistAssignment
from tracker.participants.services import (
    assess_review_item,
    checklist_state,
    record_checklist_answers,
    record_consent,
    set_therapists,
    sign_checklist,
)


@pytest.fixture
def team(db_session: Session):  # type: ignore[no-untyped-def]
    coordinator = make_user(db_session, "coordinator", "S01")
    investigator = make_user(db_session, "investigator", "S01")
    therapist = make_user(db_session, "therapist", "S01")
    return coordinator, investigator, therapist


def test_study_ids_count_per_site(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _, _ = team
    other = make_user(db_session, "coordinator", "S02")
    first = make_participant(db_session, coordinator)
    second = make_participant(db_session, coordinator)
    elsewhere = make_participant(db_session, other)
    assert (first.study_id, second.study_id, elsewhere.study_id) == (
        "S01-0001",
        "S01-0002",
        "S02-0001",
    )
    assert first.state == "screening" and first.version == 1 and first.cycle == 0
    assert first.protocol_version.code == "mdma-at" and first.protocol_version.version == "1"
    event = db_session.scalar(
        sa.select(AuditEvent).where(
            AuditEvent.action == "participant.enrol", AuditEvent.entity_id == "S01-0001"
        )
    )
    assert event is not None and event.new_values["site"] == "S01"
    assert "name" not in event.new_values


def test_enrolment_reports_every_problem(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _, _ = team
    with pytest.raises(InvalidInput) as error:
        make_participant(db_session, coordinator, sex="x", year_of_birth=datetime.now(UTC).year)
    assert len(error.value.details) == 2


def test_therapists_of_another_site_or_role_are_refused(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, investigator, therapist = team
    foreign = make_user(db_session, "therapist", "S02")
    with pytest.raises(InvalidInput) as error:
        make_participant(
            db_session, coordinator, therapists=[foreign.username, investigator.username]
        )
    assert len(error.value.details) == 2
    participant = make_participant(db_session, coordinator, therapists=[therapist.username])
    assert [u.username for u in queries.assigned_therapists(db_session, participant.id)] == [
        therapist.username
    ]


def test_unassigning_keeps_the_history(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _, therapist = team
    participant = make_participant(db_session, coordinator, therapists=[therapist.username])
    set_therapists(db_session, actor(coordinator), participant, [])
    rows = list(
        db_session.scalars(
            sa.select(TherapistAssignment).where(
                TherapistAssignment.participant_id == participant.id
            )
        )
    )
    assert len(rows) == 1 and rows[0].ended_at is not None
    with pytest.raises(NotFound):
        queries.get_participant(db_session, therapist, participant.id)


def test_visibility_by_site_and_assignment(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _, therapist = team
    participant = make_participant(db_session, coordinator)
    with pytest.raises(NotFound):
        queries.get_participant(
            db_session, make_user(db_session, "coordinator", "S02"), participant.id
        )
    with pytest.raises(NotFound):
        queries.get_participant(db_session, therapist, participant.id)
    set_therapists(db_session, actor(coordinator), participant, [therapist.username])
    assert queries.get_participant(db_session, therapist, participant.id).id == participant.id
    assert (
        queries.get_participant(db_session, make_user(db_session, "auditor"), participant.id).id
        == participant.id
    )


def _outcome(session: Session, participant) -> tuple[str, tuple[str, ...]]:  # type: ignore[no-untyped-def]
    state = checklist_state(session, participant)
    return state.evaluation.outcome.value, state.evaluation.reasons


def test_all_no_is_eligible_and_a_missing_answer_is_incomplete(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _, _ = team
    participant = make_participant(db_session, coordinator)
    answers = all_no()
    del answers["low_body_weight"]
    record_checklist_answers(db_session, actor(coordinator), participant, answers)
    outcome, reasons = _outcome(db_session, participant)
    assert outcome == "incomplete"
    assert len(reasons) == 1 and reasons[0].startswith("Unanswered:") and "48 kg" in reasons[0]
    record_checklist_answers(
        db_session, actor(coordinator), participant, {"low_body_weight": ("no", None)}
    )
    assert _outcome(db_session, participant) == ("eligible", ())


@pytest.mark.parametrize(
    "item,category_word",
    [
        ("bipolar_i", "Bipolar I"),
        ("psychotic_disorder", "chizophrenia"),
        ("substance_use_disorder", "substance use disorder"),
        ("uncontrolled_hypertension", "ncontrolled hypertension"),
        ("qtc_prolongation", "QTc"),
        ("pregnancy_or_breastfeeding", "regnan"),
    ],
)
def test_an_exclusion_answered_yes_makes_the_participant_ineligible(
    db_session: Session,
    team,
    item: str,
    category_word: str,  # type: ignore[no-untyped-def]
) -> None:
    coordinator, _, _ = team
    participant = make_participant(db_session, coordinator)
    record_checklist_answers(
        db_session, actor(coordinator), participant, all_no(**{item: "reported at screening"})
    )
    outcome, reasons = _outcome(db_session, participant)
    assert outcome == "ineligible"
    assert len(reasons) == 1 and reasons[0].startswith("Exclusion:") and category_word in reasons[0]


@pytest.mark.parametrize(
    "item", ["bipolar_ii", "psychotic_relative", "substance_remission", "controlled_hypertension"]
)
def test_a_review_item_needs_an_investigators_assessment(
    db_session: Session, team, item: str
) -> None:  # type: ignore[no-untyped-def]
    coordinator, investigator, _ = team
    participant = make_participant(db_session, coordinator)
    record_checklist_answers(
        db_session, actor(coordinator), participant, all_no(**{item: "history"})
    )
    outcome, reasons = _outcome(db_session, participant)
    assert outcome == "incomplete" and reasons[0].startswith(
        "Review item needs an investigator's assessment"
    )
    with pytest.raises(PermissionDenied):
        assess_review_item(db_session, actor(coordinator), participant, item, True, "fine")
    assess_review_item(
        db_session, actor(investigator), participant, item, True, "stable for 5 years"
    )
    assert _outcome(db_session, participant) == ("eligible", ())
    assess_review_item(db_session, actor(investigator), participant, item, False, "too recent")
    outcome, reasons = _outcome(db_session, participant)
    assert outcome == "ineligible" and "too recent" in reasons[0]


def test_every_reason_is_listed(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _, _ = team
    participant = make_participant(db_session, coordinator)
    answers = all_no(bipolar_i="", arrhythmia="", hepatic_impairment="")
    del answers["suicidal_ideation"]
    record_checklist_answers(db_session, actor(coordinator), participant, answers)
    outcome, reasons = _outcome(db_session, participant)
    assert outcome == "ineligible"
    # Ineligibility first, then what is missing, each in checklist order.
    assert [r.split(":")[0] for r in reasons] == [
        "Exclusion",
        "Exclusion",
        "Unanswered",
        "Review item needs an investigator's assessment",
    ]


def test_bad_answers_are_refused_whole(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _, _ = team
    participant = make_participant(db_session, coordinator)
    with pytest.raises(InvalidInput) as error:
        record_checklist_answers(
            db_session,
            actor(coordinator),
            participant,
            {
                "bipolar_i": ("maybe", None),
                "not_an_item": ("no", None),
                "arrhythmia": ("", None),
                "hepatic_impairment": ("no", "x" * 2001),
                "coronary_disease": ("no", None),
            },
        )
    assert len(error.value.details) == 4
    assert checklist_state(db_session, participant).answers == {}


def test_signature_records_meaning_name_time_and_hash(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, investigator, _ = team
    participant = make_participant(db_session, coordinator)
    record_checklist_answers(db_session, actor(coordinator), participant, all_no())
    with pytest.raises(RuleViolation, match="password is not correct"):
        sign_checklist(
            db_session, investigator, actor(investigator), participant, "wrong", "I confirm"
        )
    with pytest.raises(PermissionDenied):
        sign_checklist(
            db_session, coordinator, actor(coordinator), participant, PASSWORD, "I confirm"
        )
    signature = sign_checklist(
        db_session, investigator, actor(investigator), participant, PASSWORD, "I confirm"
    )
    state = checklist_state(db_session, participant)
    assert state.signature_valid and state.signature.id == signature.id
    assert signature.printed_name == investigator.printed_name and signature.meaning == "I confirm"
    assert signature.content_hash == state.content_hash and len(signature.content_hash) == 64
    assert abs(signature.signed_at - datetime.now(UTC)) < timedelta(minutes=1)
    with pytest.raises(RuleViolation, match="already signed"):
        sign_checklist(
            db_session, investigator, actor(investigator), participant, PASSWORD, "again"
        )


def test_a_changed_answer_voids_the_signature_visibly(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, investigator, _ = team
    participant = make_participant(db_session, coordinator)
    record_checklist_answers(db_session, actor(coordinator), participant, all_no())
    sign_checklist(
        db_session, investigator, actor(investigator), participant, PASSWORD, "I confirm"
    )
    record_checklist_answers(
        db_session, actor(coordinator), participant, {"arrhythmia": ("no", "ECG normal")}
    )
    state = checklist_state(db_session, participant)
    assert state.signature is None and not state.signature_valid
    assert len(state.voided_signatures) == 1
    assert state.voided_signatures[0].void_reason == "a checklist answer changed after signing"
    actions = list(
        db_session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.entity_id == participant.study_id)
        )
    )
    assert "checklist.signature_void" in actions


def test_unchanged_answers_keep_the_signature(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, investigator, _ = team
    participant = make_participant(db_session, coordinator)
    record_checklist_answers(db_session, actor(coordinator), participant, all_no())
    sign_checklist(
        db_session, investigator, actor(investigator), participant, PASSWORD, "I confirm"
    )
    record_checklist_answers(
        db_session, actor(coordinator), participant, {"arrhythmia": ("no", None)}
    )
    assert checklist_state(db_session, participant).signature_valid


def test_an_incomplete_checklist_cannot_be_signed(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, investigator, _ = team
    participant = make_participant(db_session, coordinator)
    with pytest.raises(RuleViolation) as error:
        sign_checklist(
            db_session, investigator, actor(investigator), participant, PASSWORD, "I confirm"
        )
    assert len(error.value.details) == 21


def test_consent_is_checked(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _, _ = team
    participant = make_participant(db_session, coordinator)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    with pytest.raises(InvalidInput) as error:
        record_consent(db_session, actor(coordinator), participant, "", tomorrow)
    assert len(error.value.details) == 2
    consent = record_consent(
        db_session, actor(coordinator), participant, "ICF v2", datetime.now(UTC).date()
    )
    assert consent.obtained_by_id == coordinator.id
