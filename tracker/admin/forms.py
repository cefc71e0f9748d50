from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from tracker.auth.forms import NewPasswordMixin
from tracker.protocol.roles import Role

ROLE_CHOICES = [SelectChoice(role.value, role.value.capitalize()) for role in Role]
NO_SITE = ""


class _RoleSiteMixin:
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[DataRequired()])
    site = SelectField(
        "Site",
        choices=[],
        validate_choice=True,
        description=(
            "Required for coordinators, therapists and investigators; none for auditors and admins."
        ),
    )

    def set_site_choices(self, sites: list[tuple[str, str]]) -> None:
        self.site.choices = [
            SelectChoice(NO_SITE, "— none (study-wide) —"),
            *(SelectChoice(code, label) for code, label in sites),
        ]


class UserCreateForm(NewPasswordMixin, _RoleSiteMixin, FlaskForm):
    username = StringField(
        "Username",
        validators=[DataRequired(), Length(min=3, max=64)],
        description="Lower-case letters, digits, '.', '_' or '-'.",
    )
    printed_name = StringField(
        "Printed name",
        validators=[DataRequired(), Length(max=200)],
        description="The name printed on this user's electronic signatures.",
    )
    email = StringField(
        "E-mail",
        validators=[Length(max=254)],
        description="Where safety notifications go (investigators); may be left empty.",
        render_kw={"type": "email", "autocomplete": "off"},
    )


class EmailForm(FlaskForm):
    email = StringField(
        "E-mail",
        validators=[Length(max=254)],
        description="Where this user's safety notifications go (investigators); empty: none.",
        render_kw={"type": "email", "autocomplete": "off"},
    )


class RoleChangeForm(_RoleSiteMixin, FlaskForm):
    reason = TextAreaField("Reason for the change", validators=[DataRequired(), Length(max=2000)])


class ActiveForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2000)])


class ResetPasswordForm(NewPasswordMixin, FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2000)])


class SiteCreateForm(FlaskForm):
    code = StringField(
        "Code", validators=[DataRequired(), Length(min=2, max=16)], description="For example S01."
    )
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    time_zone = StringField(
        "Time zone",
        default="UTC",
        validators=[DataRequired(), Length(max=64)],
        description="The IANA name of the zone the site works in, e.g. Europe/Berlin: its "
        "pages show and take times in it.",
    )


class SiteTimeZoneForm(FlaskForm):
    time_zone = StringField("Time zone", validators=[DataRequired(), Length(max=64)])


class ProtocolActivateForm(FlaskForm):
    protocol = SelectField(
        "Protocol file",
        choices=[],
        validators=[DataRequired(message="Choose a protocol file.")],
        description="New enrolments use it from now on; every participant keeps their version.",
    )
