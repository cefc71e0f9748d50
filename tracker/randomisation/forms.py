"""The randomisation forms: randomise (decided on the version the page showed) and the
emergency unblinding, which asks for the investigator's password and a reason."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, TextAreaField
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
