"""What a job can make: a small registry, one entry per kind of file. An entry checks the
parameters a request gives, and writes the file for its requester, reading in the session it
is handed (the worker's read-only one); it returns how the export goes on the audit trail, so
the worker records it in the transaction that marks the job done.

The compliance report's PDF, and the data-exchange exports (ODM, the SDTM datasets in each
format, the FHIR study bundle) past what a download carries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from tracker.audit.services import Actor, head
from tracker.auth.models import User
from tracker.errors import InvalidInput
from tracker.exchange.datasets import write_sdtm_zip
from tracker.exchange.fhir import study_bundle
from tracker.exchange.odm import odm_document
from tracker.exchange.scope import ExportScope, export_scope
from tracker.exchange.services import record_export
from tracker.security import Permission, role_has

# Writes the export's own audit event (``report.export`` and the like) with the requester
# as its actor, in the worker's finishing transaction.
ExportRecorder = Callable[[Session, Actor], None]


@dataclass(frozen=True)
class JobKind:
    name: str
    title: str
    extension: str
    mimetype: str
    # Who may ask for it: the permission of the same download made within a request.
    permission: Permission
    check: Callable[[Mapping[str, Any]], dict[str, Any]]
    write: Callable[[Session, User, dict[str, Any], BinaryIO], ExportRecorder]
    describe: Callable[[dict[str, Any]], str]

    def file_stem(self) -> str:
        return self.name.replace("_", "-")


# --- the compliance report's PDF -----------------------------------------------------------

_FILTER_FIELDS = ("site", "state", "check", "failures_only")


def _compliance_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """The report filter as the page and the API read it (``ReportFilter.checked``): a site
    code, a state, a check id, failures only. Unknown keys are refused."""
    from tracker.reports.compliance import ReportFilter

    unknown = sorted(set(values) - set(_FILTER_FIELDS))
    if unknown:
        raise InvalidInput(f"Unknown report filter {', '.join(unknown)}.", unknown)
    return ReportFilter.checked(
        site=values.get("site") or None,
        state=values.get("state") or None,
        check=values.get("check") or None,
        failures_only=values.get("failures_only", False),
    ).as_dict()


def _write_compliance_pdf(
    db: Session, user: User, parameters: dict[str, Any], handle: BinaryIO
) -> ExportRecorder:
    from tracker.reports import compliance
    from tracker.reports.writing import write_report_pdf

    flt = compliance.ReportFilter(**parameters)
    header = compliance.report_header(db, user.printed_name, flt)
    write_report_pdf(db, user, flt, header, compliance.Summary(), handle)

    def record(writes: Session, actor: Actor) -> None:
        compliance.record_export(writes, actor, "pdf", flt, header)

    return record


def _describe_filter(parameters: dict[str, Any]) -> str:
    parts = [
        f"site {parameters['site']}" if parameters.get("site") else "",
        f"state {str(parameters['state']).replace('_', ' ')}" if parameters.get("state") else "",
        f"check {parameters['check']}" if parameters.get("check") else "",
        "failures only" if parameters.get("failures_only") else "",
    ]
    return ", ".join(p for p in parts if p) or "every participant you see"


COMPLIANCE_PDF = JobKind(
    name="compliance_pdf",
    title="Compliance report (PDF)",
    extension="pdf",
    mimetype="application/pdf",
    permission=Permission.REPORTS_EXPORT,
    check=_compliance_parameters,
    write=_write_compliance_pdf,
    describe=_describe_filter,
)

# --- the data exchange (SPEC §13) ----------------------------------------------------------


def _exchange_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """A site code, or every site the requester sees."""
    unknown = sorted(set(values) - {"site"})
    if unknown:
        raise InvalidInput(f"Unknown export parameter {', '.join(unknown)}.", unknown)
    site = values.get("site") or None
    if site is not None and (not isinstance(site, str) or len(site) > 40):
        raise InvalidInput("The site must be a short text.", ["site"])
    return {"site": site.strip().upper()} if site else {}


def _exchange_writer(
    standard: str, fmt: str, produce: Callable[[Session, ExportScope, BinaryIO], object]
) -> Callable[[Session, User, dict[str, Any], BinaryIO], ExportRecorder]:
    """Writes the export of ``standard`` in ``fmt`` with ``produce``, in the requester's scope
    (their site and their blinding, as the download would have it)."""

    def write(
        db: Session, user: User, parameters: dict[str, Any], handle: BinaryIO
    ) -> ExportRecorder:
        scope = export_scope(db, user, user.username, site=parameters.get("site"))
        made_against = head(db)  # in the snapshot the file is read from
        produce(db, scope, handle)

        def record(writes: Session, actor: Actor) -> None:
            record_export(writes, actor, standard, fmt, scope, against=made_against)

        return record

    return write


def _text(
    document: Callable[[Session, ExportScope], Iterable[str]],
) -> Callable[[Session, ExportScope, BinaryIO], None]:
    """A document that streams as text, written as UTF-8."""

    def produce(db: Session, scope: ExportScope, handle: BinaryIO) -> None:
        for text in document(db, scope):
            handle.write(text.encode("utf-8"))

    return produce


def _sdtm(fmt: str) -> Callable[[Session, ExportScope, BinaryIO], object]:
    return lambda db, scope, handle: write_sdtm_zip(db, scope, fmt, handle)


def _describe_site(parameters: dict[str, Any]) -> str:
    site = parameters.get("site")
    return f"site {site}" if site else "every participant you see"


def _exchange_kind(
    name: str,
    title: str,
    standard: str,
    fmt: str,
    produce: Callable[[Session, ExportScope, BinaryIO], object],
    mimetype: str,
) -> JobKind:
    return JobKind(
        name=name,
        title=title,
        extension="zip" if standard == "sdtm" else fmt,
        mimetype=mimetype,
        permission=Permission.DATA_EXPORT,
        check=_exchange_parameters,
        write=_exchange_writer(standard, fmt, produce),
        describe=_describe_site,
    )


ZIP = "application/zip"
EXCHANGE_KINDS = (
    _exchange_kind("odm", "CDISC ODM (XML)", "odm", "xml", _text(odm_document), "application/xml"),
    _exchange_kind("sdtm_xpt", "SDTM, SAS XPORT (ZIP)", "sdtm", "xpt", _sdtm("xpt"), ZIP),
    _exchange_kind("sdtm_json", "SDTM, Dataset-JSON (ZIP)", "sdtm", "json", _sdtm("json"), ZIP),
    _exchange_kind("sdtm_csv", "SDTM, CSV (ZIP)", "sdtm", "csv", _sdtm("csv"), ZIP),
    _exchange_kind(
        "fhir",
        "FHIR study bundle (JSON)",
        "fhir",
        "json",
        _text(study_bundle),
        "application/fhir+json",
    ),
)

KINDS: dict[str, JobKind] = {kind.name: kind for kind in (COMPLIANCE_PDF, *EXCHANGE_KINDS)}


def kind_of(name: str) -> JobKind:
    try:
        return KINDS[name]
    except KeyError:
        raise InvalidInput(f"Unknown kind of export {name!r}.", sorted(KINDS)) from None


def may_make(user: User | None, kind: JobKind) -> str | None:
    """Why ``user`` may not have ``kind`` made now (None: they may). Checked when the job is
    asked for and again when it runs: a user disabled or moved to another role meanwhile
    gets no file."""
    if user is None:
        return "the requester no longer exists"
    if not user.is_active:
        return "the requester's account is disabled"
    if not role_has(user.role, kind.permission):
        return f"the {user.role} role may not have a {kind.title.lower()} made"
    return None
