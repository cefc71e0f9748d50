"""The protocol as data: settings and the contraindication checklist (SPEC §2).

A ``ProtocolDefinition`` is what ``load_protocol`` builds from a TOML file; it is immutable so a
participant's rules cannot change under them once enrolled under a version.
"""

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum

from tracker.protocol.outcomes import Instrument, OutcomeRules, Timepoint
from tracker.protocol.randomisation import RandomisationDesign


class ItemKind(StrEnum):
    """How a checklist item answered yes affects eligibility."""

    EXCLUSION = "exclusion"
    REVIEW = "review"


@dataclass(frozen=True)
class ChecklistCategory:
    """A group of checklist items, e.g. ``cardiovascular`` titled "Cardiovascular risk"."""

    code: str
    title: str


@dataclass(frozen=True)
class ChecklistItem:
    """One contraindication question; ``question`` reads as a statement answered yes or no."""

    code: str
    category: str
    question: str
    kind: ItemKind


@dataclass(frozen=True)
class Schedule:
    """How many sessions of each kind the protocol asks for, and when."""

    preparation_sessions: int
    dosing_cycles: int
    integration_sessions_per_cycle: int
    first_integration_within_hours: int
    dosing_interval_min_days: int
    dosing_interval_max_days: int


@dataclass(frozen=True)
class DosingRules:
    """Doses, their timing, and what a dosing session needs around it."""

    initial_doses_mg: tuple[int, ...]
    supplemental_fraction: float
    supplemental_window_min_minutes: int
    supplemental_window_max_minutes: int
    max_per_session_mg: int
    monitoring_min_hours: float
    therapists_present: int
    overnight_stay_required: bool
    pregnancy_test_within_hours: int

    def supplemental_dose_mg(self, initial_dose_mg: int) -> float:
        """Return the supplemental dose for ``initial_dose_mg`` (its supplemental fraction)."""
        return initial_dose_mg * self.supplemental_fraction

    @property
    def supplemental_share(self) -> str:
        """The supplemental fraction in words, for messages and pages ("half", "60%")."""
        named = {0.5: "half", 0.25: "a quarter", 1.0: "all"}
        return named.get(self.supplemental_fraction, f"{self.supplemental_fraction:.0%}")


@dataclass(frozen=True)
class AlertThresholds:
    """A vital-sign reading at or above any of these raises an alert."""

    systolic_mmhg: int
    diastolic_mmhg: int
    heart_rate_bpm: int
    temperature_c: float


@dataclass(frozen=True)
class VitalSignRules:
    """When vital signs must be taken during a dosing session, and when they alarm."""

    baseline_within_minutes: int
    max_gap_minutes: int
    alert_thresholds: AlertThresholds


