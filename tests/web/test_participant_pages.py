"""The participant pages through the test client: visibility, enrolment, the checklist,
transitions (refusals with every reason, stale versions), and screening end to end."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login
from tests.factories import PASSWORD
from tracker.auth.models import User
from tracker.auth.services import actor_for
from tracker.db import get_database
from tracker.participants import services
from tracker.participants.models import Participant
from tracker.protocol import ItemKind
from tracker.study.services import current_protocol_version, definition_of


def _enrol(session: Session, by: User, therapists: tuple[str, ...] = ()) -> Participant:
    assert by.site is not None
    participant = services.enrol_participant(
        session,
        actor_for(by),
        site=by.site,
        sex="female",
        year_of_birth=1980,
        therapists=therapists,
    )
    session.commit()
    return participant


def _item_codes(session: Session) -> list[tuple[str, ItemKind]]:
    definition = definition_of(current_protocol_version(session))
    return [(item.code, item.kind) for item in definition.checklist]


def _checklist_data(session: Session, yes: set[str] = frozenset(), skip: set[str] = frozenset()):  # type: ignore[no-untyped-def, assignment]
    data = {}
    for code, _ in _item_codes(session):
        if code in skip:
            continue
        data[f"answer_{code}"] = "yes" if code in yes else "no"
        data[f"note_{code}"] = "history confirmed" if code in yes else ""
    return data


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def _post(client: FlaskClient, form_page: str, action: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(action, data={"csrf_token": csrf_token(client, form_page), **data})


# --- visibility ---------------------------------------------------------------------------


def test_another_sites_participant_is_not_found(
    client: FlaskClient, signed_in, user_factory, db_session: Session
) -> None:
    other = user_factory("coordinator", site="S02")
    theirs = _enrol(db_session, other)
    me = signed_in("coordinator", site="S01")
    mine = _enrol(db_session, me)

    assert client.get(f"/participants/{mine.id}").status_code == 200
    assert client.get(f"/participants/{theirs.id}").status_code == 404
    assert client.get(f"/participants/{theirs.id}/checklist").status_code == 404
    listing = _text(client.get("/participants/"))
    assert mine.study_id in listing and theirs.study_id not in listing


def test_therapist_sees_only_assigned_participants(
    client: FlaskClient, signed_in, user_factory, db_session: Session
) -> None:
    coordinator = user_factory("coordinator", site="S01")
    therapist = signed_in("therapist", site="S01")
    assigned = _enrol(db_session, coordinator, therapists=(therapist.username,))
    unassigned = _enrol(db_session, coordinator)

    assert client.get(f"/participants/{assigned.id}").status_code == 200
    assert client.get(f"/participants/{unassigned.id}").status_code == 404
    listing = _text(client.get("/participants/"))
    assert assigned.study_id in listing and unassigned.study_id not in listing
    dashboard = _text(client.get("/"))
    assert assigned.study_id in dashboard and unassigned.study_id not in dashboard


def test_auditor_sees_every_site_and_filters_by_site(
    client: FlaskClient, signed_in, user_factory, db_session: Session
) -> None:
    first = _enrol(db_session, user_factory("coordinator", site="S01"))
    second = _enrol(db_session, user_factory("coordinator", site="S02"))
    signed_in("auditor")
    page = _text(client.get("/participants/?site=S02"))
    assert second.study_id in page and first.study_id not in page
    # Read only: no enrolment, no transition forms.
    assert "Enrol participant" not in page
    detail = _text(client.get(f"/participants/{first.id}"))
    assert "/transitions/" not in detail


def test_list_filters_and_pages(client: FlaskClient, signed_in, db_session: Session) -> None:
    me = signed_in("coordinator", site="S01")
    enrolled = [_enrol(db_session, me) for _ in range(27)]
    first = _text(client.get("/participants/"))
    assert "Page 1 of 2" in first and enrolled[0].study_id in first
    second = _text(client.get("/participants/?page=2"))
    assert enrolled[-1].study_id in second and enrolled[0].study_id not in second
    found = _text(client.get(f"/participants/?q={enrolled[3].study_id[-4:]}"))
    assert enrolled[3].study_id in found and enrolled[4].study_id not in found
    none = _text(client.get("/participants/?state=dosing"))
    assert "No participants match these filters" in none


# --- enrolment ----------------------------------------------------------------------------


def test_coordinator_enrols_through_the_form(
    client: FlaskClient, signed_in, user_factory, db_session: Session
) -> None:
    therapist = user_factory("therapist", site="S01")
    user_factory("therapist", site="S02", username="elsewhere.therapist")
    signed_in("coordinator", site="S01")
    page = _text(client.get("/participants/new"))
    assert therapist.username in page and "elsewhere.therapist" not in page

    response = _post(
        client,
        "/participants/new",
        "/participants/new",
        {"site": "S01", "sex": "female", "year_of_birth": "1984", "therapists": therapist.username},
    )
    assert response.status_code == 302, _text(response)
    participant = db_session.scalar(sa.select(Participant).order_by(Participant.id.desc()).limit(1))
    assert participant is not None and participant.state == "screening"
    assert response.headers["Location"].endswith(f"/participants/{participant.id}")
    detail = _text(client.get(response.headers["Location"]))
    assert participant.study_id in detail and therapist.username in detail


def test_enrol_reports_every_problem(client: FlaskClient, signed_in, db_session: Session) -> None:
    signed_in("coordinator", site="S01")
    count = db_session.scalar(sa.select(sa.func.count(Participant.id)))
    response = _post(
        client, "/participants/new", "/participants/new", {"site": "S01", "year_of_birth": "x"}
    )
    assert response.status_code == 400
    page = _text(response)
    assert "Choose the participant&#39;s sex." in page and "Not a valid integer value." in page
    response = _post(
        client,
        "/participants/new",
        "/participants/new",
        {"site": "S01", "sex": "male", "year_of_birth": str(datetime.now(UTC).year - 5)},
    )
    assert response.status_code == 400 and "adults only" in _text(response)
    assert db_session.scalar(sa.select(sa.func.count(Participant.id))) == count


# --- the checklist ------------------------------------------------------------------------


def test_checklist_with_a_missing_answer_names_the_item_and_saves_nothing(
    client: FlaskClient, signed_in, db_session: Session
) -> None:
    me = signed_in("coordinator", site="S01")
    participant = _enrol(db_session, me)
    path = f"/participants/{participant.id}/checklist"
    page = _text(client.get(path))
    assert "Bipolar disorder" in page and "Cardiovascular risk" in page
    assert "checked" not in page  # no answer is preselected

    data = _checklist_data(db_session, skip={"bipolar_ii", "hepatic_impairment"})
    response = _post(client, path, path, data)
    assert response.status_code == 400
    text = _text(response)
    assert "2 items need an answer" in text
    assert 'href="#answer_bipolar_ii">Bipolar II disorder' in text
    assert 'href="#answer_hepatic_impairment">Hepatic impairment' in text
    # What was answered is kept on the page.
    assert re.search(r'value="no"[^>]*checked|checked[^>]*value="no"', text)
    assert services.checklist_state(db_session, participant).answers == {}


def test_checklist_saves_and_the_page_shows_every_reason(
    client: FlaskClient, signed_in, db_session: Session
) -> None:
    me = signed_in("coordinator", site="S01")
    participant = _enrol(db_session, me)
    path = f"/participants/{participant.id}/checklist"
    data = _checklist_data(db_session, yes={"bipolar_i", "uncontrolled_hypertension", "bipolar_ii"})
    response = _post(client, path, path, data)
    assert response.status_code == 302, _text(response)
    page = _text(client.get(f"/participants/{participant.id}"))
    assert "ineligible" in page
    assert "Exclusion: Bipolar I disorder, current or past — answered yes" in page
    assert "Exclusion: Uncontrolled hypertension — answered yes" in page
    assert "Review item needs an investigator&#39;s assessment: Bipolar II disorder" in page
    assert "history confirmed" in page


# --- transitions --------------------------------------------------------------------------


def _confirm(client: FlaskClient, participant: Participant, version: int):  # type: ignore[no-untyped-def]
    detail = f"/participants/{participant.id}"
    return _post(
        client,
        detail,
        f"{detail}/transitions/confirm_eligibility",
        {"confirm_eligibility-expected_version": str(version)},
    )


def test_a_refused_transition_shows_every_reason(
    client: FlaskClient, signed_in, db_session: Session
) -> None:
    me = signed_in("coordinator", site="S01")
    participant = _enrol(db_session, me)
    detail = _text(client.get(f"/participants/{participant.id}"))
    # Shown before trying: not allowed, with the reasons.
    assert "Not allowed" in detail and "consent" in detail.lower()

    response = _confirm(client, participant, participant.version)
    assert response.status_code == 422
    text = _text(response)
    assert 'id="transition-confirm_eligibility"' in text
    block = text.split('id="transition-confirm_eligibility"')[1].split('class="transition ')[0]
    assert 'role="alert"' in block
    assert "signed" in block and "consent" in block.lower()
    db_session.refresh(participant)
    assert participant.state == "screening" and participant.version == 1


def test_fail_screening_needs_a_reason_then_applies(
    client: FlaskClient, signed_in, db_session: Session
) -> None:
    me = signed_in("coordinator", site="S01")
    participant = _enrol(db_session, me)
    detail = f"/participants/{participant.id}"
    action = f"{detail}/transitions/fail_screening"
    response = _post(client, detail, action, {"fail_screening-expected_version": "1"})
    assert response.status_code == 422 and "reason" in _text(response).lower()
    response = _post(
        client,
        detail,
        action,
        {"fail_screening-expected_version": "1", "fail_screening-reason": "Bipolar I disorder"},
    )
    assert response.status_code == 302, _text(response)
    page = _text(client.get(detail))
    assert "screen failed" in page and "Bipolar I disorder" in page
    db_session.refresh(participant)
    assert participant.state == "screen_failed" and participant.version == 2


def test_a_stale_version_is_a_conflict_and_changes_nothing(
    client: FlaskClient, signed_in, db_session: Session
) -> None:
    me = signed_in("coordinator", site="S01")
    participant = _enrol(db_session, me)
    detail = f"/participants/{participant.id}"
    token = csrf_token(client, detail)  # the page was looked at on version 1 …
    # … then someone placed the participant on hold.
    from tracker.participants.transitions import apply_transition

    apply_transition(
        db_session, actor_for(me), participant, "place_on_hold", expected_version=1, reason="x"
    )
    db_session.commit()
    response = client.post(
        f"{detail}/transitions/fail_screening",
        data={
            "csrf_token": token,
            "fail_screening-expected_version": "1",
            "fail_screening-reason": "decided on the old page",
        },
    )
    assert response.status_code == 409
    text = _text(response)
    assert "changed since you looked at it" in text and "Reload" in text
    db_session.refresh(participant)
    assert participant.state == "on_hold" and participant.version == 2


def test_unknown_transition_is_not_found(client: FlaskClient, signed_in, db_session) -> None:  # type: ignore[no-untyped-def]
    me = signed_in("coordinator", site="S01")
    participant = _enrol(db_session, me)
    detail = f"/participants/{participant.id}"
    assert _post(client, detail, f"{detail}/transitions/teleport", {}).status_code == 404


# --- screening end to end -----------------------------------------------------------------


def _sign_in_as(client: FlaskClient, user: User) -> None:
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert login(client, user.username).status_code == 302


def test_confirm_eligibility_end_to_end(
    client: FlaskClient, user_factory, db_session: Session
) -> None:
    coordinator = user_factory("coordinator", site="S01")
    investigator = user_factory("investigator", site="S01")
    therapist = user_factory("therapist", site="S01")
    assert login(client, coordinator.username).status_code == 302

    response = _post(
        client,
        "/participants/new",
        "/participants/new",
        {"site": "S01", "sex": "male", "year_of_birth": "1979", "therapists": therapist.username},
    )
    assert response.status_code == 302
    detail = response.headers["Location"]
    participant_id = int(detail.rsplit("/", 1)[1])
    checklist = f"{detail}/checklist"
    assert (
        _post(
            client, checklist, checklist, _checklist_data(db_session, yes={"bipolar_ii"})
        ).status_code
        == 302
    )

    page = _text(client.get(detail))
    assert "incomplete" in page and "needs assessment" in page
    consent = f"{detail}/consent"
    response = _post(
        client,
        consent,
        consent,
        {"document_version": "ICF v2.0", "signed_on": datetime.now(UTC).date().isoformat()},
    )
    assert response.status_code == 302, _text(response)

    # The investigator assesses the review item and signs.
    _sign_in_as(client, investigator)
    review = f"{detail}/review"
    assert "Bipolar II disorder" in _text(client.get(review))
    response = _post(
        client,
        review,
        f"{review}/assessments/bipolar_ii",
        {"bipolar_ii-acceptable": "yes", "bipolar_ii-rationale": "Stable for 5 years."},
    )
    assert response.status_code == 302, _text(response)
    # A wrong password: refused, recorded in the audit trail, not signed.
    response = _post(
        client,
        review,
        f"{review}/signature",
        {"signature-password": "wrong-password", "signature-meaning": "I confirm"},
    )
    assert "The password is not correct." in _text(response)
    response = _post(
        client,
        review,
        f"{review}/signature",
        {"signature-password": PASSWORD, "signature-meaning": "I confirm the checklist"},
    )
    assert response.status_code == 302, _text(response)
    page = _text(client.get(detail))
    assert "Signed electronically" in page and investigator.printed_name in page

    # The coordinator confirms eligibility.
    _sign_in_as(client, coordinator)
    participant = db_session.get(Participant, participant_id)
    assert participant is not None
    db_session.refresh(participant)
    response = _confirm(client, participant, participant.version)
    assert response.status_code == 302, _text(response)
    page = _text(client.get(detail))
    assert "preparation" in page and "Confirm eligibility" in page
    db_session.refresh(participant)
    assert participant.state == "preparation"
    dashboard = _text(client.get("/"))
    assert "Screening and preparation" in dashboard


def test_changing_an_answer_voids_the_signature_visibly(
    client: FlaskClient, user_factory, db_session: Session
) -> None:
    coordinator = user_factory("coordinator", site="S01")
    investigator = user_factory("investigator", site="S01")
    participant = _enrol(db_session, coordinator)
    answers = {code: ("no", None) for code, _ in _item_codes(db_session)}
    services.record_checklist_answers(db_session, actor_for(coordinator), participant, answers)
    services.sign_checklist(
        db_session, investigator, actor_for(investigator), participant, PASSWORD, "I confirm"
    )
    db_session.commit()

    assert login(client, coordinator.username).status_code == 302
    path = f"/participants/{participant.id}/checklist"
    assert "voids the signature" in _text(client.get(path))
    data = _checklist_data(db_session, yes={"hepatic_impairment"})
    assert _post(client, path, path, data).status_code == 302
    page = _text(client.get(f"/participants/{participant.id}"))
    assert "Signature voided: a checklist answer changed after signing" in page


def test_dashboard_lists_what_needs_action(
    client: FlaskClient, signed_in, db_session: Session
) -> None:
    me = signed_in("coordinator", site="S01")
    fresh = _enrol(db_session, me)
    ineligible = _enrol(db_session, me)
    services.record_checklist_answers(
        db_session, actor_for(me), ineligible, {"bipolar_i": ("yes", None)}
    )
    db_session.commit()
    page = _text(client.get("/"))
    assert "Needs action" in page
    row = page.split(fresh.study_id)[1].split("</tr>")[0]
    assert "Checklist incomplete" in row and "Consent not recorded" in row
    row = page.split(ineligible.study_id)[1].split("</tr>")[0]
    assert "record the screen failure" in row


def test_admin_is_not_offered_participants(client: FlaskClient, signed_in, db_session) -> None:  # type: ignore[no-untyped-def]
    signed_in("admin")
    assert "Participants" not in _text(client.get("/")).split("<main")[0]


def test_dashboard_queries_do_not_grow_with_the_study(
    app, client: FlaskClient, signed_in, db_session: Session
) -> None:  # type: ignore[no-untyped-def]
    me = signed_in("coordinator", site="S01")
    engine = get_database(app).engine
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    def dashboard_queries() -> int:
        statements.clear()
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            assert client.get("/").status_code == 200
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    for _ in range(2):
        _enrol(db_session, me)
    few = dashboard_queries()
    for _ in range(30):
        _enrol(db_session, me)
    many = dashboard_queries()
    assert many == few, (few, many)
