"""Enrolment, therapist assignment, the contraindication checklist, its signature, consent.

Every function changes rows, appends the audit events and flushes; the caller commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.auth.models import User
from tracker.auth.services import check_password
from tracker.db import utcnow
from tracker.errors import InvalidInput, PermissionDenied, RuleViolation
from tracker.participants import queries
from tracker.participants.models import (
    SEX_VALUES,
    ChecklistAnswer,
    ChecklistSignature,
    Consent,
    Participant,
    ReviewAssessment,
    TherapistAssignment,
)
from tracker.protocol import ChecklistAnswer as CoreAnswer
from tracker.protocol import (
    ChecklistEvaluation,
    ChecklistOutcome,
    ItemKind,
    ProtocolDefinition,
    Role,
    State,
    checklist_content_for_signature,
    childbearing_problems,
    evaluate_checklist,
    unknown_item_codes,
)
from tracker.protocol import ReviewAssessment as CoreAssessment
from tracker.sites.models import Site
from tracker.study.services import current_protocol_version, definition_of

MAX_NOTE = 2000
MIN_YEAR_OF_BIRTH = 1900


def _require_role(actor: Actor, *roles: Role) -> None:
    if actor.role not in {r.value for r in roles}:
        raise PermissionDenied(f"The {actor.role} role may not do this.")


# --- enrolment and therapists -------------------------------------------------------------


def _next_site_number(db: Session, site: Site) -> int:
    """Atomic per-site counter: concurrent enrolments never get the same number."""
    number = db.execute(
        sa.update(Site)
        .where(Site.id == site.id)
        .values(last_participant_number=Site.last_participant_number + 1)
        .returning(Site.last_participant_number)
    ).scalar_one()
    return int(number)


def _therapists_by_username(db: Session, site: Site, usernames: Sequence[str]) -> list[User]:
    names = sorted({u.strip().lower() for u in usernames if u and u.strip()})
    if not names:
        return []
    found = {u.username: u for u in db.scalars(sa.select(User).where(User.username.in_(names)))}
    problems = []
    for name in names:
        user = found.get(name)
        if user is None or user.site_id != site.id:
            problems.append(f"No therapist {name!r} at site {site.code}.")
        elif user.role != Role.THERAPIST.value:
            problems.append(f"{name} is a {user.role}, not a therapist.")
        elif not user.is_active:
            problems.append(f"{name} is disabled.")
    if problems:
        raise InvalidInput(" ".join(problems), problems)
    return [found[n] for n in names]


def _require_own_site(db: Session, actor: Actor, site: Site) -> None:
    """Site staff enrol at their own site only (the study-wide roles do not enrol)."""
    user = db.get(User, actor.user_id) if actor.user_id is not None else None
    if user is not None and user.site_id is not None and user.site_id != site.id:
        own = user.site.code if user.site else "your site"
        raise PermissionDenied(f"You may enrol participants only at your site ({own}).")


def enrol_participant(
    db: Session,
    actor: Actor,
    *,
    site: Site,
    sex: str,
    year_of_birth: int,
    therapists: Sequence[str] = (),
    childbearing_potential: bool | None = None,
    today: date | None = None,
) -> Participant:
    """Enrol a participant under the current protocol with a pseudonymous study id (S01-0001),
    at the enrolling user's own site. Childbearing potential may be recorded now or later;
    until it is recorded as no, a participant who is not male needs pregnancy tests."""
    _require_role(actor, Role.COORDINATOR, Role.INVESTIGATOR)
    _require_own_site(db, actor, site)
    this_year = (today or utcnow().date()).year
    problems = []
    if sex not in SEX_VALUES:
        problems.append(f"The sex is one of {', '.join(SEX_VALUES)}.")
    if not (MIN_YEAR_OF_BIRTH <= year_of_birth <= this_year - 18):
        problems.append(
            f"The year of birth is between {MIN_YEAR_OF_BIRTH} and {this_year - 18} (adults only)."
        )
    problems += childbearing_problems(sex, childbearing_potential)
    if problems:
        raise InvalidInput("The participant cannot be enrolled: " + " ".join(problems), problems)
    assigned = _therapists_by_username(db, site, therapists)
    protocol = current_protocol_version(db)
    number = _next_site_number(db, site)
    participant = Participant(
        study_id=f"{site.code}-{number:04d}",
        site=site,
        site_number=number,
        protocol_version=protocol,
        sex=sex,
        year_of_birth=year_of_birth,
        childbearing_potential=childbearing_potential,
        state=State.SCREENING,
        cycle=0,
        version=1,
    )
    db.add(participant)
    db.flush()
    record_event(
        db,
        actor,
        "participant.enrol",
        "participant",
        participant.study_id,
        new={
            "site": site.code,
            "sex": sex,
            "year_of_birth": year_of_birth,
            "childbearing_potential": childbearing_potential,
            "protocol": f"{protocol.code} v{protocol.version}",
            "state": participant.state,
        },
    )
    for therapist in assigned:
        _assign(db, actor, participant, therapist)
    return participant


def record_childbearing_potential(
    db: Session, actor: Actor, participant: Participant, value: bool, reason: str
) -> Participant:
    """Record (or correct, with a reason) whether the participant is of childbearing
    potential; audited with the old and the new value."""
    _require_role(actor, Role.COORDINATOR, Role.INVESTIGATOR)
    old = participant.childbearing_potential
    if old == value:
        return participant
    problems = childbearing_problems(participant.sex, value)
    reason = (reason or "").strip()
    if old is not None and not reason:
        problems.append("A reason is required to change a recorded childbearing potential.")
    if len(reason) > 2000:
        problems.append("The reason is longer than 2000 characters.")
    if problems:
        raise InvalidInput(
            "Childbearing potential was not recorded: " + " ".join(problems), problems
        )
    participant.childbearing_potential = value
    participant.updated_at = utcnow()
    db.flush()
    record_event(
        db,
        actor,
        "participant.childbearing_potential",
        "participant",
        participant.study_id,
        old={"childbearing_potential": old},
        new={"childbearing_potential": value},
        reason=reason or None,
    )
    return participant


def _assign(db: Session, actor: Actor, participant: Participant, therapist: User) -> None:
    db.add(
        TherapistAssignment(
            participant_id=participant.id, user_id=therapist.id, assigned_by_id=actor.user_id
        )
    )
    db.flush()
    record_event(
        db,
        actor,
        "participant.therapist_assign",
        "participant",
        participant.study_id,
        new={"therapist": therapist.username},
    )


def set_therapists(
    db: Session, actor: Actor, participant: Participant, usernames: Sequence[str]
) -> list[User]:
    """Make the assigned therapists exactly ``usernames``; ended assignments stay on record."""
    _require_role(actor, Role.COORDINATOR, Role.INVESTIGATOR)
    wanted = {u.id: u for u in _therapists_by_username(db, participant.site, usernames)}
    active = list(
        db.scalars(
            sa.select(TherapistAssignment).where(
                TherapistAssignment.participant_id == participant.id,
                TherapistAssignment.ended_at.is_(None),
            )
        )
    )
    current_ids = {a.user_id for a in active}
    for assignment in active:
        if assignment.user_id not in wanted:
            assignment.ended_at = utcnow()
            db.flush()
            record_event(
                db,
                actor,
                "participant.therapist_unassign",
                "participant",
                participant.study_id,
                old={"therapist": assignment.user.username},
            )
    for user_id, user in wanted.items():
        if user_id not in current_ids:
            _assign(db, actor, participant, user)
    return sorted(wanted.values(), key=lambda u: u.username)


def ensure_therapist_assigned(
    db: Session, actor: Actor, participant: Participant, therapist: User
) -> None:
    """Naming a therapist on a session assigns them too (SPEC §1)."""
    exists = db.scalar(
        sa.select(TherapistAssignment.id).where(
            TherapistAssignment.participant_id == participant.id,
            TherapistAssignment.user_id == therapist.id,
            TherapistAssignment.ended_at.is_(None),
        )
    )
    if exists is None:
        _therapists_by_username(db, participant.site, [therapist.username])
        _assign(db, actor, participant, therapist)


# --- the checklist --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChecklistState:
    """The checklist as the page and the API show it."""

    definition: ProtocolDefinition
    answers: dict[str, ChecklistAnswer]
    assessments: dict[str, ReviewAssessment]
    evaluation: ChecklistEvaluation
    content_hash: str
    signature: ChecklistSignature | None
    signature_valid: bool
    voided_signatures: list[ChecklistSignature]


def _core_inputs(
    answers: Mapping[str, ChecklistAnswer], assessments: Mapping[str, ReviewAssessment]
) -> tuple[dict[str, CoreAnswer], dict[str, CoreAssessment]]:
    return (
        {c: CoreAnswer(c, a.answer, a.note or "") for c, a in answers.items()},
        {c: CoreAssessment(c, a.acceptable, a.rationale) for c, a in assessments.items()},
    )


def checklist_state(db: Session, participant: Participant) -> ChecklistState:
    definition = definition_of(participant.protocol_version)
    answers = {a.item_code: a for a in queries.answers_of(db, participant.id)}
    assessments = {a.item_code: a for a in queries.current_assessments(db, participant.id)}
    core_answers, core_assessments = _core_inputs(answers, assessments)
    evaluation = evaluate_checklist(definition.checklist, core_answers, core_assessments)
    content = checklist_content_for_signature(definition.checklist, core_answers, core_assessments)
    content_hash = hashlib.sha256(content.encode("utf-8")).hexdigest()
    signatures = queries.signatures_of(db, participant.id)
    live = next((s for s in signatures if s.voided_at is None), None)
    return ChecklistState(
        definition=definition,
        answers=answers,
        assessments=assessments,
        evaluation=evaluation,
        content_hash=content_hash,
        signature=live,
        signature_valid=live is not None and live.content_hash == content_hash,
        voided_signatures=[s for s in signatures if s.voided_at is not None],
    )


def _require_screening(participant: Participant, what: str) -> None:
    if participant.state != State.SCREENING:
        raise RuleViolation(
            f"The checklist can only be {what} during screening; {participant.study_id} is in "
            f"{participant.state.replace('_', ' ')}.",
            [f"{participant.study_id} is not in screening."],
        )


def _void_signature(db: Session, actor: Actor, participant: Participant, reason: str) -> None:
    live = db.scalar(
        sa.select(ChecklistSignature).where(
            ChecklistSignature.participant_id == participant.id,
            ChecklistSignature.voided_at.is_(None),
        )
    )
    if live is not None:
        live.voided_at = utcnow()
        live.void_reason = reason
        db.flush()
        record_event(
            db,
            actor,
            "checklist.signature_void",
            "participant",
            participant.study_id,
            old={"signature_id": live.id, "signed_by": live.printed_name},
            reason=reason,
        )


def record_checklist_answers(
    db: Session,
    actor: Actor,
    participant: Participant,
    answers: Mapping[str, tuple[str | bool | None, str | None]],
) -> ChecklistState:
    """Record yes/no answers (with optional notes) for any set of items.

    Every problem is reported at once (unknown item, blank or invalid answer, note too long)
    and nothing is written then. A changed answer voids the investigator's signature, visibly,
    and voids the assessment of that item.
    """
    _require_role(actor, Role.COORDINATOR, Role.INVESTIGATOR)
    _require_screening(participant, "changed")
    definition = definition_of(participant.protocol_version)
    problems = [
        f"Unknown checklist item {code!r}."
        for code in unknown_item_codes(definition.checklist, answers)
    ]
    parsed: dict[str, tuple[bool, str | None]] = {}
    for code, (raw, note) in answers.items():
        if code not in {i.code for i in definition.checklist}:
            continue
        value = {"yes": True, "no": False, True: True, False: False}.get(raw)
        if value is None:
            problems.append(f"{code}: the answer must be yes or no (never blank).")
            continue
        note = (note or "").strip() or None
        if note and len(note) > MAX_NOTE:
            problems.append(f"{code}: the note is longer than {MAX_NOTE} characters.")
            continue
        parsed[code] = (value, note)
    if problems:
        raise InvalidInput("The checklist answers were not saved: " + " ".join(problems), problems)
    if not parsed:
        raise InvalidInput("No answers were given.")

    existing = {a.item_code: a for a in queries.answers_of(db, participant.id)}
    Values = dict[str, str | bool | None]
    changed_answers: list[tuple[str, Values | None, Values]] = []
    for code, (value, note) in parsed.items():
        row = existing.get(code)
        if row is None:
            db.add(
                ChecklistAnswer(
                    participant_id=participant.id,
                    item_code=code,
                    answer=value,
                    note=note,
                    answered_by_id=actor.user_id,
                )
            )
            changed_answers.append((code, None, {"answer": value, "note": note}))
        elif (row.answer, row.note) != (value, note):
            old = {"answer": row.answer, "note": row.note}
            if row.answer != value:
                _void_assessment(db, participant, code, "the answer changed")
            row.answer, row.note, row.answered_at, row.answered_by_id = (
                value,
                note,
                utcnow(),
                actor.user_id,
            )
            changed_answers.append((code, old, {"answer": value, "note": note}))
    db.flush()
    for code, old_values, new in changed_answers:
        record_event(
            db,
            actor,
            "checklist.answer",
            "participant",
            participant.study_id,
            old={"item": code, **old_values} if old_values else None,
            new={"item": code, **new},
        )
    if changed_answers:
        state = checklist_state(db, participant)
        if state.signature is not None and not state.signature_valid:
            _void_signature(db, actor, participant, "a checklist answer changed after signing")
    return checklist_state(db, participant)


def _void_assessment(db: Session, participant: Participant, code: str, reason: str) -> None:
    db.execute(
        sa.update(ReviewAssessment)
        .where(
            ReviewAssessment.participant_id == participant.id,
            ReviewAssessment.item_code == code,
            ReviewAssessment.voided_at.is_(None),
        )
        .values(voided_at=utcnow(), void_reason=reason)
    )


def assess_review_item(
    db: Session,
    actor: Actor,
    participant: Participant,
    item_code: str,
    acceptable: bool,
    rationale: str,
) -> ChecklistState:
    """An investigator's assessment of a review item answered yes, with a rationale."""
    _require_role(actor, Role.INVESTIGATOR)
    _require_screening(participant, "assessed")
    definition = definition_of(participant.protocol_version)
    item = next((i for i in definition.checklist if i.code == item_code), None)
    rationale = (rationale or "").strip()
    problems = []
    if item is None:
        problems.append(f"Unknown checklist item {item_code!r}.")
    elif item.kind is not ItemKind.REVIEW:
        problems.append(f"{item_code} is an exclusion item; only review items are assessed.")
    if not rationale:
        problems.append("A rationale is required.")
    elif len(rationale) > MAX_NOTE:
        problems.append(f"The rationale is longer than {MAX_NOTE} characters.")
    if problems:
        raise InvalidInput(" ".join(problems), problems)
    answer = db.scalar(
        sa.select(ChecklistAnswer).where(
            ChecklistAnswer.participant_id == participant.id, ChecklistAnswer.item_code == item_code
        )
    )
    if answer is None or not answer.answer:
        raise RuleViolation(
            f"{item_code} is not answered yes, so there is nothing to assess.",
            [f"{item_code} is not answered yes."],
        )
    previous = db.scalar(
        sa.select(ReviewAssessment).where(
            ReviewAssessment.participant_id == participant.id,
            ReviewAssessment.item_code == item_code,
            ReviewAssessment.voided_at.is_(None),
        )
    )
    if previous is not None:
        previous.voided_at, previous.void_reason = utcnow(), "re-assessed"
    db.add(
        ReviewAssessment(
            participant_id=participant.id,
            item_code=item_code,
            acceptable=acceptable,
            rationale=rationale,
            assessed_by_id=actor.user_id,
        )
    )
    db.flush()
    record_event(
        db,
        actor,
        "checklist.assess",
        "participant",
        participant.study_id,
        old={"item": item_code, "acceptable": previous.acceptable, "rationale": previous.rationale}
        if previous
        else None,
        new={"item": item_code, "acceptable": acceptable, "rationale": rationale},
    )
    state = checklist_state(db, participant)
    if state.signature is not None and not state.signature_valid:
        _void_signature(db, actor, participant, "an assessment changed after signing")
        state = checklist_state(db, participant)
    return state


