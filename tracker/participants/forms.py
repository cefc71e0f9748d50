"""Forms of the participant pages: they parse input into plain values; the services decide."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    Field,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from tracker.participants.models import SEX_VALUES
from tracker.protocol import (
    ChecklistItem,
    ItemKind,
    ProtocolDefinition,
    State,
    WithdrawalCategory,
)

MAX_TEXT = 2000
YES_NO = [SelectChoice("yes", "Yes"), SelectChoice("no", "No")]
ANY = ""
SIGNATURE_MEANING = "I confirm that I have reviewed this contraindication checklist and its outcome"


KIND_HELP = {
    ItemKind.EXCLUSION: "Exclusion item: yes makes the participant ineligible.",
    ItemKind.REVIEW: "Review item: yes needs an investigator's assessment.",
}


def state_label(state: str) -> str:
    return state.replace("_", " ")


def _in_study_years(_form: FlaskForm, field: Any) -> None:
    if field.data is not None and not 1900 <= field.data.year <= 2200:
        raise ValidationError("Give a date in the years 1900 to 2200.")


class ParticipantFilterForm(FlaskForm):
    """The list filters: read from the query string, so no CSRF token (nothing changes)."""

    class Meta:
        csrf = False

    state = SelectField(
        "State",
        choices=[SelectChoice(ANY, "Any state")]
        + [SelectChoice(s.value, state_label(s.value)) for s in State],
        validators=[Optional()],
    )
    site = SelectField("Site", choices=[], validators=[Optional()])
    q = StringField("Study id", validators=[Optional(), Length(max=32)])

    def set_site_choices(self, codes: list[str]) -> None:
        self.site.choices = [SelectChoice(ANY, "Any site")] + [
            SelectChoice(code, code) for code in codes
        ]


class _TherapistsMixin:
    therapists = SelectMultipleField(
        "Therapists",
        choices=[],
        description="The site's therapists who may see and record this participant's sessions. "
        "Hold Ctrl (or Cmd) to choose several.",
    )

    def set_therapist_choices(self, choices: list[tuple[str, str]]) -> None:
        self.therapists.choices = [SelectChoice(v, label) for v, label in choices]


# Choices of the childbearing-potential select: not recorded yet, yes, no.
CHILDBEARING_CHOICES = [
    SelectChoice("", "Not recorded yet (counts as yes)"),
    SelectChoice("yes", "Yes"),
    SelectChoice("no", "No"),
]
CHILDBEARING_HELP = (
    "For a participant who is not male. Until it is recorded as no, a negative pregnancy test "
    "is due before each dosing."
)


class EnrolForm(_TherapistsMixin, FlaskForm):
    site = SelectField(
        "Site", choices=[], description="Participants are enrolled at your own site."
    )
    sex = SelectField(
        "Sex",
        choices=[SelectChoice(ANY, "— choose —")]
        + [SelectChoice(v, v.capitalize()) for v in SEX_VALUES],
        validators=[DataRequired(message="Choose the participant's sex.")],
    )
    childbearing_potential = SelectField(
        "Of childbearing potential",
        choices=CHILDBEARING_CHOICES,
        validators=[Optional()],
        description=CHILDBEARING_HELP,
    )
    year_of_birth = IntegerField(
        "Year of birth",
        validators=[InputRequired(message="Give the year of birth (four digits).")],
        description="Adults only. No names or dates of birth are stored: the participant is "
        "known by a pseudonymous study id.",
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
    )


def childbearing_value(raw: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(raw or "")


class ChildbearingForm(FlaskForm):
    childbearing_potential = SelectField(
        "Of childbearing potential",
        choices=[SelectChoice("", "— choose —"), *CHILDBEARING_CHOICES[1:]],
        validators=[DataRequired(message="Choose yes or no.")],
        description=CHILDBEARING_HELP,
    )
    reason = TextAreaField(
        "Reason for the change",
        validators=[Optional(), Length(max=2000)],
        description="Required when a recorded value is changed.",
    )


class TherapistsForm(_TherapistsMixin, FlaskForm):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.therapists.label.text = "Change the assignment"


class ConsentForm(FlaskForm):
    document_version = StringField(
        "Consent document version",
        validators=[DataRequired(), Length(max=60)],
        description="As printed on the signed consent form, for example v2.1 2024-03-01.",
    )
    signed_on = DateField(
        "Date signed",
        validators=[
            InputRequired(message="Give the date the participant signed (YYYY-MM-DD)."),
            _in_study_years,
        ],
        default=lambda: datetime.now(UTC).date(),
    )


class AssessmentForm(FlaskForm):
    acceptable = RadioField(
        "Is this acceptable for the participant to take part?",
        choices=[SelectChoice("yes", "Acceptable"), SelectChoice("no", "Not acceptable")],
        validators=[InputRequired(message="Choose acceptable or not acceptable.")],
    )
    rationale = TextAreaField(
        "Rationale",
        validators=[DataRequired(message="A rationale is required."), Length(max=MAX_TEXT)],
    )


class SignatureForm(FlaskForm):
    password = PasswordField(
        "Your password",
        validators=[DataRequired(message="Enter your password to sign.")],
        description="Signing asks for your password again (21 CFR Part 11).",
        render_kw={"autocomplete": "current-password"},
    )
    meaning = TextAreaField(
        "Meaning of the signature",
        validators=[DataRequired(), Length(max=300)],
        default=SIGNATURE_MEANING,
    )


class TransitionForm(FlaskForm):
    """One form per offered transition (prefixed with its name)."""

    expected_version = HiddenField(validators=[DataRequired()])
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=MAX_TEXT)])
    withdrawal_category = SelectField(
        "Withdrawal category",
        choices=[SelectChoice(ANY, "— choose —")]
        + [SelectChoice(c.value, state_label(c.value).capitalize()) for c in WithdrawalCategory],
        validators=[Optional()],
    )
    override = BooleanField(
        "Override the overridable guards as investigator (recorded as a protocol deviation; "
        "give the reason above)"
    )

    def version(self) -> int | None:
        try:
            return int(self.expected_version.data or "")
        except ValueError:
            return None


# --- the checklist: one radio pair and one note per protocol item ---------------------------


def answer_field_name(code: str) -> str:
    return f"answer_{code}"


def note_field_name(code: str) -> str:
    return f"note_{code}"


class ChecklistForm(FlaskForm):
    """Built per protocol by ``checklist_form_class``; iterate with ``rows``."""

    definition: ProtocolDefinition

    def rows(self, category: str) -> list[tuple[ChecklistItem, Field, Field]]:
        return [
            (item, self[answer_field_name(item.code)], self[note_field_name(item.code)])
            for item in self.definition.items_in(category)
        ]

    def answers(self) -> dict[str, tuple[str, str | None]]:
        return {
            item.code: (
                self[answer_field_name(item.code)].data,
                self[note_field_name(item.code)].data,
            )
            for item in self.definition.checklist
        }

    def unanswered(self) -> list[ChecklistItem]:
        return [
            item for item in self.definition.checklist if self[answer_field_name(item.code)].errors
        ]


_CHECKLIST_FORMS: dict[str, type[ChecklistForm]] = {}


def checklist_form_class(definition: ProtocolDefinition) -> type[ChecklistForm]:
    """A form class with a required yes/no radio pair (no default) and a note per item."""
    key = definition.content_hash()
    if key not in _CHECKLIST_FORMS:
        attributes: dict[str, object] = {"definition": definition}
        for item in definition.checklist:
            attributes[answer_field_name(item.code)] = RadioField(
                item.question,
                choices=YES_NO,
                validators=[InputRequired(message="Answer yes or no.")],
                description=KIND_HELP[item.kind],
            )
            attributes[note_field_name(item.code)] = TextAreaField(
                "Note", validators=[Optional(), Length(max=MAX_TEXT)]
            )
        _CHECKLIST_FORMS[key] = type("ProtocolChecklistForm", (ChecklistForm,), attributes)
    return _CHECKLIST_FORMS[key]
