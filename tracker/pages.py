"""What every page view shares: the signed-in user, and running a submitted form through one
service so that a refusal lands on the form with every reason and its status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import g
from flask_login import current_user
from flask_wtf import FlaskForm

from tracker.auth.models import User
from tracker.errors import DomainError


def signed_in_user() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Refusal:
    """What the page says at its top when a form was refused: the reason and a link to the
    form, whose own box of reasons takes the focus (``_macros/forms.html``)."""

    anchor: str
    message: str


def refusal_anchor(form: FlaskForm) -> str:
    """The id of a form's box of reasons: its prefix keeps it unique on a page of forms."""
    return f"{getattr(form, '_prefix', '') or ''}refused"


def refuse(form: FlaskForm, message: str) -> None:
    g.refusal = Refusal(refusal_anchor(form), message)


def form_error(form: FlaskForm, error: DomainError) -> None:
    form.form_errors.extend(error.details or [error.message])
    refuse(form, error.message)


def attempt(form: FlaskForm, action: Callable[[], Any]) -> tuple[Any, int]:
    """Validate the form and run the service: (result, 0) when done, else (None, status)."""
    if not form.validate_on_submit():
        refuse(form, "Nothing was saved: some fields need attention.")
        return None, 400
    try:
        return action(), 0
    except DomainError as error:
        form_error(form, error)
        return None, error.status


def yes(value: str | None) -> bool:
    return value == "yes"