def sign_checklist(
    db: Session,
    signer: User,
    actor: Actor,
    participant: Participant,
    password: str,
    meaning: str,
) -> ChecklistSignature:
    """The investigator's electronic signature: the password again, the meaning, the printed
    name, UTC time and the SHA-256 of the checklist content as signed."""
    _require_role(actor, Role.INVESTIGATOR)
    # The password first, and the same answer for every wrong one, whatever else is wrong.
    check_password(db, signer, actor, password, "signed")
    if signer.password_temporary:
        raise RuleViolation(
            "Your password was set by an administrator: choose your own on the password page "
            "before you sign.",
            ["The signer's password is temporary."],
        )
    _require_screening(participant, "signed")
    meaning = (meaning or "").strip()
    if not meaning:
        raise InvalidInput(
            "The meaning of the signature is required (for example: "
            "'I confirm the eligibility assessment')."
        )
    state = checklist_state(db, participant)
    if state.evaluation.outcome == ChecklistOutcome.INCOMPLETE:
        raise RuleViolation(
            "An incomplete checklist cannot be signed.", list(state.evaluation.reasons)
        )
    if state.signature is not None:
        if state.signature_valid:
            raise RuleViolation(
                "The checklist is already signed.", ["The checklist is already signed."]
            )
        _void_signature(db, actor, participant, "superseded by a new signature")
    signature = ChecklistSignature(
        participant_id=participant.id,
        signer_id=signer.id,
        printed_name=signer.printed_name,
        meaning=meaning[:300],
        outcome=state.evaluation.outcome.value,
        content_hash=state.content_hash,
    )
    db.add(signature)
    db.flush()
    record_event(
        db,
        actor,
        "checklist.sign",
        "participant",
        participant.study_id,
        new={
            "printed_name": signature.printed_name,
            "meaning": signature.meaning,
            "outcome": signature.outcome,
            "content_hash": signature.content_hash,
            "signed_at": signature.signed_at,
        },
    )
    return signature


