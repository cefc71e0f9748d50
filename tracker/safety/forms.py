"""Forms of the safety records: they parse input into plain values; the services decide."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from tracker.form_fields import (
    MAX_TEXT,
    MultiCheckboxField,
    label_of,
    optional_time,
    required_time,
    yes_no,
)
from tracker.protocol.dosing import (
    AdverseEventOutcome,
    Relatedness,
    SeriousCriterion,
    Severity,
)


class SuicidalityScreenForm(FlaskForm):
    screened_at = required_time("Screened at (UTC)", default_now=True)
    ideation = yes_no("Suicidal ideation")
    intent = yes_no("Intent")
    plan = yes_no("Plan")
    behaviour = yes_no("Suicidal behaviour")


class PregnancyTestForm(FlaskForm):
    tested_at = required_time("Tested at (UTC)", default_now=True)
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
    onset_at = required_time("Onset (UTC)", default_now=True)
    resolved_at = optional_time("Resolved (UTC)", "Blank while it lasts.")


class AdverseEventForm(FlaskForm):
    term = StringField("Term", validators=[DataRequired(), Length(max=200)])
    grade = SelectField(
        "CTCAE grade",
        choices=[SelectChoice("", "— choose —")]
        + [SelectChoice(str(g), f"Grade {g}") for g in range(1, 6)],
        validators=[DataRequired(message="Choose the grade.")],
    )
    onset_at = required_time("Onset (UTC)", default_now=True)
    aware_at = optional_time(
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
    resolved_at = optional_time("Resolved at (UTC)")
    reported_at = optional_time(
        "Reported at (UTC)", "Serious events: when the expedited report was sent."
    )
