"""The compliance report's pages, laid out by Typst.

The report objects become a plain document: a list of blocks (a heading, a paragraph, a table,
a chart, a signature box), every text a string. The document goes to the Typst template
``templates/reports/compliance.typ`` as JSON, which the template reads with ``json()`` and
places as text: what a user typed is never read as Typst markup, whatever characters it
holds. A chart is the same SVG as the pages show, which Typst draws from its bytes.

Each document (the front matter, a part of the participant detail) is laid out by a process
of its own (``typst_worker``) while this one reads the next part: Typst keeps what it memoised
for the life of its process, so a process a part keeps memory that of one part whatever the
report's size, and the two processes use two cores. The fonts are the DejaVu files of the
machine (Debian's fonts-dejavu-core), the same faces the WeasyPrint documents use, never the
fonts bundled with Typst.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tracker.paths import TEMPLATES
from tracker.reports.accountability import LotResult
from tracker.reports.blinding import BlindingSection
from tracker.reports.compliance import (
    Deviation,
    ParticipantResult,
    ReportHeader,
    RetentionRow,
    SafetyItems,
    Summary,
)
from tracker.reports.outcomes import OutcomeRow

TEMPLATE = TEMPLATES / "reports" / "compliance.typ"

FONT_DIRECTORIES = (
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian, Ubuntu
    Path("/usr/share/fonts/dejavu-sans-fonts"),  # Fedora
    Path("/usr/share/fonts/TTF"),  # Arch
)
"""Where the DejaVu faces may be; the first that holds DejaVuSans.ttf is used."""

Block = dict[str, Any]
Cell = str | dict[str, str]


def _dash(value: str | None) -> str:
    return "—" if value is None else value


def _moment(moment: datetime, seconds: bool = False) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _styled(text: str, style: str) -> Cell:
    return {"text": text, "style": style} if style else text


def _heading(
    text: str,
    level: int,
    *,
    bookmark: bool = True,
    new_page: bool = False,
    title_page: bool = False,
) -> Block:
    return {
        "kind": "heading",
        "text": text,
        "level": level,
        "bookmark": bookmark,
        "new_page": new_page,
        "title_page": title_page,
    }


def _paragraph(text: str, style: str = "") -> Block:
    return {"kind": "paragraph", "body": _styled(text, style)}


def _table(
    head: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    widths: Sequence[str],
    *,
    right: Sequence[int] = (),
    width: str = "100%",
) -> Block:
    """A table: its header (repeated on each page it runs over), rows of cells, the column
    widths ("auto", "1fr", "12mm") and the columns set flush right."""
    return {
        "kind": "table",
        "head": list(head),
        "rows": [list(row) for row in rows],
        "widths": list(widths),
        "right": list(right),
        "width": width,
    }


def _base(header: ReportHeader, numbering: str, blocks: list[Block]) -> Block:
    return {
        "title": f"{header.title} report",
        "author": header.generated_by,
        "footer": f"{header.title} · audit head {header.audit_head[:16]}…",
        "numbering": numbering,
        "blocks": blocks,
    }


# --- the participant detail ------------------------------------------------------------


def _participant_blocks(row: ParticipantResult, charts: Sequence[tuple[str, str]]) -> list[Block]:
    state = row.state.replace("_", " ")
    rows: list[list[Cell]] = []
    for result in row.results:
        outcome = result.outcome.value
        lines = [f"{e.record}: expected {e.expected}; found {e.found}." for e in result.evidence]
        if result.note:
            lines.append(result.note)
        rows.append(
            [result.check_id, _styled(outcome.replace("_", " "), outcome), "\n".join(lines)]
        )
    blocks = [
        _heading(f"{row.study_id} — {state} (site {row.site})", 2, new_page=True),
        _table(("Check", "Outcome", "Evidence"), rows, ("auto", "auto", "1fr")),
    ]
    record = row.record
    if record is not None and record.checklist_signed_at is not None:
        signed: list[Cell] = [
            f"{_dash(record.checklist_signed_by)}, "
            f"{_moment(record.checklist_signed_at, seconds=True)} UTC",
            f"Meaning: {_dash(record.checklist_signature_meaning)} · outcome when signed: "
            f"{_dash(record.checklist_signed_outcome)}",
        ]
        if record.checklist_signature_voided_at is not None:
            voided = _moment(record.checklist_signature_voided_at)
            signed.append(_styled(f"Voided {voided} UTC", "warning"))
        blocks.append({"kind": "signature", "title": "Checklist signature", "lines": signed})
    blocks += [{"kind": "chart", "title": title, "svg": svg} for title, svg in charts]
    return blocks


def participant_detail(
    header: ReportHeader,
    rows: Sequence[ParticipantResult],
    charts: Mapping[str, Sequence[tuple[str, str]]],
    *,
    last: bool,
) -> Block:
    """A part of the participant detail: each participant from a new page, with a bookmark;
    the last part closes the report. Its first page's number is given to ``start``."""
    blocks: list[Block] = []
    for row in rows:
        blocks += _participant_blocks(row, charts.get(row.study_id, ()))
    if last:
        blocks.append({"kind": "end", "text": "End of the report."})
    return _base(header, "detail", blocks)


