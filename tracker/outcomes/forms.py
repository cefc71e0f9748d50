"""The assessment form, generated from the instrument: one required field per item with its
range, the time it was administered, and the reason an out-of-window assessment needs."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from tracker.form_fields import required_time
from tracker.protocol.outcomes import Instrument


class MissedForm(FlaskForm):
    reason = TextAreaField(
        "Why it will not be assessed",
        validators=[InputRequired(message="Give the reason."), Length(max=2000)],
    )


def assessment_form(instrument: Instrument, **kwargs: Any) -> FlaskForm:
    """A form class for ``instrument``, instantiated with ``kwargs``. Each item is a choice of
    its whole scores (every one is required by the core); licensed scales show their code and
    short label only."""
    fields: dict[str, Any] = {
        "administered_at": required_time("Administered at (UTC)", default_now=True),
        "reason": TextAreaField(
            "Reason, if outside the timepoint's window",
            validators=[Optional(), Length(max=2000)],
        ),
    }
    for item in instrument.items:
        choices = [SelectChoice("", "— score —")] + [
            SelectChoice(str(v), str(v)) for v in range(item.minimum, item.maximum + 1)
        ]
        fields[f"item_{item.code}"] = SelectField(
            f"{item.code}: {item.label}",
            choices=choices,
            # Blank items reach the service, which names every missing one as the API does.
            validators=[Optional()],
            description=item.text or f"{item.minimum} to {item.maximum}",
        )
    form_class = type(f"{instrument.code.capitalize()}Form", (FlaskForm,), fields)
    return form_class(**kwargs)


def item_scores(form: FlaskForm, instrument: Instrument) -> dict[str, object]:
    """The item scores as the service takes them; a blank stays missing so the core names it."""
    scores: dict[str, object] = {}
    for item in instrument.items:
        raw = form[f"item_{item.code}"].data
        if raw not in (None, ""):
            scores[item.code] = int(raw)
    return scores


class RatersForm(FlaskForm):
    raters = SelectMultipleField(
        "Blinded raters",
        choices=[],
        description="The site's raters who record this participant's clinician-rated scales. "
        "Someone present at any of the participant's sessions cannot be one.",
    )
