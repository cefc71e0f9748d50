"""Forms of the session and safety pages: they parse input into plain values; the services
decide. Every time is entered in UTC (a ``datetime-local`` input is naive: UTC is attached)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FloatField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields import DateTimeLocalField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from tracker.db import utcnow
from tracker.protocol import PLAUSIBLE_RANGES
from tracker.protocol.dosing import (
    SESSION_EFFECTS,
    AdverseEventOutcome,
    Relatedness,
    SeriousCriterion,
    Severity,
)
from tracker.sessions.models import SESSION_STATUSES

MAX_TEXT = 5000
YES_NO = [SelectChoice("yes", "Yes"), SelectChoice("no", "No")]
TIME_FORMAT = "%Y-%m-%dT%H:%M"


def label_of(value: str) -> str:
    return value.replace("_", " ").capitalize()


def now_minute() -> datetime:
    """The clock's now, to the minute (what a ``datetime-local`` input shows)."""
    return utcnow().replace(second=0, microsecond=0)


class UTCDateTimeField(DateTimeLocalField):
    """A ``datetime-local`` input read as UTC; the value carries the UTC zone."""

    data: datetime | None

    def __init__(self, label: str, **kwargs: Any) -> None:
        kwargs.setdefault("format", [TIME_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"])
        super().__init__(label, **kwargs)

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        value = self.data
        if value is not None and value.tzinfo is None:
            value = self.data = value.replace(tzinfo=UTC)
        if value is not None and not 1900 <= value.year <= 2200:
            self.data = None
            raise ValueError("Give a time in the years 1900 to 2200.")

    def _value(self) -> str:
        if self.raw_data:
            return " ".join(self.raw_data)
        value = self.data
        if value is None:
            return ""
        return value.astimezone(UTC).strftime(TIME_FORMAT)


class MultiCheckboxField(SelectMultipleField):
    """Several choices as checkboxes; the field macro renders it as a fieldset."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _required_time(label: str, *, default_now: bool = False) -> UTCDateTimeField:
    return UTCDateTimeField(
        label,
        validators=[InputRequired(message="Give the date and time (UTC).")],
        default=now_minute if default_now else None,
    )


def _optional_time(label: str, description: str = "") -> UTCDateTimeField:
    return UTCDateTimeField(label, validators=[Optional()], description=description)


def _yes_no(label: str) -> RadioField:
    return RadioField(
        label, choices=YES_NO, validators=[InputRequired(message="Answer yes or no.")]
    )


class _TherapistsField:
    def set_therapist_choices(self, choices: list[tuple[str, str]]) -> None:
        self.therapists.choices = [SelectChoice(v, label) for v, label in choices]  # type: ignore[attr-defined]


# --- sessions -------------------------------------------------------------------------------


class ScheduleSessionForm(_TherapistsField, FlaskForm):
    kind = SelectField("Kind", choices=[], validators=[DataRequired()])
    scheduled_at = _required_time("Scheduled for (UTC)")
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

    started_at = _optional_time("Started at (UTC)", "Leave blank until the session starts.")
    ended_at = _optional_time("Ended at (UTC)", "Leave blank while the session is under way.")
    status = SelectField("Status", choices=[SelectChoice(s, label_of(s)) for s in SESSION_STATUSES])
    therapists = SelectMultipleField(
        "Therapists present",
        choices=[],
        description="A dosing session needs two. Hold Ctrl (or Cmd) to choose several.",
    )
    # Shown for dosing sessions only; anything but yes or no reads as "not recorded".
    overnight_stay = SelectField("Overnight stay", choices=OVERNIGHT_CHOICES, validate_choice=False)


class VitalSignsForm(FlaskForm):
    measured_at = _required_time("Measured at (UTC)", default_now=True)
    systolic = IntegerField(
        "Systolic (mmHg)",
        validators=[InputRequired(), NumberRange(*PLAUSIBLE_RANGES["systolic"])],
        render_kw={"inputmode": "numeric"},
    )
    diastolic = IntegerField(
        "Diastolic (mmHg)",
        validators=[InputRequired(), NumberRange(*PLAUSIBLE_RANGES["diastolic"])],
        render_kw={"inputmode": "numeric"},
    )
    heart_rate = IntegerField(
        "Heart rate (bpm)",
        validators=[InputRequired(), NumberRange(*PLAUSIBLE_RANGES["heart_rate"])],
        render_kw={"inputmode": "numeric"},
    )
    temperature_c = FloatField(
        "Temperature (°C)",
        validators=[InputRequired(), NumberRange(*PLAUSIBLE_RANGES["temperature_c"])],
        render_kw={"inputmode": "decimal", "step": "0.1"},
    )


class DoseForm(FlaskForm):
    administered_at = _required_time("Administered at (UTC)", default_now=True)
    kind = SelectField(
        "Dose",
        choices=[
            SelectChoice("initial", "Initial"),
            SelectChoice("supplemental", "Supplemental"),
        ],
    )
    amount_mg = IntegerField(
        "Amount (mg)",
        validators=[InputRequired(), NumberRange(1, 1000)],
        render_kw={"inputmode": "numeric"},
    )
    breach_justification = TextAreaField(
        "Breach justification (investigator)",
        validators=[Optional(), Length(max=MAX_TEXT)],
        description="Only to give a supplemental dose while the latest vital signs breach a "
        "threshold: document why it is safe.",
    )


class AcknowledgeForm(FlaskForm):
    note = TextAreaField(
        "Acknowledgement note",
        validators=[DataRequired(message="Say what was seen and done."), Length(max=MAX_TEXT)],
    )


class EffectsForm(FlaskForm):
    effects = MultiCheckboxField(
        "Effects observed during the session",
        choices=[SelectChoice(code, label) for code, label in SESSION_EFFECTS],
        description="Record every effect, pleasant or not (euphoria, elation and craving "
        "included).",
    )
    none_observed = BooleanField("I attest that none of these effects were observed")
    note = TextAreaField("Note", validators=[Optional(), Length(max=MAX_TEXT)])


# --- safety ---------------------------------------------------------------------------------


class SuicidalityScreenForm(FlaskForm):
    screened_at = _required_time("Screened at (UTC)", default_now=True)
    ideation = _yes_no("Suicidal ideation")
    intent = _yes_no("Intent")
    plan = _yes_no("Plan")
    behaviour = _yes_no("Suicidal behaviour")


class PregnancyTestForm(FlaskForm):
    tested_at = _required_time("Tested at (UTC)", default_now=True)
    result = RadioField(
        "Result",
        choices=[SelectChoice("negative", "Negative"), SelectChoice("positive", "Positive")],
        validators=[InputRequired(message="Choose the result.")],
    )


class SideEffectForm(FlaskForm):
    term = StringField("Term", validators=[DataRequired(), Length(max=200)])
    severity = SelectField(
        "Severity",
        choices=[SelectChoice("", "— choose —")]
        + [SelectChoice(s.value, label_of(s.value)) for s in Severity],
        validators=[DataRequired(message="Choose the severity.")],
    )
    onset_at = _required_time("Onset (UTC)", default_now=True)
    resolved_at = _optional_time("Resolved (UTC)", "Blank while it lasts.")


class AdverseEventForm(FlaskForm):
    term = StringField("Term", validators=[DataRequired(), Length(max=200)])
    grade = SelectField(
        "CTCAE grade",
        choices=[SelectChoice("", "— choose —")]
        + [SelectChoice(str(g), f"Grade {g}") for g in range(1, 6)],
        validators=[DataRequired(message="Choose the grade.")],
    )
    onset_at = _required_time("Onset (UTC)", default_now=True)
    aware_at = _optional_time(
        "Site aware at (UTC)", "Blank means now. A serious event is due for report 24 h later."
    )
    serious = BooleanField("Serious adverse event (places the participant on hold)")
    serious_criteria = MultiCheckboxField(
        "Seriousness criteria",
        choices=[SelectChoice(c.value, label_of(c.value)) for c in SeriousCriterion],
    )
    description = TextAreaField("Description", validators=[Optional(), Length(max=MAX_TEXT)])


class AdverseEventAssessmentForm(FlaskForm):
    relatedness = SelectField(
        "Relatedness to the study drug",
        choices=[SelectChoice("", "— choose —")]
        + [SelectChoice(r.value, label_of(r.value)) for r in Relatedness],
        validators=[DataRequired(message="Choose the relatedness.")],
    )
    expected = RadioField(
        "Expected (listed in the investigator's brochure)?",
        choices=[SelectChoice("yes", "Expected"), SelectChoice("no", "Unexpected")],
        validators=[InputRequired(message="Choose expected or unexpected.")],
    )
    note = TextAreaField("Note", validators=[Optional(), Length(max=MAX_TEXT)])


class AdverseEventFollowUpForm(FlaskForm):
    outcome = SelectField(
        "Outcome", choices=[SelectChoice(o.value, label_of(o.value)) for o in AdverseEventOutcome]
    )
    resolved_at = _optional_time("Resolved at (UTC)")
    reported_at = _optional_time(
        "Reported at (UTC)", "Serious events: when the expedited report was sent."
    )


# --- notes ----------------------------------------------------------------------------------


class NoteForm(FlaskForm):
    text = TextAreaField(
        "Note",
        validators=[DataRequired(message="Write the note."), Length(max=MAX_TEXT)],
        description="Plain text. Notes are never edited: a correction adds a new version.",
    )


class AmendNoteForm(FlaskForm):
    text = TextAreaField("Corrected text", validators=[DataRequired(), Length(max=MAX_TEXT)])
    reason = StringField(
        "Reason for the correction",
        validators=[DataRequired(message="Give the reason for the correction."), Length(max=2000)],
    )
