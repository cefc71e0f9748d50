"""Participant pages: the list, enrolment, the participant page, the checklist, the
investigator's review and signature, consent, therapists and transitions.

Each POST parses a form, calls one service and redirects; a refusal re-renders the page with
every reason and a 4xx status, so the edge rolls back whatever was half-done.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from wtforms.fields.choices import SelectChoice

from tracker.auth.models import SITELESS_ROLES, User
from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.errors import Conflict, DomainError, RuleViolation
from tracker.extensions import password_check_limit
from tracker.pages import form_error, signed_in_user
from tracker.participants import queries, services, transitions
from tracker.participants.facts import SessionRecords
from tracker.participants.forms import (
    AssessmentForm,
    ChildbearingForm,
    ConsentForm,
    EnrolForm,
    ParticipantFilterForm,
    SignatureForm,
    TherapistsForm,
    TransitionForm,
    checklist_form_class,
    childbearing_value,
)
from tracker.participants.models import Participant
from tracker.participants.presenters import phase_label, state_label
from tracker.protocol import TRANSITIONS, ItemKind, State, childbearing_potential_applies
from tracker.randomisation.forms import RandomiseForm, UnblindForm
from tracker.randomisation.presenters import participant_randomisation
from tracker.security import Permission, can, requires
from tracker.sessions.presenters import participant_sections, therapist_choices
from tracker.site_time import site_time
from tracker.sites import services as sites

bp = Blueprint("participants", __name__, url_prefix="/participants")

PER_PAGE = 25


@bp.app_template_filter("state_label")
def _state_label(state: str) -> str:
    return state_label(state)


@bp.app_template_filter("utc")
def _utc(moment: Any) -> str:
    """A moment in the site's time with its offset (UTC for a UTC site or a study-wide
    user); the filter keeps its first name, which it still means for most of the study."""
    return site_time(moment)


@bp.app_template_global("transition_label")
def transition_label(name: str) -> str:
    return name.replace("_", " ").capitalize()


@bp.app_template_global("phase_label")
def _phase_label(participant: Participant) -> str:
    return phase_label(participant)


def _participant(participant_id: int) -> Participant:
    return queries.get_participant(get_db(), signed_in_user(), participant_id)


def _therapist_choices(site_id: int) -> list[tuple[str, str]]:
    return therapist_choices(get_db(), site_id)


# --- the list and enrolment ------------------------------------------------------------------


@bp.route("/")
@requires(Permission.PARTICIPANTS_VIEW)
def participant_list() -> ResponseReturnValue:
    user = signed_in_user()
    form = ParticipantFilterForm(formdata=request.args)
    study_wide = user.role in SITELESS_ROLES
    if study_wide:
        form.set_site_choices([s.code for s in sites.list_sites(get_db())])
    valid = form.validate()
    page_number = request.args.get("page", 1, type=int) or 1
    flt = queries.ParticipantFilter(
        state=form.state.data or None if valid else None,
        site=(form.site.data or None) if valid and study_wide else None,
        search=(form.q.data or "").strip() or None if valid else None,
    )
    page = queries.participant_page(get_db(), user, flt, max(1, page_number), PER_PAGE)
    if page.page > page.pages:
        page = queries.participant_page(get_db(), user, flt, page.pages, PER_PAGE)
    arguments = {
        k: v for k, v in (("state", flt.state), ("site", flt.site), ("q", flt.search)) if v
    }
    return render_template(
        "participants/list.html",
        form=form,
        page=page,
        arguments=arguments,
        study_wide=study_wide,
    ), (200 if valid else 400)


@bp.route("/new", methods=["GET", "POST"])
@requires(Permission.PARTICIPANTS_ENROL)
def enrol() -> ResponseReturnValue:
    user = signed_in_user()
    site = user.site
    if site is None:  # pragma: no cover - the enrolling roles are site-bound
        abort(403, description="Only site staff enrol participants.")
    form = EnrolForm()
    form.site.choices = [SelectChoice(site.code, f"{site.code} — {site.name}")]
    form.set_therapist_choices(_therapist_choices(site.id))
    if form.validate_on_submit():
        try:
            participant = services.enrol_participant(
                get_db(),
                current_actor(),
                site=site,
                sex=form.sex.data or "",
                year_of_birth=form.year_of_birth.data or 0,
                therapists=form.therapists.data or [],
                childbearing_potential=childbearing_value(form.childbearing_potential.data),
            )
        except DomainError as error:
            form_error(form, error)
        else:
            flash(f"{participant.study_id} enrolled; screening starts.", "success")
            return redirect(url_for("participants.detail", participant_id=participant.id))
    status = 400 if form.is_submitted() else 200
    return render_template("participants/enrol.html", form=form), status


# --- the participant page --------------------------------------------------------------------


def _therapists_form(assigned: list[User], choices: list[tuple[str, str]]) -> TherapistsForm:
    form = TherapistsForm(
        prefix="therapists", data={"therapists": [t.username for t in assigned]}, formdata=None
    )
    form.set_therapist_choices(choices)
    return form


def _transition_forms(participant: Participant, options: list[Any]) -> dict[str, TransitionForm]:
    return {
        option.name: TransitionForm(
            prefix=option.name, formdata=None, data={"expected_version": str(participant.version)}
        )
        for option in options
    }


def render_participant(
    participant: Participant,
    *,
    status: int = 200,
    submitted: TransitionForm | None = None,
    submitted_name: str | None = None,
    therapists_form: TherapistsForm | None = None,
    childbearing_form: ChildbearingForm | None = None,
    conflict: str | None = None,
    sections: dict[str, Any] | None = None,
    unblind_form: UnblindForm | None = None,
) -> ResponseReturnValue:
    """The participant page; ``sections`` carries the session and safety sections with a
    submitted form that failed (``tracker.sessions.presenters.participant_sections``)."""
    db = get_db()
    user = signed_in_user()
    if sections is None:
        sections = participant_sections(db, user, participant)
    checklist = services.checklist_state(db, participant)
    consents = queries.consents_of(db, participant.id)
    assigned = sections["assigned"]
    # The guards decide on the rows this page has already read: nothing is read twice.
    options = (
        transitions.options_for(
            db,
            participant,
            user.role,
            checklist=checklist,
            consent_recorded=bool(consents),
            records=SessionRecords(
                sessions=sections["sessions"],
                adverse_events=sections["adverse_events"],
                pregnancy_tests=sections["pregnancy_tests"],
                dosing_records=sections["dosing_records"],
            ),
        )
        if can(Permission.TRANSITIONS_APPLY)
        else []
    )
    forms = _transition_forms(participant, options)
    # A refused transition whose form the page does not offer (not allowed from this state, or
    # not for this role) still shows its reasons, at the top.
    unoffered: tuple[str, list[str]] | None = None
    if submitted is not None and submitted_name in forms:
        forms[submitted_name] = submitted
    elif submitted is not None and submitted_name is not None:
        unoffered = (
            transition_label(submitted_name),
            # WTForms lists the form's own errors under None among the fields' errors.
            list(dict.fromkeys(str(e) for errors in submitted.errors.values() for e in errors)),
        )
    events, deviations = queries.transitions_with_deviations(db, participant.id)
    return render_template(
        "participants/detail.html",
        participant=participant,
        checklist=checklist,
        therapists_form=therapists_form
        or _therapists_form(assigned, sections["therapist_choices"]),
        childbearing_form=childbearing_form or _childbearing_form(participant),
        childbearing_applies=childbearing_potential_applies(participant.sex),
        consents=consents,
        events=events,
        deviations=deviations,
        options=options,
        forms=forms,
        transition_table=TRANSITIONS,
        conflict=conflict,
        unoffered=unoffered,
        review_kind=ItemKind.REVIEW,
        screening=participant.state == State.SCREENING,
        randomisation=participant_randomisation(db, user, participant),
        randomise_form=RandomiseForm(formdata=None, data={"expected_version": participant.version}),
        unblind_form=unblind_form or UnblindForm(formdata=None),
        **sections,
    ), status


@bp.route("/<int:participant_id>")
@requires(Permission.PARTICIPANTS_VIEW)
def detail(participant_id: int) -> ResponseReturnValue:
    return render_participant(_participant(participant_id))


def _childbearing_form(participant: Participant) -> ChildbearingForm:
    recorded = participant.childbearing_potential
    value = None if recorded is None else ("yes" if recorded else "no")
    return ChildbearingForm(
        prefix="childbearing", formdata=None, data={"childbearing_potential": value}
    )


@bp.route("/<int:participant_id>/childbearing-potential", methods=["POST"])
@requires(Permission.PARTICIPANTS_ENROL)
def record_childbearing(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = ChildbearingForm(prefix="childbearing")
    if form.validate_on_submit():
        try:
            services.record_childbearing_potential(
                get_db(),
                current_actor(),
                participant,
                bool(childbearing_value(form.childbearing_potential.data)),
                form.reason.data or "",
            )
        except DomainError as error:
            form_error(form, error)
            return render_participant(participant, status=error.status, childbearing_form=form)
        flash(f"Childbearing potential of {participant.study_id} recorded.", "success")
        return redirect(url_for("participants.detail", participant_id=participant.id))
    return render_participant(participant, status=400, childbearing_form=form)


@bp.route("/<int:participant_id>/therapists", methods=["POST"])
@requires(Permission.THERAPISTS_ASSIGN)
def set_therapists(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = TherapistsForm(prefix="therapists")
    form.set_therapist_choices(_therapist_choices(participant.site_id))
    if form.validate_on_submit():
        try:
            assigned = services.set_therapists(
                get_db(), current_actor(), participant, form.therapists.data or []
            )
        except DomainError as error:
            form_error(form, error)
        else:
            names = ", ".join(t.username for t in assigned) or "none"
            flash(f"Therapists of {participant.study_id}: {names}.", "success")
            return redirect(url_for("participants.detail", participant_id=participant.id))
    return render_participant(participant, status=400, therapists_form=form)


@bp.route("/<int:participant_id>/transitions/<name>", methods=["POST"])
@requires(Permission.TRANSITIONS_APPLY)
def apply_transition(participant_id: int, name: str) -> ResponseReturnValue:
    participant = _participant(participant_id)
    if name not in TRANSITIONS:
        abort(404, description=f"There is no transition {name!r}.")
    form = TransitionForm(prefix=name)
    if not form.validate_on_submit() or form.version() is None:
        if not form.errors:
            form.form_errors.append("The form is missing the version it was decided on; reload.")
        return render_participant(participant, status=400, submitted=form, submitted_name=name)
    try:
        applied = transitions.apply_transition(
            get_db(),
            current_actor(),
            participant,
            name,
            expected_version=form.version() or 0,
            reason=form.reason.data,
            override=bool(form.override.data),
            withdrawal_category=form.withdrawal_category.data or None,
        )
    except Conflict as error:
        get_db().refresh(participant)
        message = (
            f"{participant.study_id} changed since you looked at it; nothing was done. "
            "Reload the page, check its current state and decide again."
        )
        return render_participant(participant, status=409, conflict=f"{message} ({error.message})")
    except RuleViolation as error:
        form_error(form, error)
        return render_participant(participant, status=422, submitted=form, submitted_name=name)
    except DomainError as error:
        form_error(form, error)
        return render_participant(
            participant, status=error.status, submitted=form, submitted_name=name
        )
    event = applied.event
    flash(
        f"{transition_label(name)}: {participant.study_id} moved from "
        f"{state_label(event.from_state)} to {state_label(event.to_state)}.",
        "success",
    )
    return redirect(url_for("participants.detail", participant_id=participant.id))


# --- the checklist ---------------------------------------------------------------------------


@bp.route("/<int:participant_id>/checklist", methods=["GET", "POST"])
@requires(Permission.CHECKLIST_ANSWER)
def checklist(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    state = services.checklist_state(get_db(), participant)
    form_class = checklist_form_class(state.definition)
    current = {}
    for code, answer in state.answers.items():
        current[f"answer_{code}"] = "yes" if answer.answer else "no"
        current[f"note_{code}"] = answer.note or ""
    # The saved answers prefill the page; a submitted form stands alone, so an answer left
    # blank is reported rather than silently taken from the database.
    form = form_class(data=current if request.method == "GET" else None)
    status = 200
    if form.validate_on_submit():
        try:
            services.record_checklist_answers(
                get_db(), current_actor(), participant, form.answers()
            )
        except DomainError as error:
            form_error(form, error)
            status = error.status
        else:
            flash(f"Checklist of {participant.study_id} saved.", "success")
            return redirect(url_for("participants.detail", participant_id=participant.id))
    elif form.is_submitted():
        status = 400
    return render_template(
        "participants/checklist.html",
        participant=participant,
        checklist=state,
        form=form,
        screening=participant.state == State.SCREENING,
    ), status


# --- the investigator's review and signature -------------------------------------------------


def _assessment_forms(state: services.ChecklistState) -> dict[str, AssessmentForm]:
    forms = {}
    for item in state.definition.checklist:
        answer = state.answers.get(item.code)
        if item.kind is ItemKind.REVIEW and answer is not None and answer.answer:
            assessment = state.assessments.get(item.code)
            data = (
                {
                    "acceptable": "yes" if assessment.acceptable else "no",
                    "rationale": assessment.rationale,
                }
                if assessment
                else {}
            )
            forms[item.code] = AssessmentForm(prefix=item.code, formdata=None, data=data)
    return forms


def _render_review(
    participant: Participant,
    *,
    status: int = 200,
    assessment: tuple[str, AssessmentForm] | None = None,
    signature_form: SignatureForm | None = None,
) -> ResponseReturnValue:
    state = services.checklist_state(get_db(), participant)
    forms = _assessment_forms(state)
    if assessment is not None and assessment[0] in forms:
        forms[assessment[0]] = assessment[1]
    return render_template(
        "participants/review.html",
        participant=participant,
        checklist=state,
        assessment_forms=forms,
        signature_form=signature_form or SignatureForm(prefix="signature", formdata=None),
        screening=participant.state == State.SCREENING,
    ), status


@bp.route("/<int:participant_id>/review")
@requires(Permission.CHECKLIST_ASSESS)
def review(participant_id: int) -> ResponseReturnValue:
    return _render_review(_participant(participant_id))


@bp.route("/<int:participant_id>/review/assessments/<code>", methods=["POST"])
@requires(Permission.CHECKLIST_ASSESS)
def assess(participant_id: int, code: str) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = AssessmentForm(prefix=code)
    status = 400
    if form.validate_on_submit():
        try:
            state = services.assess_review_item(
                get_db(),
                current_actor(),
                participant,
                code,
                form.acceptable.data == "yes",
                form.rationale.data or "",
            )
        except DomainError as error:
            form_error(form, error)
            status = error.status
        else:
            question = state.definition.item(code).question
            flash(f"Assessment of “{question}” recorded.", "success")
            return redirect(url_for("participants.review", participant_id=participant.id))
    return _render_review(participant, status=status, assessment=(code, form))


@bp.route("/<int:participant_id>/review/signature", methods=["POST"])
@requires(Permission.CHECKLIST_SIGN)
@password_check_limit
def sign(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = SignatureForm(prefix="signature")
    status = 400
    if form.validate_on_submit():
        try:
            signature = services.sign_checklist(
                get_db(),
                signed_in_user(),
                current_actor(),
                participant,
                form.password.data or "",
                form.meaning.data or "",
            )
        except DomainError as error:
            # A wrong password's failure count and audit event are committed by the edge
            # with this 4xx (tracker.auth.services.check_password); nothing else is.
            form_error(form, error)
            status = error.status
        else:
            flash(
                f"Checklist of {participant.study_id} signed by {signature.printed_name} "
                f"({signature.outcome}).",
                "success",
            )
            return redirect(url_for("participants.detail", participant_id=participant.id))
    form.password.data = ""
    return _render_review(participant, status=status, signature_form=form)


# --- consent ---------------------------------------------------------------------------------


@bp.route("/<int:participant_id>/consent", methods=["GET", "POST"])
@requires(Permission.CONSENT_RECORD)
def consent(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = ConsentForm()
    status = 200
    if form.validate_on_submit():
        try:
            services.record_consent(
                get_db(),
                current_actor(),
                participant,
                form.document_version.data or "",
                form.signed_on.data,
            )
        except DomainError as error:
            form_error(form, error)
            status = error.status
        else:
            flash(f"Consent of {participant.study_id} recorded.", "success")
            return redirect(url_for("participants.detail", participant_id=participant.id))
    elif form.is_submitted():
        status = 400
    return render_template(
        "participants/consent.html",
        participant=participant,
        form=form,
        consents=queries.consents_of(get_db(), participant.id),
    ), status
