"""The participant routes of the JSON API: the same services as the pages."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from tracker.api import bp
from tracker.api.openapi import api_route, parse_body, parse_query
from tracker.api.schemas import (
    AllowedTransitions,
    AssessmentIn,
    ChecklistAnswerOut,
    ChecklistIn,
    ChildbearingPotentialIn,
    ConsentIn,
    ConsentOut,
    EligibilityOut,
    EnrolIn,
    ParticipantList,
    ParticipantOut,
    ParticipantQuery,
    ParticipantSummary,
    ProtocolOut,
    RandomisationOut,
    SignatureIn,
    SignatureOut,
    TherapistsIn,
    TherapistsOut,
    TransitionApplied,
    TransitionHistory,
    TransitionIn,
    TransitionOptionOut,
    TransitionOut,
)
from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.extensions import password_check_limit
from tracker.participants import queries, services
from tracker.participants.models import Participant
from tracker.participants.transitions import apply_transition, options_for
from tracker.protocol import ItemKind, State, phase_of
from tracker.randomisation.presenters import protocol_definition_for
from tracker.randomisation.queries import allocation_of, visible_arm
from tracker.security import Permission, authenticated_user, requires
from tracker.sites.services import get_site_by_code
from tracker.study.services import current_protocol_version, definition_of


def _participant(participant_id: int) -> Participant:
    return queries.get_participant(get_db(), authenticated_user(), participant_id)


def _signature(sig) -> SignatureOut:  # type: ignore[no-untyped-def]
    return SignatureOut.model_validate(sig, from_attributes=True)


def participant_out(participant: Participant, *, with_checklist: bool = False) -> ParticipantOut:
    db = get_db()
    checklist = services.checklist_state(db, participant)
    consents = queries.consents_of(db, participant.id)
    latest_consent = consents[-1] if consents else None
    items = None
    if with_checklist:
        items = []
        for item in checklist.definition.checklist:
            answer = checklist.answers.get(item.code)
            assessment = checklist.assessments.get(item.code)
            items.append(
                ChecklistAnswerOut(
                    item=item.code,
                    category=item.category,
                    kind=str(item.kind),
                    question=item.question,
                    answer=None if answer is None else ("yes" if answer.answer else "no"),
                    note=answer.note if answer else None,
                    assessment=None
                    if assessment is None or item.kind is not ItemKind.REVIEW
                    else {
                        "acceptable": assessment.acceptable,
                        "rationale": assessment.rationale,
                        "assessed_by": assessment.assessed_by.printed_name,
                        "assessed_at": assessment.assessed_at.isoformat(),
                    },
                )
            )
    state = State(participant.state)
    held_from = State(participant.held_from) if participant.held_from else None
    protocol = participant.protocol_version
    randomisation = _randomisation(db, participant)
    return ParticipantOut(
        id=participant.id,
        study_id=participant.study_id,
        site=participant.site.code,
        state=participant.state,
        phase=phase_of(state, held_from).value,
        cycle=participant.cycle,
        version=participant.version,
        held_from=participant.held_from,
        withdrawal_category=participant.withdrawal_category,
        sex=participant.sex,
        year_of_birth=participant.year_of_birth,
        childbearing_potential=participant.childbearing_potential,
        pregnancy_tests_required=participant.pregnancy_tests_required,
        protocol_version=f"{protocol.code} v{protocol.version}",
        enrolled_at=participant.enrolled_at,
        therapists=[u.username for u in queries.assigned_therapists(db, participant.id)],
        eligibility=EligibilityOut(
            outcome=checklist.evaluation.outcome.value,
            reasons=list(checklist.evaluation.reasons),
            signed=checklist.signature_valid,
            signature=_signature(checklist.signature) if checklist.signature else None,
            voided_signatures=[_signature(s) for s in checklist.voided_signatures],
        ),
        consent=None
        if latest_consent is None
        else ConsentOut(
            document_version=latest_consent.document_version,
            signed_on=latest_consent.signed_on,
            obtained_by=latest_consent.obtained_by.username,
            recorded_at=latest_consent.recorded_at,
        ),
        checklist=items,
        randomisation=randomisation,
        arm=visible_arm(db, authenticated_user(), participant.id) if randomisation else None,
    )


def _randomisation(db: Session, participant: Participant) -> RandomisationOut | None:
    """The allocation every reader of the participant sees (never the arm); nothing is read
    for a protocol that does not randomise."""
    if definition_of(participant.protocol_version).randomisation is None:
        return None
    allocation = allocation_of(db, participant.id)
    if allocation is None:
        return None
    return RandomisationOut(
        randomisation_number=allocation.randomisation_number,
        stratum=allocation.stratum,
        randomised_at=allocation.randomised_at,
    )


def _summary(participant: Participant) -> ParticipantSummary:
    state = State(participant.state)
    held_from = State(participant.held_from) if participant.held_from else None
    return ParticipantSummary(
        id=participant.id,
        study_id=participant.study_id,
        site=participant.site.code,
        state=participant.state,
        phase=phase_of(state, held_from).value,
        cycle=participant.cycle,
        version=participant.version,
    )


@api_route(
    bp,
    "/protocol",
    "GET",
    summary="The protocol new participants are enrolled under",
    tag="protocol",
    response=ProtocolOut,
)
@requires(Permission.PROTOCOL_VIEW)
def protocol() -> ResponseReturnValue:
    row = current_protocol_version(get_db())
    return ProtocolOut(
        id=row.id,
        code=row.code,
        version=row.version,
        title=row.title,
        content_hash=row.content_hash,
        definition=protocol_definition_for(get_db(), authenticated_user(), row.definition),
    ).model_dump(mode="json")


@api_route(
    bp,
    "/participants",
    "GET",
    summary="Participants you can see, filtered and paged",
    tag="participants",
    query=ParticipantQuery,
    response=ParticipantList,
)
@requires(Permission.PARTICIPANTS_VIEW)
def participant_list() -> ResponseReturnValue:
    query = parse_query(ParticipantQuery)
    page = queries.participant_page(
        get_db(),
        authenticated_user(),
        queries.ParticipantFilter(state=query.state, site=query.site),
        query.page,
        query.per_page,
    )
    return ParticipantList(
        participants=[_summary(p) for p in page.items],
        page=page.page,
        per_page=page.per_page,
        total=page.total,
    ).model_dump(mode="json")


@api_route(
    bp,
    "/participants",
    "POST",
    summary="Enrol a participant (pseudonymous: no names)",
    tag="participants",
    body=EnrolIn,
    response=ParticipantOut,
    status=201,
)
@requires(Permission.PARTICIPANTS_ENROL)
def participant_enrol() -> ResponseReturnValue:
    body = parse_body(EnrolIn)
    site = get_site_by_code(get_db(), body.site)
    participant = services.enrol_participant(
        get_db(),
        current_actor(),
        site=site,
        sex=body.sex,
        year_of_birth=body.year_of_birth,
        therapists=body.therapists,
        childbearing_potential=body.childbearing_potential,
    )
    return participant_out(participant).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>",
    "GET",
    summary="One participant",
    tag="participants",
    response=ParticipantOut,
)
@requires(Permission.PARTICIPANTS_VIEW)
def participant_detail(participant_id: int) -> ResponseReturnValue:
    return participant_out(_participant(participant_id), with_checklist=True).model_dump(
        mode="json"
    )


@api_route(
    bp,
    "/participants/<int:participant_id>/therapists",
    "PUT",
    summary="Set the therapists assigned to a participant",
    tag="participants",
    body=TherapistsIn,
    response=TherapistsOut,
)
@requires(Permission.THERAPISTS_ASSIGN)
def participant_therapists(participant_id: int) -> ResponseReturnValue:
    body = parse_body(TherapistsIn)
    users = services.set_therapists(
        get_db(), current_actor(), _participant(participant_id), body.therapists
    )
    return TherapistsOut(therapists=[u.username for u in users]).model_dump(mode="json")


@api_route(
    bp,
    "/participants/<int:participant_id>/checklist",
    "PUT",
    summary="Answer contraindication checklist items (yes or no, with a note)",
    tag="screening",
    body=ChecklistIn,
    response=ParticipantOut,
)
@requires(Permission.CHECKLIST_ANSWER)
def checklist_answers(participant_id: int) -> ResponseReturnValue:
    body = parse_body(ChecklistIn)
    participant = _participant(participant_id)
    services.record_checklist_answers(
        get_db(),
        current_actor(),
        participant,
        {code: (a.answer, a.note) for code, a in body.answers.items()},
    )
    return participant_out(participant, with_checklist=True).model_dump(mode="json")


@api_route(
    bp,
    "/participants/<int:participant_id>/checklist/assessments",
    "POST",
    summary="An investigator's assessment of a review item answered yes",
    tag="screening",
    body=AssessmentIn,
    response=ParticipantOut,
    status=201,
)
@requires(Permission.CHECKLIST_ASSESS)
def checklist_assessment(participant_id: int) -> ResponseReturnValue:
    body = parse_body(AssessmentIn)
    participant = _participant(participant_id)
    services.assess_review_item(
        get_db(), current_actor(), participant, body.item, body.acceptable, body.rationale
    )
    return participant_out(participant, with_checklist=True).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/checklist/signature",
    "POST",
    summary="The investigator's electronic signature of the checklist (password again)",
    tag="screening",
    body=SignatureIn,
    response=SignatureOut,
    status=201,
)
@requires(Permission.CHECKLIST_SIGN)
@password_check_limit
def checklist_signature(participant_id: int) -> ResponseReturnValue:
    body = parse_body(SignatureIn)
    participant = _participant(participant_id)
    signature = services.sign_checklist(
        get_db(),
        authenticated_user(),
        current_actor(),
        participant,
        body.password,
        body.meaning,
    )
    return _signature(signature).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/childbearing-potential",
    "PUT",
    summary="Record whether the participant is of childbearing potential (a change needs a reason)",
    tag="screening",
    body=ChildbearingPotentialIn,
    response=ParticipantOut,
)
@requires(Permission.PARTICIPANTS_ENROL)
def childbearing_potential(participant_id: int) -> ResponseReturnValue:
    body = parse_body(ChildbearingPotentialIn)
    participant = services.record_childbearing_potential(
        get_db(),
        current_actor(),
        _participant(participant_id),
        body.childbearing_potential,
        body.reason or "",
    )
    return participant_out(participant).model_dump(mode="json")


@api_route(
    bp,
    "/participants/<int:participant_id>/consent",
    "POST",
    summary="Record informed consent",
    tag="screening",
    body=ConsentIn,
    response=ConsentOut,
    status=201,
)
@requires(Permission.CONSENT_RECORD)
def consent(participant_id: int) -> ResponseReturnValue:
    body = parse_body(ConsentIn)
    participant = _participant(participant_id)
    record = services.record_consent(
        get_db(), current_actor(), participant, body.version, body.signed_on
    )
    return ConsentOut(
        document_version=record.document_version,
        signed_on=record.signed_on,
        obtained_by=record.obtained_by.username,
        recorded_at=record.recorded_at,
    ).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/transitions",
    "GET",
    summary="The participant's transition history",
    tag="transitions",
    response=TransitionHistory,
)
@requires(Permission.PARTICIPANTS_VIEW)
def transition_history(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    events = queries.transitions_of(get_db(), participant.id)
    return TransitionHistory(
        transitions=[TransitionOut.model_validate(e, from_attributes=True) for e in events]
    ).model_dump(mode="json")


@api_route(
    bp,
    "/participants/<int:participant_id>/allowed-transitions",
    "GET",
    summary="Every transition from the current state: allowed, or every reason why not",
    tag="transitions",
    response=AllowedTransitions,
)
@requires(Permission.PARTICIPANTS_VIEW)
def allowed(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    options = options_for(get_db(), participant, authenticated_user().role)
    return AllowedTransitions(
        version=participant.version,
        transitions=[TransitionOptionOut.model_validate(o.to_dict()) for o in options],
    ).model_dump(mode="json")


@api_route(
    bp,
    "/participants/<int:participant_id>/transitions",
    "POST",
    summary="Apply a transition decided on expected_version (409 if it changed, 422 if refused)",
    tag="transitions",
    body=TransitionIn,
    response=TransitionApplied,
    status=201,
)
@requires(Permission.TRANSITIONS_APPLY)
def transition_apply(participant_id: int) -> ResponseReturnValue:
    body = parse_body(TransitionIn)
    participant = _participant(participant_id)
    applied = apply_transition(
        get_db(),
        current_actor(),
        participant,
        body.transition,
        expected_version=body.expected_version,
        reason=body.reason,
        override=body.override,
        withdrawal_category=body.withdrawal_category,
    )
    return TransitionApplied(
        participant=participant_out(applied.participant),
        transition=TransitionOut.model_validate(applied.event, from_attributes=True),
        deviations=[str(f.code) for f in applied.decision.overridden],
    ).model_dump(mode="json"), 201
