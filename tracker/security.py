"""Roles, the permission table, and the one decorator every endpoint uses.

Deny by default: an endpoint without ``@requires(...)`` or ``@public`` fails the test that
walks the URL map (tests/web/test_permissions.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from flask import abort, g, redirect, request, url_for
from flask_login import current_user

from tracker.errors import PermissionDenied
from tracker.protocol.roles import Role

F = TypeVar("F", bound=Callable[..., Any])

PERMISSION_ATTRIBUTE = "tracker_permission"
PUBLIC = "public"


class Permission(StrEnum):
    DASHBOARD_VIEW = "dashboard.view"
    ACCOUNT_MANAGE_OWN = "account.manage_own"
    USERS_MANAGE = "users.manage"
    SITES_MANAGE = "sites.manage"
    PROTOCOLS_MANAGE = "protocols.manage"
    PROTOCOL_VIEW = "protocol.view"
    PARTICIPANTS_VIEW = "participants.view"
    PARTICIPANTS_ENROL = "participants.enrol"
    THERAPISTS_ASSIGN = "therapists.assign"
    CHECKLIST_ANSWER = "checklist.answer"
    CHECKLIST_ASSESS = "checklist.assess"
    CHECKLIST_SIGN = "checklist.sign"
    CONSENT_RECORD = "consent.record"
    TRANSITIONS_APPLY = "transitions.apply"
    SESSIONS_RECORD = "sessions.record"
    ADVERSE_EVENTS_ASSESS = "adverse_events.assess"
    REPORTS_VIEW = "reports.view"
    REPORTS_EXPORT = "reports.export"
    AUDIT_VIEW = "audit.view"
    AUDIT_EXPORT = "audit.export"
    AUDIT_VERIFY = "audit.verify"
    OUTCOMES_VIEW = "outcomes.view"
    OUTCOMES_RECORD = "outcomes.record"
    RATERS_ASSIGN = "raters.assign"
    RANDOMISATION_LIST = "randomisation.list"
    RANDOMISE = "randomisation.randomise"
    ALLOCATIONS_VIEW = "randomisation.allocations"
    EMERGENCY_UNBLIND = "randomisation.emergency_unblind"
    BLINDING_GUESS_RECORD = "blinding.guess"
    STUDY_UNBLIND = "study.unblind"
    INVENTORY_VIEW = "inventory.view"
    INVENTORY_RECORD = "inventory.record"
    INVENTORY_REGISTER = "inventory.register"
    INVENTORY_EXPLAIN = "inventory.explain"
    DATA_EXPORT = "data.export"
    EXPORT_JOBS = "exports.jobs"


_EVERYONE = frozenset(Role)
_CLINICAL_READERS = frozenset({Role.COORDINATOR, Role.THERAPIST, Role.INVESTIGATOR, Role.AUDITOR})
_SITE_STAFF = frozenset({Role.COORDINATOR, Role.INVESTIGATOR})

ROLE_PERMISSIONS: dict[Permission, frozenset[Role]] = {
    Permission.DASHBOARD_VIEW: _EVERYONE,
    Permission.ACCOUNT_MANAGE_OWN: _EVERYONE,
    Permission.USERS_MANAGE: frozenset({Role.ADMIN}),
    Permission.SITES_MANAGE: frozenset({Role.ADMIN}),
    Permission.PROTOCOLS_MANAGE: frozenset({Role.ADMIN}),
    Permission.PROTOCOL_VIEW: _EVERYONE,
    # The admin manages people, not clinical data (SPEC §1): no participant access.
    Permission.PARTICIPANTS_VIEW: _CLINICAL_READERS,
    Permission.PARTICIPANTS_ENROL: _SITE_STAFF,
    Permission.THERAPISTS_ASSIGN: _SITE_STAFF,
    Permission.CHECKLIST_ANSWER: _SITE_STAFF,
    Permission.CHECKLIST_ASSESS: frozenset({Role.INVESTIGATOR}),
    Permission.CHECKLIST_SIGN: frozenset({Role.INVESTIGATOR}),
    Permission.CONSENT_RECORD: _SITE_STAFF,
    # Which transition a role may apply is the core's table; this only admits the roles that
    # appear in it.
    Permission.TRANSITIONS_APPLY: frozenset({Role.COORDINATOR, Role.THERAPIST, Role.INVESTIGATOR}),
    # Sessions, doses, vital signs, effects, safety records and notes.
    Permission.SESSIONS_RECORD: frozenset({Role.THERAPIST, Role.COORDINATOR, Role.INVESTIGATOR}),
    Permission.ADVERSE_EVENTS_ASSESS: frozenset({Role.INVESTIGATOR}),
    # Site staff see their own site's compliance; the auditor sees and exports the study's.
    Permission.REPORTS_VIEW: frozenset({Role.AUDITOR, Role.INVESTIGATOR, Role.COORDINATOR}),
    Permission.REPORTS_EXPORT: frozenset({Role.AUDITOR, Role.INVESTIGATOR}),
    Permission.AUDIT_VIEW: frozenset({Role.AUDITOR}),
    Permission.AUDIT_EXPORT: frozenset({Role.AUDITOR}),
    Permission.AUDIT_VERIFY: frozenset({Role.AUDITOR}),
    # Outcome measures (SPEC §10): a rater sees a participant's timepoints and assessments and
    # nothing else of them; who may record which instrument is the core's rule.
    Permission.OUTCOMES_VIEW: _CLINICAL_READERS | {Role.RATER},
    Permission.OUTCOMES_RECORD: frozenset(
        {Role.COORDINATOR, Role.THERAPIST, Role.INVESTIGATOR, Role.RATER}
    ),
    Permission.RATERS_ASSIGN: _SITE_STAFF,
    # Randomisation and blinding (SPEC §11): the list is the statistician's; the arm is read
    # by the statistician and the pharmacist (and, for one participant, the investigator who
    # unblinded them in an emergency).
    Permission.RANDOMISATION_LIST: frozenset({Role.STATISTICIAN}),
    Permission.RANDOMISE: _SITE_STAFF,
    Permission.ALLOCATIONS_VIEW: frozenset({Role.STATISTICIAN, Role.PHARMACIST}),
    Permission.EMERGENCY_UNBLIND: frozenset({Role.INVESTIGATOR}),
    Permission.BLINDING_GUESS_RECORD: frozenset(
        {Role.COORDINATOR, Role.THERAPIST, Role.INVESTIGATOR, Role.RATER}
    ),
    Permission.STUDY_UNBLIND: frozenset({Role.ADMIN, Role.STATISTICIAN}),
    # The investigational product (SPEC §12): the site's pharmacist keeps the ledger; the
    # site's staff and the study's auditor and statistician read it (blinded as §11 says).
    Permission.INVENTORY_VIEW: frozenset(
        {Role.PHARMACIST, Role.INVESTIGATOR, Role.COORDINATOR, Role.AUDITOR, Role.STATISTICIAN}
    ),
    Permission.INVENTORY_RECORD: frozenset({Role.PHARMACIST}),
    Permission.INVENTORY_REGISTER: frozenset({Role.PHARMACIST, Role.ADMIN}),
    Permission.INVENTORY_EXPLAIN: frozenset({Role.PHARMACIST, Role.INVESTIGATOR}),
    # Data exchange (SPEC §13): the auditor and the statistician take the study's, the
    # investigator their site's; the arms only as the blinding allows (tracker.exchange.scope).
    Permission.DATA_EXPORT: frozenset({Role.AUDITOR, Role.INVESTIGATOR, Role.STATISTICIAN}),
    # Background exports: whoever may export follows their own jobs and fetches their own
    # files (which kind each may ask for is the kind's own permission, tracker.jobs.kinds).
    Permission.EXPORT_JOBS: frozenset({Role.AUDITOR, Role.INVESTIGATOR, Role.STATISTICIAN}),
}


def role_has(role: str | Role, permission: Permission) -> bool:
    try:
        return Role(role) in ROLE_PERMISSIONS[permission]
    except ValueError:
        return False


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def authenticated_user() -> Any:
    """The user of this request: a bearer token's (API) or the browser session's."""
    api_user = g.get("api_user")
    if api_user is not None:
        return api_user
    if current_user.is_authenticated:
        return current_user._get_current_object()
    return None


def can(permission: Permission) -> bool:
    user = authenticated_user()
    return user is not None and role_has(user.role, permission)


def requires(permission: Permission) -> Callable[[F], F]:
    """Allow the view only to signed-in users whose role holds ``permission``."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = authenticated_user()
            if user is None:
                if is_api_request():
                    abort(401, description="Sign in, or send 'Authorization: Bearer <token>'.")
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not role_has(user.role, permission):
                abort(403, description=f"The {user.role} role does not permit this ({permission}).")
            if user.password_temporary and permission != Permission.ACCOUNT_MANAGE_OWN:
                # Someone else chose this password: its owner replaces it before anything else.
                if is_api_request():
                    raise PermissionDenied(
                        "Your password was set by an administrator; change it on the password "
                        "page before using the API.",
                        ["password_change_required"],
                    )
                return redirect(url_for("auth.change_password"))
            return view(*args, **kwargs)

        setattr(wrapped, PERMISSION_ATTRIBUTE, permission)
        return wrapped  # type: ignore[return-value]

    return decorator


def public(view: F) -> F:
    """Mark a view as open to anyone (login page, health check, OpenAPI document)."""
    setattr(view, PERMISSION_ATTRIBUTE, PUBLIC)
    return view


def permission_of(view: Callable[..., Any]) -> str | None:
    value = getattr(view, PERMISSION_ATTRIBUTE, None)
    return None if value is None else str(value)
