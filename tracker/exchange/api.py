"""Data exchange in the JSON API (SPEC §13): the ODM document, the SDTM datasets (a ZIP of
one file per domain) and the FHIR bundles, each streamed and audited."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, parse_query
from tracker.api.schemas import ExportQuery, SdtmExportQuery
from tracker.exchange import downloads
from tracker.security import Permission, authenticated_user, requires


@api_route(
    bp,
    "/exports/odm",
    "GET",
    summary="The study as CDISC ODM 1.3.2: metadata, clinical data, audit records, signatures",
    tag="exports",
    refusals=("422",),  # more participants than a download carries
    query=ExportQuery,
    response_media_type="application/xml",
)
@requires(Permission.DATA_EXPORT)
def export_odm() -> ResponseReturnValue:
    query = parse_query(ExportQuery)
    return downloads.odm_response(authenticated_user(), query.site)


@api_route(
    bp,
    "/exports/sdtm",
    "GET",
    summary="SDTM datasets (DM, DS, EX, VS, AE, QS, SV, DV) as a ZIP: CSV, XPORT or Dataset-JSON",
    tag="exports",
    refusals=("422",),  # more participants than a download carries
    query=SdtmExportQuery,
    response_media_type="application/zip",
)
@requires(Permission.DATA_EXPORT)
def export_sdtm() -> ResponseReturnValue:
    query = parse_query(SdtmExportQuery)
    return downloads.sdtm_response(authenticated_user(), query.format, query.site)


@api_route(
    bp,
    "/exports/fhir",
    "GET",
    summary="The study as a FHIR R4 Bundle (ResearchStudy, Patient, ResearchSubject)",
    tag="exports",
    refusals=("422",),  # more participants than a download carries
    query=ExportQuery,
    response_media_type="application/fhir+json",
)
@requires(Permission.DATA_EXPORT)
def export_fhir_study() -> ResponseReturnValue:
    query = parse_query(ExportQuery)
    return downloads.fhir_study_response(authenticated_user(), query.site)


@api_route(
    bp,
    "/exports/fhir/participants/<study_id>",
    "GET",
    summary="One participant as a FHIR R4 Bundle (with vital signs and adverse events)",
    tag="exports",
    refusals=("422",),  # more participants than a download carries
    response_media_type="application/fhir+json",
)
@requires(Permission.DATA_EXPORT)
def export_fhir_participant(study_id: str) -> ResponseReturnValue:
    return downloads.fhir_participant_response(authenticated_user(), study_id)