# --- consent --------------------------------------------------------------------------------


def record_consent(
    db: Session,
    actor: Actor,
    participant: Participant,
    document_version: str,
    signed_on: date,
    today: date | None = None,
) -> Consent:
    """Informed consent: document version, the date it was signed, and who obtained it."""
    _require_role(actor, Role.COORDINATOR, Role.INVESTIGATOR)
    document_version = (document_version or "").strip()
    today = today or utcnow().date()
    problems = []
    if not document_version or len(document_version) > 60:
        problems.append("The consent document version is required (at most 60 characters).")
    if signed_on > today:
        problems.append("The consent date cannot be in the future.")
    if signed_on < participant.enrolled_at.date().replace(year=participant.enrolled_at.year - 1):
        problems.append("The consent date is more than a year before enrolment.")
    if problems:
        raise InvalidInput(" ".join(problems), problems)
    if participant.state in {
        State.COMPLETED,
        State.SCREEN_FAILED,
        State.WITHDRAWN,
    }:
        raise RuleViolation(
            f"{participant.study_id} is closed ({participant.state}).",
            [f"{participant.study_id} is closed."],
        )
    consent = Consent(
        participant_id=participant.id,
        document_version=document_version,
        signed_on=signed_on,
        obtained_by_id=actor.user_id,
    )
    db.add(consent)
    db.flush()
    record_event(
        db,
        actor,
        "consent.record",
        "participant",
        participant.study_id,
        new={"document_version": document_version, "signed_on": signed_on},
    )
    return consent