# --- the front matter ------------------------------------------------------------------


def _title_page(
    header: ReportHeader, summary: Summary, detail_participants: int, detail_pages: int
) -> list[Block]:
    if header.audit_ok:
        since = f" ({header.audit_checked})" if header.audit_checked else ""
        audit = _styled(f"{header.audit_events} events; the chain verifies{since}", "")
    else:
        audit = _styled(
            f"{header.audit_events} events; the chain does NOT verify: {header.audit_problem}",
            "warning",
        )
    filters = (
        "; ".join(f"{key} = {value}" for key, value in header.filters.items())
        if header.filters
        else "none (all participants in scope)"
    )
    detail = f"{detail_participants} in the detail"
    if header.filters:
        detail += " (the filters above)"
    pages = (
        f"participant detail 1\u2013{detail_pages}, the last marked “End of the report”"
        if detail_pages
        else "participant detail none"
    )

    def fact(label: str, value: Cell, style: str = "") -> list[str]:
        if isinstance(value, dict):
            return [label, value["text"], value["style"]]
        return [label, value, style]

    return [
        _heading(f"{header.title} report", 1, title_page=True),
        {
            "kind": "facts",
            "rows": [
                fact("Protocol", header.protocol),
                fact("Generated", f"{_moment(header.generated_at, seconds=True)} UTC"),
                fact("Generated by", header.generated_by),
                fact("Audit trail", audit),
                fact("Audit head hash", header.audit_head, "hash"),
                fact("Filters", filters),
                fact("Participants", f"{summary.participants} judged; {detail}"),
                fact("Pages", f"front matter numbered i, ii, …; {pages}"),
            ],
        },
        {"kind": "page_break"},
    ]


def _percent(rate: float) -> str:
    return f"{100 * rate:.0f} %"


def _outcome_table(rows: Sequence[OutcomeRow]) -> Block:
    if not rows:
        return _paragraph("No outcome assessment is recorded yet.", "muted")
    by_arm = rows[0].arm is not None
    head = ["Protocol", *(["Arm"] if by_arm else []), "Instrument", "Timepoint", "n"]
    head += ["Mean total", "Mean change (n)", "Response", "Remission"]
    cells = []
    for r in rows:
        change = f"{r.mean_change:+.1f} ({r.n_with_baseline})" if r.mean_change is not None else "—"
        response = (
            f"{r.responders} of {r.n_with_baseline} ({_percent(r.response_rate)})"
            if r.response_rate is not None
            else "—"
        )
        remission = (
            f"{r.remitters} of {r.n} ({_percent(r.remission_rate)})"
            if r.remission_rate is not None
            else "—"
        )
        cells.append(
            [
                r.protocol,
                *([r.arm or ""] if by_arm else []),
                r.instrument,
                r.timepoint.replace("_", " "),
                str(r.n),
                f"{r.mean_total:.1f}",
                change,
                response,
                remission,
            ]
        )
    widths = ["auto", *(["auto"] if by_arm else []), "auto", "auto", "auto", "auto", "1fr"]
    widths += ["1fr", "1fr"]
    return _table(head, cells, widths)


def _retention_table(rows: Sequence[RetentionRow]) -> Block:
    if not rows:
        return _paragraph("No participant has reached follow-up.", "muted")
    head = ["Protocol", "Timepoint", "Followed", "Due", "Assessed", "Missed (reason)"]
    head += ["Withdrawn", "Lost", "Retention"]
    cells = [
        [
            r.protocol,
            r.title,
            str(r.followed),
            str(r.due),
            str(r.done),
            str(r.missed),
            str(r.withdrawn),
            _styled(str(r.lost), "fail") if r.lost else "0",
            _percent(r.rate) if r.rate is not None else _styled("not yet due", "muted"),
        ]
        for r in rows
    ]
    return _table(head, cells, ("auto", "1fr", *("auto",) * 7))


