"""Forms of the drug ledger: they parse input into plain values; the services decide."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    FloatField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from tracker.form_fields import MAX_TEXT, required_time


class LotForm(FlaskForm):
    product = StringField(
        "Product",
        validators=[InputRequired(message="Name the product."), Length(max=200)],
        description="As labelled, e.g. midomafetamine 20 mg capsules",
    )
    lot = StringField("Lot number", validators=[InputRequired(), Length(max=60)])
    strength_mg = FloatField(
        "Strength per unit (mg)",
        validators=[InputRequired(), NumberRange(min=0.01, max=10_000)],
        description="For a matched placebo, the strength of the capsule it matches",
        render_kw={"inputmode": "decimal"},
    )
    expires_on = DateField("Expires on", validators=[InputRequired()])
    arm = SelectField("Arm (blinded product)", choices=[], validators=[Optional()])
    storage = SelectField("Storage location", choices=[], validators=[Optional()])


class RegistrationForm(FlaskForm):
    number = StringField(
        "DEA registration number",
        validators=[InputRequired(), Length(max=20)],
        description="Two letters and seven digits",
    )
    registrant = StringField("Registrant", validators=[InputRequired(), Length(max=200)])
    expires_on = DateField("Expires on", validators=[InputRequired()])


class StorageForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=120)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=MAX_TEXT)])


class EntryForm(FlaskForm):
    """One form for every kind; the page shows each kind the fields it takes."""

    kind = HiddenField()
    occurred_at = required_time("When (UTC)", default_now=True)
    units = IntegerField(
        "Units",
        validators=[Optional(), NumberRange(0, 1_000_000)],
        render_kw={"inputmode": "numeric"},
    )
    supplier = StringField("Supplier", validators=[Optional(), Length(max=200)])
    dea_form_222 = StringField("DEA Form 222 number", validators=[Optional(), Length(max=40)])
    witness = StringField("Witness (username)", validators=[Optional(), Length(max=80)])
    session_id = SelectField("Dosing session", choices=[], validators=[Optional()])
    dispensing_id = SelectField("Dispensing", choices=[], validators=[Optional()])
    dea_form_41 = StringField("DEA Form 41 reference", validators=[Optional(), Length(max=40)])
    witness_1 = StringField("First witness (username)", validators=[Optional(), Length(max=80)])
    password_1 = PasswordField("First witness's password", validators=[Optional()])
    witness_2 = StringField("Second witness (username)", validators=[Optional(), Length(max=80)])
    password_2 = PasswordField("Second witness's password", validators=[Optional()])
    description = TextAreaField(
        "What was lost and how it was found", validators=[Optional(), Length(max=MAX_TEXT)]
    )
    counted_units = IntegerField(
        "Units counted",
        validators=[Optional(), NumberRange(0, 1_000_000)],
        render_kw={"inputmode": "numeric"},
    )
    explanation = TextAreaField(
        "Explanation of a difference", validators=[Optional(), Length(max=MAX_TEXT)]
    )
    reverses = SelectField("Entry to reverse", choices=[], validators=[Optional()])
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=MAX_TEXT)])


class LossReportForm(FlaskForm):
    report = SelectField(
        "Report",
        choices=[
            SelectChoice("initial_notice", "Initial notice"),
            SelectChoice("dea_form_106", "DEA Form 106"),
        ],
    )
    reference = StringField("Reference", validators=[InputRequired(), Length(max=80)])
    reported_at = required_time("Sent at (UTC)", default_now=True)


class ExplanationForm(FlaskForm):
    explanation = TextAreaField(
        "Why the count differed", validators=[InputRequired(), Length(max=MAX_TEXT)]
    )
