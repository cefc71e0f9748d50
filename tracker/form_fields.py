"""Form fields every feature's forms share. Every time is entered in UTC (a ``datetime-local``
input is naive: UTC is attached)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from wtforms import RadioField, SelectMultipleField
from wtforms.fields import DateTimeLocalField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from tracker.db import utcnow

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


def required_time(label: str, *, default_now: bool = False) -> UTCDateTimeField:
    return UTCDateTimeField(
        label,
        validators=[InputRequired(message="Give the date and time (UTC).")],
        default=now_minute if default_now else None,
    )


def optional_time(label: str, description: str = "") -> UTCDateTimeField:
    return UTCDateTimeField(label, validators=[Optional()], description=description)


def yes_no(label: str) -> RadioField:
    return RadioField(
        label, choices=YES_NO, validators=[InputRequired(message="Answer yes or no.")]
    )