def _blinding_blocks(blinding: BlindingSection) -> list[Block]:
    guesses = "guess" if blinding.guesses == 1 else "guesses"
    unblindings = "unblinding" if blinding.emergency_unblindings == 1 else "unblindings"
    text = (
        f"{blinding.guesses} blinding-integrity {guesses} recorded; "
        f"{blinding.emergency_unblindings} emergency {unblindings} (C18). "
    )
    if blinding.unblinding is None:
        text += "The study is blinded: the blinding index per arm is given once it is unblinded."
    else:
        text += (
            f"The study was unblinded on {_moment(blinding.unblinding.unblinded_at)} UTC. "
            "Bang's blinding index: (correct \u2212 incorrect) / all guesses; 0 is guessing as by "
            "chance, 1 everyone right, \u22121 everyone wrong; “unsure” counts in the denominator."
        )
    blocks = [_heading("Blinding", 2), _paragraph(text)]
    if blinding.indices:
        cells = []
        for i in blinding.indices:
            if i.index is None:
                index = "—"
            else:
                index = f"{i.index:.2f}"
                if i.interval:
                    index += f" ({i.interval[0]:.2f} to {i.interval[1]:.2f})"
            counts = [str(i.n), str(i.correct), str(i.incorrect), str(i.unsure)]
            cells.append([i.arm, i.respondent, *counts, index])
        head = ["Arm", "Respondent", "n", "Correct", "Incorrect", "Unsure"]
        head += ["Blinding index (95 % CI)"]
        blocks.append(_table(head, cells, ("1fr", "1fr", *("auto",) * 4, "1fr")))
    return blocks


def _accountability_blocks(accountability: Sequence[LotResult]) -> list[Block]:
    blocks = [_heading("Investigational product", 2)]
    if not accountability:
        return [
            *blocks,
            _paragraph("No lot of the investigational product is on file in this report's scope."),
        ]
    checks = [r.check_id for r in accountability[0].results]
    cells: list[list[Cell]] = []
    for lot in accountability:
        row: list[Cell] = [lot.label, str(lot.balance)]
        for r in lot.results:
            lines = [r.outcome.value.replace("_", " ")]
            lines += [f"{e.record}: expected {e.expected}; found {e.found}" for e in r.evidence]
            row.append(_styled("\n".join(lines), r.outcome.value))
        cells.append(row)
    blocks.append(
        _table(
            ("Lot", "Balance", *checks),
            cells,
            ("auto", "auto", *("1fr",) * len(checks)),
            right=(1,),
        )
    )
    blocks.append(
        _paragraph(
            "C20 balance reconciles with the last count · C21 destructions witnessed twice · "
            "C22 a count within 24 months · C23 losses reported in time (per lot); C19, doses "
            "covered by dispensings, per participant."
        )
    )
    return blocks


