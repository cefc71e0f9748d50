"""Forms of the session pages: they parse input into plain values; the services decide."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired

from tracker.form_fields import label_of, optional_time, required_time
from tracker.sessions.models import SESSION_STATUSES


class _TherapistsField:
    def set_therapist_choices(self, choices: list[tuple[str, str]]) -> None:
        self.therapists.choices = [SelectChoice(v, label) for v, label in choices]  # type: ignore[attr-defined]


class ScheduleSessionForm(_TherapistsField, FlaskForm):
    kind = SelectField("Kind", choices=[], validators=[DataRequired()])
    scheduled_at = required_time("Scheduled for (UTC)")
    therapists = SelectMultipleField(
        "Therapists",
        choices=[],
        description="Naming a therapist assigns them to the participant too. "
        "Hold Ctrl (or Cmd) to choose several.",
    )


OVERNIGHT_CHOICES = [
    SelectChoice("", "Not recorded yet"),
    SelectChoice("yes", "Yes, stayed overnight"),
    SelectChoice("no", "No overnight stay"),
]


class SessionRecordForm(_TherapistsField, FlaskForm):
    """Start, end, complete, cancel or mark missed; therapists present; overnight stay."""

    started_at = optional_time("Started at (UTC)", "Leave blank until the session starts.")
    ended_at = optional_time("Ended at (UTC)", "Leave blank while the session is under way.")
    status = SelectField("Status", choices=[SelectChoice(s, label_of(s)) for s in SESSION_STATUSES])
    therapists = SelectMultipleField(
        "Therapists present",
        choices=[],
        description="A dosing session needs two. Hold Ctrl (or Cmd) to choose several.",
    )
    # Shown for dosing sessions only; anything but yes or no reads as "not recorded".
    overnight_stay = SelectField("Overnight stay", choices=OVERNIGHT_CHOICES, validate_choice=False)
