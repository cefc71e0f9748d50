"""The score trajectory of one instrument, drawn on the server as SVG: the severity bands as
shaded strips, the protocol's timepoints along the bottom, the participant's totals joined by
a line. Only presentation attributes are used (no style), so the strict CSP holds, and the
same markup can go into a PDF."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from tracker.protocol import ProtocolDefinition
from tracker.protocol.outcomes import Instrument

WIDTH, HEIGHT = 860, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 250, 24, 236
BAND_FILLS = ("#e8f3ea", "#f4f1dc", "#f8e6d2", "#f6dcdc", "#ecd6e6")


_CHART_IDS = itertools.count(1)


@dataclass(frozen=True)
class ChartPoint:
    timepoint: str  # its code, placing the point on the axis
    total: int


def render_score_chart(
    instrument: Instrument,
    timepoints: Sequence[tuple[str, str]],
    points: Sequence[ChartPoint],
    *,
    primary_timepoint: str | None = None,
) -> str:
    """``timepoints`` are (code, short title) in protocol order."""
    high = max(instrument.maximum_total, 1)
    plot_width = WIDTH - LEFT - RIGHT
    step = plot_width / max(len(timepoints) - 1, 1)
    x_of = {code: LEFT + index * step for index, (code, _) in enumerate(timepoints)}

    def y(total: float) -> float:
        return BOTTOM - (BOTTOM - TOP) * total / high

    title = f"{instrument.title}: total score by timepoint"
    # A page or a report holds many charts: each title's id is its own.
    title_id = f"score-title-{instrument.code}-{next(_CHART_IDS)}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{title_id}" class="chart">',
        f'<title id="{title_id}">{escape(title)}</title>',
    ]
    for index, band in enumerate(instrument.bands):
        top, bottom = y(band.maximum + 1 if band.maximum < high else high), y(band.minimum)
        fill = BAND_FILLS[index % len(BAND_FILLS)]
        parts.append(
            f'<rect x="{LEFT}" y="{top:.1f}" width="{plot_width}" height="{bottom - top:.1f}" '
            f'fill="{fill}"/>'
        )
        parts.append(
            f'<text x="{WIDTH - RIGHT + 8}" y="{(top + bottom) / 2 + 4:.1f}" font-size="11" '
            f'fill="#444">{escape(band.label)} ({band.minimum}-{band.maximum})</text>'
        )
    for tick in range(0, high + 1, max(1, high // 6)):
        parts.append(
            f'<line x1="{LEFT - 4}" x2="{LEFT + plot_width}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}" stroke="#ccc" stroke-width="0.5"/>'
            f'<text x="{LEFT - 8}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#333">{tick}</text>'
        )
    for code, label in timepoints:
        x = x_of[code]
        weight = ' font-weight="bold"' if code == primary_timepoint else ""
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{BOTTOM}" stroke="#ddd"/>'
            f'<text x="{x:.1f}" y="{BOTTOM + 16}" font-size="11" text-anchor="middle" '
            f'fill="#333"{weight}>{escape(label)}</text>'
        )
    placed = [(x_of[p.timepoint], y(p.total), p.total) for p in points if p.timepoint in x_of]
    placed.sort()
    if len(placed) > 1:
        path = " ".join(f"{x:.1f},{yy:.1f}" for x, yy, _ in placed)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#1f5fa8" stroke-width="2"/>')
    for x, yy, total in placed:
        parts.append(
            f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="4" fill="#1f5fa8"/>'
            f'<text x="{x:.1f}" y="{yy - 8:.1f}" font-size="11" text-anchor="middle" '
            f'fill="#1f5fa8">{total}</text>'
        )
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 20}" font-size="11" fill="#555">Total score '
        f"(0 to {high}); the primary timepoint in bold.</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def trajectory_charts(
    protocol: ProtocolDefinition, totals: Sequence[tuple[str, str, int]]
) -> list[tuple[Instrument, str]]:
    """One chart per instrument among ``totals`` (instrument, timepoint, total), the primary
    instrument first: for the outcomes page and the report's participant section alike."""
    rules = protocol.outcomes
    primary = rules.primary_instrument if rules else None
    codes = sorted({code for code, _, _ in totals}, key=lambda c: (c != primary, c))
    charts = []
    for code in codes:
        instrument = protocol.instrument(code)
        axis = [
            (t.code, t.code.replace("_", " ")) for t in protocol.timepoints if code in t.instruments
        ]
        points = [ChartPoint(point, total) for c, point, total in totals if c == code]
        svg = render_score_chart(
            instrument, axis, points, primary_timepoint=rules.primary_timepoint if rules else None
        )
        charts.append((instrument, svg))
    return charts