@dataclass(frozen=True)
class ProtocolDefinition:
    """A versioned protocol: every setting of SPEC §2 and the contraindication checklist."""

    code: str
    version: str
    title: str
    schedule: Schedule
    dosing: DosingRules
    vital_signs: VitalSignRules
    overridable_guards: frozenset[str]
    categories: tuple[ChecklistCategory, ...]
    checklist: tuple[ChecklistItem, ...]
    # Outcome measures (SPEC §10); a protocol without them records no assessments.
    instruments: tuple[Instrument, ...] = ()
    timepoints: tuple[Timepoint, ...] = ()
    outcomes: OutcomeRules | None = None
    # Randomisation (SPEC §11); a protocol without it allocates no arms.
    randomisation: RandomisationDesign | None = None

    def instrument(self, code: str) -> Instrument:
        """Return the instrument ``code``; ``KeyError`` if the protocol has none."""
        for instrument in self.instruments:
            if instrument.code == code:
                return instrument
        raise KeyError(code)

    def timepoint(self, code: str) -> Timepoint:
        """Return the timepoint ``code``; ``KeyError`` if the protocol has none."""
        for timepoint in self.timepoints:
            if timepoint.code == code:
                return timepoint
        raise KeyError(code)

    @property
    def has_follow_up(self) -> bool:
        """Whether the protocol follows participants up after the last dosing (SPEC §10)."""
        return any(timepoint.follow_up for timepoint in self.timepoints)

    def is_overridable(self, guard_code: str) -> bool:
        """Say whether this protocol lets an investigator override the guard ``guard_code``."""
        return guard_code in self.overridable_guards

    def category(self, code: str) -> ChecklistCategory:
        """Return the checklist category ``code``; ``KeyError`` if the protocol has none."""
        for category in self.categories:
            if category.code == code:
                return category
        raise KeyError(code)

    def items_in(self, category_code: str) -> tuple[ChecklistItem, ...]:
        """Return the checklist items of one category, in protocol order."""
        return tuple(item for item in self.checklist if item.category == category_code)

    def item(self, code: str) -> ChecklistItem:
        """Return the checklist item ``code``; ``KeyError`` if the protocol has none."""
        for item in self.checklist:
            if item.code == code:
                return item
        raise KeyError(code)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-able form laid out like the TOML file (``GET /api/v1/protocol``)."""
        schedule = self.schedule
        dosing = self.dosing
        vitals = self.vital_signs
        thresholds = vitals.alert_thresholds
        return {
            "protocol": {"code": self.code, "version": self.version, "title": self.title},
            "schedule": {
                "preparation_sessions": schedule.preparation_sessions,
                "dosing_cycles": schedule.dosing_cycles,
                "integration_sessions_per_cycle": schedule.integration_sessions_per_cycle,
                "first_integration_within_hours": schedule.first_integration_within_hours,
                "dosing_interval_min_days": schedule.dosing_interval_min_days,
                "dosing_interval_max_days": schedule.dosing_interval_max_days,
            },
            "dosing": {
                "initial_doses_mg": list(dosing.initial_doses_mg),
                "supplemental_fraction": dosing.supplemental_fraction,
                "supplemental_window_min_minutes": dosing.supplemental_window_min_minutes,
                "supplemental_window_max_minutes": dosing.supplemental_window_max_minutes,
                "max_per_session_mg": dosing.max_per_session_mg,
                "monitoring_min_hours": dosing.monitoring_min_hours,
                "therapists_present": dosing.therapists_present,
                "overnight_stay_required": dosing.overnight_stay_required,
                "pregnancy_test_within_hours": dosing.pregnancy_test_within_hours,
            },
            "vital_signs": {
                "baseline_within_minutes": vitals.baseline_within_minutes,
                "max_gap_minutes": vitals.max_gap_minutes,
                "alert_thresholds": {
                    "systolic_mmhg": thresholds.systolic_mmhg,
                    "diastolic_mmhg": thresholds.diastolic_mmhg,
                    "heart_rate_bpm": thresholds.heart_rate_bpm,
                    "temperature_c": thresholds.temperature_c,
                },
            },
            # Sorted so the hash does not depend on set iteration order.
            "overrides": {"guards": sorted(self.overridable_guards)},
            "checklist": {
                "categories": [
                    {"code": category.code, "title": category.title} for category in self.categories
                ],
                "items": [
                    {
                        "code": item.code,
                        "category": item.category,
                        "question": item.question,
                        "kind": str(item.kind),
                    }
                    for item in self.checklist
                ],
            },
            # Only a protocol with outcome measures has these keys, so the content hash of
            # a protocol without them is what it was before they existed.
            **self._outcomes_dict(),
            **self._randomisation_dict(),
        }

    def _randomisation_dict(self) -> dict[str, object]:
        design = self.randomisation
        if design is None:
            return {}
        return {
            "randomisation": {
                "arms": [{"code": a.code, "label": a.label, "ratio": a.ratio} for a in design.arms],
                "strata": [f.value for f in design.strata],
                "block_sizes": list(design.block_sizes),
            }
        }

    def _outcomes_dict(self) -> dict[str, object]:
        if not self.instruments:
            return {}
        result: dict[str, object] = {
            "instruments": [_instrument_dict(i) for i in self.instruments],
            "timepoints": [_timepoint_dict(t) for t in self.timepoints],
        }
        if self.outcomes is not None:
            rules = self.outcomes
            result["outcomes"] = {
                "primary_instrument": rules.primary_instrument,
                "baseline_timepoint": rules.baseline_timepoint,
                "primary_timepoint": rules.primary_timepoint,
                "response_reduction": rules.response_reduction,
                **(
                    {"remission_max_total": rules.remission_max_total}
                    if rules.remission_max_total is not None
                    else {}
                ),
            }
        return result

    def content_hash(self) -> str:
        """Return the SHA-256 hex digest of the canonical JSON of ``to_dict()``.

        Formatting and comments in the TOML file do not change it; any setting or item does, so
        a file edited without a new version number can be detected.
        """
        canonical = json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _instrument_dict(instrument: Instrument) -> dict[str, object]:
    return {
        "code": instrument.code,
        "title": instrument.title,
        "kind": str(instrument.kind),
        "licensed": instrument.licensed,
        "scoring": str(instrument.scoring),
        "minimum_total": instrument.minimum_total,
        "maximum_total": instrument.maximum_total,
        "items": [
            {
                "code": item.code,
                "label": item.label,
                "min": item.minimum,
                "max": item.maximum,
                **({"text": item.text} if item.text is not None else {}),
            }
            for item in instrument.items
        ],
        "subscales": [
            {"code": s.code, "title": s.title, "items": list(s.items)} for s in instrument.subscales
        ],
        "bands": [{"min": b.minimum, "max": b.maximum, "label": b.label} for b in instrument.bands],
    }


def _timepoint_dict(timepoint: Timepoint) -> dict[str, object]:
    return {
        "code": timepoint.code,
        "title": timepoint.title,
        "instruments": list(timepoint.instruments),
        "anchor": str(timepoint.anchor),
        **({"cycle": timepoint.cycle} if timepoint.cycle is not None else {}),
        "offset_days": timepoint.offset_days,
        "window_before_days": timepoint.window_before_days,
        "window_after_days": timepoint.window_after_days,
        "follow_up": timepoint.follow_up,
    }