def front_matter(
    header: ReportHeader,
    summary: Summary,
    deviations: Sequence[Deviation],
    safety: SafetyItems,
    outcomes: Sequence[OutcomeRow],
    blinding: BlindingSection | None,
    accountability: Sequence[LotResult],
    checks: Sequence[dict[str, str]],
    pass_rate_svg: str,
    *,
    detail_participants: int,
    detail_pages: int,
) -> Block:
    """The front matter: the title page (protocol, author, time, the audit head), the summary
    with the pass-rate chart, the safety items, the outcomes, the blinding, the
    investigational product and the deviations; its pages numbered i, ii, …"""
    states = summary.to_dict()["states"]
    assert isinstance(states, dict)
    check_rows: list[list[Cell]] = []
    for c in checks:
        counts = summary.outcomes[c["id"]]
        fail = counts["fail"]
        check_rows.append(
            [
                c["id"],
                c["description"],
                c["severity"],
                str(counts["pass"]),
                _styled(str(fail), "fail" if fail else ""),
                str(counts["not_applicable"]),
            ]
        )
    blinded = blinding is None or blinding.unblinding is None
    blocks = [
        *_title_page(header, summary, detail_participants, detail_pages),
        _heading("Summary", 2),
        _table(
            ("State", "Participants"),
            ([state.replace("_", " "), str(count)] for state, count in states.items()),
            ("1fr", "auto"),
            right=(1,),
            width="90mm",
        ),
        _heading("Checks", 3, bookmark=False),
        _table(
            ("Check", "Description", "Severity", "Pass", "Fail", "n/a"),
            check_rows,
            ("auto", "1fr", "auto", "12mm", "12mm", "12mm"),
            right=(3, 4, 5),
        ),
        {"kind": "chart", "title": "Pass rate per check", "svg": pass_rate_svg},
        _heading("Open safety items", 3, bookmark=False),
        _table(
            ("Item", "Count"),
            [
                [
                    "Serious adverse events not yet reported",
                    f"{safety.unreported_serious_events} ({safety.overdue_serious_events} overdue)",
                ],
                [
                    "Adverse events awaiting an investigator's assessment",
                    str(safety.unassessed_events),
                ],
                ["Unacknowledged vital-sign alerts", str(safety.unacknowledged_alerts)],
            ],
            ("1fr", "40mm"),
        ),
        _heading("Outcomes", 2),
        _paragraph(
            "Pooled over the participants of this report: the study is blinded, so no figure "
            "is given by arm."
            if blinded
            else "By arm for a randomised protocol: the study is unblinded."
        ),
        _outcome_table(outcomes),
        _heading("Follow-up retention", 3, bookmark=False),
        _paragraph(
            "Everyone who entered treatment and left it is followed; a timepoint is due once "
            "its window has closed or it is done. Lost: the window closed with nothing "
            "recorded (C17)."
        ),
        _retention_table(summary.retention),
    ]
    if blinding is not None:
        blocks += _blinding_blocks(blinding)
    blocks += _accountability_blocks(accountability)
    blocks.append(_heading("Protocol deviations", 2))
    if deviations:
        blocks.append(
            _table(
                [
                    "Participant",
                    "When (UTC)",
                    "Guard overridden",
                    "Investigator's reason",
                    "Approved by",
                ],
                (
                    [
                        d.study_id,
                        _moment(d.occurred_at),
                        f"{d.guard_code}: {d.description}",
                        d.reason,
                        d.approved_by,
                    ]
                    for d in deviations
                ),
                ("auto", "auto", "1fr", "1fr", "auto"),
            )
        )
    else:
        blocks.append(_paragraph("No protocol deviation."))
    return _base(header, "front", blocks)


# --- Typst ------------------------------------------------------------------------------


WORKER = Path(__file__).with_name("typst_worker.py")


@functools.cache
def _font_directory() -> Path:
    for folder in FONT_DIRECTORIES:
        if (folder / "DejaVuSans.ttf").is_file():
            return folder
    raise RuntimeError(
        "The PDF report needs the DejaVu fonts (Debian: apt-get install fonts-dejavu-core); "
        f"looked in {', '.join(map(str, FONT_DIRECTORIES))}"
    )


@dataclass
class Layout:
    """A document being laid out by its own process (``typst_worker``) into ``output``."""

    process: subprocess.Popen[bytes]
    output: Path
    errors: Path

    def wait(self) -> Path:
        """The PDF, once laid out; a RuntimeError with Typst's message if it could not be."""
        if self.process.wait() != 0:
            message = self.errors.read_text(encoding="utf-8", errors="replace").strip()
            raise RuntimeError(f"Typst could not lay out {self.output.name}: {message}")
        return self.output

    def stop(self) -> None:
        """Ends the process if it still runs (the report failed or its reader went away)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start(document: Block, output: Path, generated_at: datetime, *, first_page: int = 1) -> Layout:
    """Starts laying out ``document`` (its pages numbered from ``first_page``) into ``output``,
    a PDF file; the document's JSON is written beside it. Returns at once: the caller does
    its own work meanwhile and calls ``wait``."""
    source = output.with_suffix(".json")
    source.write_text(
        json.dumps({**document, "first_page": first_page}, ensure_ascii=False), encoding="utf-8"
    )
    errors = output.with_suffix(".log")
    with source.open("rb") as stdin, errors.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 (this interpreter, our script, our files)
            [
                sys.executable,
                "-I",  # the standard library and the venv's packages only
                str(WORKER),
                str(TEMPLATE),
                str(_font_directory()),
                str(output),
                str(int(generated_at.timestamp())),
            ],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return Layout(process, output, errors)
