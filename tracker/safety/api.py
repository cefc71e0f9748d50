"""Safety records in the JSON API: side effects, adverse events, screens, pregnancy tests."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, parse_body
from tracker.api.schemas import (
    AdverseEventAssessmentIn,
    AdverseEventCreated,
    AdverseEventIn,
    AdverseEventList,
    AdverseEventOut,
    AdverseEventPatch,
    PregnancyTestIn,
    PregnancyTestOut,
    ScreenIn,
    ScreenOut,
    SideEffectIn,
    SideEffectOut,
)
from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.safety import queries, services
from tracker.security import Permission, authenticated_user, requires
from tracker.sessions.api import participant_for_api


@api_route(
    bp,
    "/participants/<int:participant_id>/side-effects",
    "POST",
    tag="safety",
    status=201,
    summary="Record a side effect",
    body=SideEffectIn,
    response=SideEffectOut,
)
@requires(Permission.SESSIONS_RECORD)
def side_effect_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(SideEffectIn)
    row = services.record_side_effect(
        get_db(), current_actor(), participant_for_api(participant_id), **body.model_dump()
    )
    return SideEffectOut.model_validate(row, from_attributes=True).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/adverse-events",
    "POST",
    tag="safety",
    status=201,
    summary="Record an adverse event; a serious one places the participant on hold",
    body=AdverseEventIn,
    response=AdverseEventCreated,
)
@requires(Permission.SESSIONS_RECORD)
def adverse_event_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(AdverseEventIn)
    participant = participant_for_api(participant_id)
    event = services.record_adverse_event(
        get_db(), current_actor(), participant, **body.model_dump()
    )
    return AdverseEventCreated(
        adverse_event=AdverseEventOut.model_validate(event, from_attributes=True),
        participant_state=participant.state,
    ).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/adverse-events",
    "GET",
    tag="safety",
    summary="The participant's adverse events",
    response=AdverseEventList,
)
@requires(Permission.PARTICIPANTS_VIEW)
def adverse_event_list(participant_id: int) -> ResponseReturnValue:
    events = queries.adverse_events_of(get_db(), participant_for_api(participant_id).id)
    return AdverseEventList(
        adverse_events=[AdverseEventOut.model_validate(e, from_attributes=True) for e in events]
    ).model_dump(mode="json")


@api_route(
    bp,
    "/adverse-events/<int:event_id>/assessment",
    "POST",
    tag="safety",
    status=201,
    summary="The investigator's assessment of relatedness and expectedness",
    body=AdverseEventAssessmentIn,
    response=AdverseEventOut,
)
@requires(Permission.ADVERSE_EVENTS_ASSESS)
def adverse_event_assess(event_id: int) -> ResponseReturnValue:
    body = parse_body(AdverseEventAssessmentIn)
    event = services.get_adverse_event(get_db(), authenticated_user(), event_id)
    services.assess_adverse_event(get_db(), current_actor(), event, **body.model_dump())
    return AdverseEventOut.model_validate(event, from_attributes=True).model_dump(mode="json"), 201


@api_route(
    bp,
    "/adverse-events/<int:event_id>",
    "PATCH",
    tag="safety",
    summary="Follow-up: outcome, resolution, report time",
    body=AdverseEventPatch,
    response=AdverseEventOut,
)
@requires(Permission.SESSIONS_RECORD)
def adverse_event_update(event_id: int) -> ResponseReturnValue:
    body = parse_body(AdverseEventPatch)
    event = services.get_adverse_event(get_db(), authenticated_user(), event_id)
    services.update_adverse_event(get_db(), current_actor(), event, **body.model_dump())
    return AdverseEventOut.model_validate(event, from_attributes=True).model_dump(mode="json")


@api_route(
    bp,
    "/participants/<int:participant_id>/suicidality-screens",
    "POST",
    tag="safety",
    status=201,
    summary="A C-SSRS style screen; a positive one places the participant on hold",
    body=ScreenIn,
    response=ScreenOut,
)
@requires(Permission.SESSIONS_RECORD)
def screen_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(ScreenIn)
    participant = participant_for_api(participant_id)
    screen = services.record_suicidality_screen(
        get_db(), current_actor(), participant, **body.model_dump()
    )
    return ScreenOut(
        id=screen.id,
        screened_at=screen.screened_at,
        ideation=screen.ideation,
        intent=screen.intent,
        plan=screen.plan,
        behaviour=screen.behaviour,
        positive=screen.positive,
        participant_state=participant.state,
    ).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/pregnancy-tests",
    "POST",
    tag="safety",
    status=201,
    summary="A pregnancy test result",
    body=PregnancyTestIn,
    response=PregnancyTestOut,
)
@requires(Permission.SESSIONS_RECORD)
def pregnancy_test_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(PregnancyTestIn)
    row = services.record_pregnancy_test(
        get_db(),
        current_actor(),
        participant_for_api(participant_id),
        tested_at=body.tested_at,
        result=body.result,
    )
    return PregnancyTestOut.model_validate(row, from_attributes=True).model_dump(mode="json"), 201
