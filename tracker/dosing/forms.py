"""Forms of the dosing records: they parse input into plain values; the services decide."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FloatField,
    IntegerField,
    SelectField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from tracker.form_fields import (
    MAX_TEXT,
    MultiCheckboxField,
    required_time,
)
from tracker.protocol import PLAUSIBLE_RANGES
from tracker.protocol.dosing import (
    SESSION_EFFECTS,
)


class VitalSignsForm(FlaskForm):
    measured_at = required_time("Measured at (UTC)", default_now=True)
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
    confirm_time = BooleanField("The time is right (more than a day after the start)")


class DoseForm(FlaskForm):
    administered_at = required_time("Administered at (UTC)", default_now=True)
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
    dispensing_id = SelectField(
        "Dispensing",
        choices=[],
        validate_choice=False,  # the service says which dispensings cover the dose
        validators=[Optional()],
        description="The dispensing of the product for this session that the dose comes from.",
    )
    confirm_time = BooleanField("The time is right (more than a day after the start)")
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
