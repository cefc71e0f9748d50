"""Form fields every feature's forms share. A time is entered in the site's time, 24-hour
(``YYYY-MM-DD HH:MM``), and read as an aware moment, converted to UTC (``tracker.site_time``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from wtforms import RadioField, SelectMultipleField
from wtforms.fields import DateTimeLocalField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Optional
from wtforms.widgets import CheckboxInput, ListWidget, TextInput

from tracker.db import utcnow
from tracker.site_time import viewer_zone, zone_label

MAX_TEXT = 5000


YES_NO = [SelectChoice("yes", "Yes"), SelectChoice("no", "No")]


TIME_FORMAT = "%Y-%m-%dT%H:%M"


def label_of(value: str) -> str:
    return value.replace("_", " ").capitalize()


def now_minute() -> datetime:
    """The clock's now, to the minute (what a ``datetime-local`` input shows)."""
    return utcnow().replace(second=0, microsecond=0)


class UTCDateTimeField(DateTimeLocalField):
    """A 24-hour ``YYYY-MM-DD HH:MM`` text input in the site's time (a ``datetime-local``
    input follows the browser's 12-hour clock in some locales); the value is an aware moment
    in UTC. The label names the zone: "Administered at (UTC)" at a UTC site, "Administered
    at (Europe/Berlin, UTC+01:00)" at a site in Berlin."""

    data: datetime | None
    widget = TextInput()

    def __init__(self, label: str, **kwargs: Any) -> None:
        kwargs.setdefault("format", ["%Y-%m-%d %H:%M", TIME_FORMAT, "%Y-%m-%dT%H:%M:%S"])
        self.zone = viewer_zone()
        base = label.removesuffix(" (UTC)")
        render_kw = {
            "placeholder": "YYYY-MM-DD HH:MM",
            "pattern": r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?",
            "autocomplete": "off",
            "class": "when",
            **(kwargs.pop("render_kw", None) or {}),
        }
        super().__init__(f"{base} ({zone_label(self.zone)})", render_kw=render_kw, **kwargs)

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        value = self.data
        if value is not None and value.tzinfo is None:
            typed = value
            value = self.data = value.replace(tzinfo=self.zone).astimezone(UTC)
            if value.astimezone(self.zone).replace(tzinfo=None) != typed:
                self.data = None
                raise ValueError(
                    f"{typed:%Y-%m-%d %H:%M} does not exist in {self.zone}: the clocks "
                    "moved forward then. Give the time again."
                )
        if value is not None and not 1900 <= value.year <= 2200:
            self.data = None
            raise ValueError("Give a time in the years 1900 to 2200.")

    def _value(self) -> str:
        if self.raw_data:
            return " ".join(self.raw_data)
        value = self.data
        if value is None:
            return ""
        return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")


class MultiCheckboxField(SelectMultipleField):
    """Several choices as checkboxes; the field macro renders it as a fieldset."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def required_time(label: str, *, default_now: bool = False) -> UTCDateTimeField:
    return UTCDateTimeField(
        label,
        validators=[InputRequired(message="Give the date and time (YYYY-MM-DD HH:MM).")],
        default=now_minute if default_now else None,
    )


def optional_time(label: str, description: str = "") -> UTCDateTimeField:
    return UTCDateTimeField(label, validators=[Optional()], description=description)


def yes_no(label: str) -> RadioField:
    return RadioField(
        label, choices=YES_NO, validators=[InputRequired(message="Answer yes or no.")]
    )
