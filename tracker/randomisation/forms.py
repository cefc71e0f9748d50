"""The randomisation forms: randomise (decided on the version the page showed) and the
emergency unblinding, which asks for the investigator's password and a reason."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length


class RandomiseForm(FlaskForm):
    expected_version = HiddenField()


class UnblindForm(FlaskForm):
    reason = TextAreaField(
        "Why the arm must be known now",
        validators=[InputRequired(message="Give the reason."), Length(max=2000)],
        description="On record with your name, shown on the participant page and in every "
        "compliance report (C18).",
    )
    password = PasswordField(
        "Your password",
        validators=[InputRequired(message="Enter your password.")],
        description="As for a signature: the arm is shown to you alone.",
    )


class GuessForm(FlaskForm):
    """A blinding-integrity guess; the choices are set by the page from the protocol's arms,
    the respondents the user may record for and the participant's completed dosing sessions."""

    respondent = SelectField("Whose guess", choices=[], validators=[InputRequired()])
    occasion = SelectField(
        "After",
        choices=[],
        validators=[InputRequired(message="Choose the session or the primary endpoint.")],
    )
    guess = SelectField("Guess", choices=[], validators=[InputRequired(message="Choose a guess.")])
    confidence = SelectField(
        "Confidence",
        choices=[
            SelectChoice(str(v), label)
            for v, label in (
                (1, "1 (not at all sure)"),
                (2, "2"),
                (3, "3"),
                (4, "4"),
                (5, "5 (certain)"),
            )
        ],
        validators=[InputRequired()],
    )
