"""The vital-signs chart of a dosing session, drawn on the server as SVG.

The same markup goes into the page and the PDF report. Only presentation attributes are used
(no style attributes or elements), so the strict Content-Security-Policy holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from tracker.protocol import ProtocolDefinition
from tracker.protocol.sessions import PLAUSIBLE_SPAN

WIDTH, HEIGHT = 860, 450
LEFT, RIGHT, TOP = 56, 110, 30
MAIN_BOTTOM = 270  # the mmHg / bpm panel
TEMP_TOP, TEMP_BOTTOM = 305, 385  # the temperature panel
MAIN_RANGE = (40.0, 200.0)
TEMP_RANGE = (35.0, 40.0)

SERIES = (
    # key, label, colour, dash, panel
    ("systolic", "Systolic (mmHg)", "#b3261e", "", "main"),
    ("diastolic", "Diastolic (mmHg)", "#1f5fa8", "", "main"),
    ("heart_rate", "Heart rate (bpm)", "#2e7d32", "", "main"),
    ("temperature_c", "Temperature (°C)", "#8a4f00", "", "temp"),
)


@dataclass(frozen=True)
class ChartReading:
    measured_at: datetime
    systolic: int
    diastolic: int
    heart_rate: int
    temperature_c: float
    alert_signs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChartDose:
    administered_at: datetime
    amount_mg: int
    kind: str


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def render_vitals_chart(
    readings: Sequence[ChartReading],
    doses: Sequence[ChartDose],
    protocol: ProtocolDefinition,
    *,
    start: datetime,
    end: datetime | None,
    title: str = "Vital signs",
) -> str:
    """SVG markup: time on the x axis (hours from the session start), the four signs, the
    alert thresholds as dashed lines, alerts circled, doses as vertical markers."""
    # A record made days after the start (its time confirmed as right) would squeeze the
    # session into a sliver of the axis: the chart shows the first day, the table all of it.
    window_end = start + PLAUSIBLE_SPAN
    later = sum(1 for r in readings if r.measured_at > window_end) + sum(
        1 for d in doses if d.administered_at > window_end
    )
    readings = [r for r in readings if r.measured_at <= window_end]
    doses = [d for d in doses if d.administered_at <= window_end]
    moments = [r.measured_at for r in readings] + [d.administered_at for d in doses]
    last = max([min(end, window_end) if end else start, *moments]) if moments or end else start
    span_hours = max(1.0, (last - start).total_seconds() / 3600)
    span_hours = float(int(span_hours) + 1) if span_hours != int(span_hours) else span_hours
    plot_right = WIDTH - RIGHT

    def x(moment: datetime) -> float:
        hours = (moment - start).total_seconds() / 3600
        return LEFT + (plot_right - LEFT) * hours / span_hours

    def y_main(value: float) -> float:
        low, high = MAIN_RANGE
        value = min(max(value, low), high)
        return MAIN_BOTTOM - (MAIN_BOTTOM - TOP) * (value - low) / (high - low)

    def y_temp(value: float) -> float:
        low, high = TEMP_RANGE
        value = min(max(value, low), high)
        return TEMP_BOTTOM - (TEMP_BOTTOM - TEMP_TOP) * (value - low) / (high - low)

    limits = protocol.vital_signs.alert_thresholds
    # Ids unique to this chart: a page or a PDF part shows several, and each one's
    # aria-labelledby must name its own title and description.
    key = hashlib.sha256(f"{title}|{start.isoformat()}".encode()).hexdigest()[:12]
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-labelledby="chart-{key}-title chart-{key}-desc" class="vitals-chart" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="chart-{key}-title">{escape(title)}</title>',
        f'<desc id="chart-{key}-desc">{len(readings)} readings over {span_hours:g} hours'
        + (f" ({later} later than a day after the start are in the table only)" if later else "")
        + "; dashed lines are "
        f"the alert thresholds (systolic {limits.systolic_mmhg}, diastolic {limits.diastolic_mmhg}, "
        f"heart rate {limits.heart_rate_bpm}, temperature {_fmt(limits.temperature_c)}).</desc>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
    ]
    # Grid and axes.
    for value in range(40, 201, 20):
        yy = y_main(value)
        parts.append(
            f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{plot_right}" y2="{yy:.1f}" stroke="#e3e7ec"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#3d4753">{value}</text>'
        )
    # The top line (40 °C) is drawn but not labelled: it would sit on the panel above's 40.
    for value in (35, 36, 37, 38, 39, 40):
        yy = y_temp(value)
        parts.append(
            f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{plot_right}" y2="{yy:.1f}" stroke="#e3e7ec"/>'
        )
        if value < TEMP_RANGE[1]:
            parts.append(
                f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#3d4753">{value}</text>'
            )
    for hour in range(int(span_hours) + 1):
        xx = LEFT + (plot_right - LEFT) * hour / span_hours
        parts.append(
            f'<line x1="{xx:.1f}" y1="{TOP}" x2="{xx:.1f}" y2="{TEMP_BOTTOM}" stroke="#f0f2f5"/>'
        )
        parts.append(
            f'<text x="{xx:.1f}" y="{TEMP_BOTTOM + 16}" text-anchor="middle" fill="#3d4753">{hour} h</text>'
        )
    parts.append(
        f'<text x="{(LEFT + plot_right) / 2:.0f}" y="{TEMP_BOTTOM + 34}" text-anchor="middle" fill="#3d4753">'
        f"Hours from the start of the session ({start:%Y-%m-%d %H:%M} UTC)</text>"
    )
    parts.append(
        f'<text x="14" y="{(TOP + MAIN_BOTTOM) / 2:.0f}" fill="#3d4753" '
        f'transform="rotate(-90 14 {(TOP + MAIN_BOTTOM) / 2:.0f})" text-anchor="middle">mmHg / bpm</text>'
    )
    parts.append(
        f'<text x="14" y="{(TEMP_TOP + TEMP_BOTTOM) / 2:.0f}" fill="#3d4753" '
        f'transform="rotate(-90 14 {(TEMP_TOP + TEMP_BOTTOM) / 2:.0f})" text-anchor="middle">°C</text>'
    )
    # Thresholds: one dashed line a sign; equal thresholds share one label.
    short = {"systolic": "sys", "diastolic": "dia", "heart_rate": "HR", "temperature_c": "T"}
    values = {
        "systolic": float(limits.systolic_mmhg),
        "diastolic": float(limits.diastolic_mmhg),
        "heart_rate": float(limits.heart_rate_bpm),
        "temperature_c": float(limits.temperature_c),
    }
    labels: dict[tuple[str, float], list[tuple[str, str]]] = {}
    for key, _label, colour, _, panel in SERIES:
        yy = y_main(values[key]) if panel == "main" else y_temp(values[key])
        parts.append(
            f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{plot_right}" y2="{yy:.1f}" stroke="{colour}" '
            f'stroke-width="1.2" stroke-dasharray="6 4" class="threshold" data-sign="{key}"/>'
        )
        labels.setdefault((panel, values[key]), []).append((short[key], colour))
    for (panel, level), names in labels.items():
        yy = y_main(level) if panel == "main" else y_temp(level)
        text = ", ".join(name for name, _ in names)
        parts.append(
            f'<text x="{plot_right + 4}" y="{yy + 4:.1f}" fill="{names[0][1]}">{escape(text)} ≥ {_fmt(level)}</text>'
        )
    # Doses.
    for dose in doses:
        xx = x(dose.administered_at)
        parts.append(
            f'<line x1="{xx:.1f}" y1="{TOP}" x2="{xx:.1f}" y2="{TEMP_BOTTOM}" stroke="#5b2a86" '
            f'stroke-width="1.5" class="dose"/>'
        )
        parts.append(
            f'<text x="{xx + 3:.1f}" y="{TOP - 6}" fill="#5b2a86">{escape(dose.kind)} {dose.amount_mg} mg</text>'
        )
    # Series.
    ordered = sorted(readings, key=lambda r: r.measured_at)
    for key, _label, colour, _dash, panel in SERIES:
        scale = y_main if panel == "main" else y_temp
        points = " ".join(
            f"{x(r.measured_at):.1f},{scale(float(getattr(r, key))):.1f}" for r in ordered
        )
        if len(ordered) > 1:
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" '
                f'class="series" data-sign="{key}"/>'
            )
        for reading in ordered:
            cx, cy = x(reading.measured_at), scale(float(getattr(reading, key)))
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colour}"/>')
            if key in reading.alert_signs:
                parts.append(
                    f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="8" fill="none" stroke="#b3261e" '
                    f'stroke-width="2.5" class="alert-marker"><title>Alert: {escape(key)} '
                    f"{_fmt(float(getattr(reading, key)))} at {reading.measured_at:%H:%M}</title></circle>"
                )
    # Legend.
    legend_x = LEFT
    for _key, label, colour, _dash, _panel in SERIES:
        parts.append(
            f'<rect x="{legend_x}" y="{HEIGHT - 16}" width="14" height="4" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{legend_x + 18}" y="{HEIGHT - 10}" fill="#1d2430">{escape(label)}</text>'
        )
        legend_x += 150
    parts.append(
        f'<circle cx="{legend_x + 6}" cy="{HEIGHT - 14}" r="6" fill="none" stroke="#b3261e" stroke-width="2"/>'
        f'<text x="{legend_x + 16}" y="{HEIGHT - 10}" fill="#1d2430">alert</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
