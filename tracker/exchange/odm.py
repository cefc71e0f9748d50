"""CDISC ODM 1.3.2 (SPEC §13): the protocol as metadata and the clinical data with the audit
trail's who, when and why, and the investigators' e-signatures.

- One ``Study`` per protocol (its code), one ``MetaDataVersion`` per stored protocol version:
  study events for enrolment, the three kinds of session, each outcome timepoint, safety and
  disposition; forms and item groups for the checklist, consent, sign-off, sessions, doses,
  vital signs, effects, adverse events, suicidality screens and each instrument; a code list
  for every enumeration. Licensed instruments carry item codes and short labels only.
- ``AdminData``: the users (and the system and command-line actors of the trail), the sites
  as locations, one ``SignatureDef`` per signature meaning.
- ``ClinicalData`` per protocol version: a ``SubjectData`` per participant (a snapshot of the
  current values). Every item group (and each checklist answer) carries the ``AuditRecord`` of
  the audit event that wrote it: the user, the site, the time, the reason, and as
  ``SourceID`` the event's place in the hash chain. Each checklist sign-off carries its
  ``Signature`` with the signed content's hash.

The document streams: the metadata and admin data first (small), then one participant at a
time, each serialised as soon as it is built.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any
from xml.sax.saxutils import quoteattr

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import SITELESS_ROLES, User
from tracker.exchange.scope import ExportScope
from tracker.exchange.source import (
    AuditNote,
    SessionRows,
    Subject,
    protocol_versions,
    source_version,
    subjects,
    system_actors,
    users,
)
from tracker.participants.models import ChecklistSignature
from tracker.protocol.checklist import ChecklistOutcome
from tracker.protocol.definition import ProtocolDefinition
from tracker.protocol.dosing import (
    SESSION_EFFECTS,
    AdverseEventOutcome,
    DoseKind,
    Relatedness,
    SeriousCriterion,
)
from tracker.protocol.sessions import SessionKind, SessionStatus
from tracker.protocol.states import State, WithdrawalCategory
from tracker.sites.models import Site
from tracker.study.models import ProtocolVersion, definition_of

NS = "http://www.cdisc.org/ns/odm/v1.3"
SCREEN_ITEMS = ("ideation", "intent", "plan", "behaviour", "positive")
ODM_VERSION = "1.3.2"

SESSION_EVENTS = {
    SessionKind.PREPARATION: ("SE.PREPARATION", "Preparation session"),
    SessionKind.DOSING: ("SE.DOSING", "Dosing session"),
    SessionKind.INTEGRATION: ("SE.INTEGRATION", "Integration session"),
}


def _el(parent: ET.Element | None, tag: str, text: str | None = None, **attrs: Any) -> ET.Element:
    attributes = {k: str(v) for k, v in attrs.items() if v is not None}
    element = (
        ET.Element(tag, attributes) if parent is None else ET.SubElement(parent, tag, attributes)
    )
    if text is not None:
        element.text = text
    return element


def _translated(parent: ET.Element, tag: str, text: str) -> None:
    _el(_el(parent, tag), "TranslatedText", text, **{"xml:lang": "en"})


def _when(moment: datetime | date | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return moment.isoformat()


def _value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return _when(value)
    return str(value)


def study_oid(code: str) -> str:
    return f"ST.{code.upper()}"


def mdv_oid(version: ProtocolVersion) -> str:
    return f"MDV.{version.code.upper()}.{version.version}"


def user_oid(name: str) -> str:
    return f"USR.{name}"


def location_oid(site_code: str) -> str:
    return f"LOC.{site_code}"


# --- metadata ------------------------------------------------------------------------------


class _Metadata:
    """The MetaDataVersion of one protocol version, built from its definition."""

    def __init__(self, version: ProtocolVersion, protocol: ProtocolDefinition, arms: bool):
        self.root = _el(
            None,
            "MetaDataVersion",
            OID=mdv_oid(version),
            Name=f"{protocol.title} v{protocol.version}",
        )
        self.events: list[ET.Element] = []
        self.forms: list[ET.Element] = []
        self.groups: list[ET.Element] = []
        self.items: list[ET.Element] = []
        self.codelists: list[ET.Element] = []
        self._seen_codelists: set[str] = set()
        self.protocol = protocol
        self.arms = arms

    def codelist(self, oid: str, name: str, values: Sequence[tuple[str, str]]) -> str:
        if oid not in self._seen_codelists:
            self._seen_codelists.add(oid)
            codelist = _el(None, "CodeList", OID=oid, Name=name, DataType="text")
            for code, decode in values:
                _translated(_el(codelist, "CodeListItem", CodedValue=code), "Decode", decode)
            self.codelists.append(codelist)
        return oid

    def item(
        self,
        oid: str,
        name: str,
        data_type: str,
        question: str | None = None,
        codelist: str | None = None,
        length: int | None = None,
    ) -> str:
        item = _el(None, "ItemDef", OID=oid, Name=name, DataType=data_type, Length=length)
        if question:
            _translated(item, "Question", question)
        if codelist:
            _el(item, "CodeListRef", CodeListOID=codelist)
        self.items.append(item)
        return oid

    def group(self, oid: str, name: str, repeating: bool, items: Sequence[str]) -> str:
        group = _el(
            None, "ItemGroupDef", OID=oid, Name=name, Repeating="Yes" if repeating else "No"
        )
        for number, item in enumerate(items, start=1):
            _el(group, "ItemRef", ItemOID=item, Mandatory="No", OrderNumber=number)
        self.groups.append(group)
        return oid

    def form(self, oid: str, name: str, groups: Sequence[str], repeating: bool = False) -> str:
        form = _el(None, "FormDef", OID=oid, Name=name, Repeating="Yes" if repeating else "No")
        for group in groups:
            _el(form, "ItemGroupRef", ItemGroupOID=group, Mandatory="No")
        self.forms.append(form)
        return oid

    def event(self, oid: str, name: str, kind: str, repeating: bool, forms: Sequence[str]) -> None:
        event = _el(
            None,
            "StudyEventDef",
            OID=oid,
            Name=name,
            Repeating="Yes" if repeating else "No",
            Type=kind,
        )
        for number, form in enumerate(forms, start=1):
            _el(event, "FormRef", FormOID=form, Mandatory="No", OrderNumber=number)
        self.events.append(event)

    def enum(self, oid: str, name: str, values: Sequence[str]) -> str:
        return self.codelist(oid, name, [(v, v.replace("_", " ")) for v in values])

    def build(self) -> ET.Element:
        protocol = self.protocol
        i = self.item
        sex = self.enum("CL.SEX", "Sex", ["female", "male"])
        state = self.enum("CL.STATE", "Participant state", [s.value for s in State])
        demography = [
            i("IT.SEX", "Sex", "text", "Sex", sex),
            i("IT.YEAR_OF_BIRTH", "Year of birth", "integer", "Year of birth"),
            i("IT.STATE", "State", "text", "Where the participant stands", state),
            i("IT.CYCLE", "Cycle", "integer", "Dosing cycle"),
            i("IT.ENROLLED_AT", "Enrolled at", "datetime", "Enrolled at"),
            i("IT.RANDOMISATION_NUMBER", "Randomisation number", "text", "Randomisation number"),
            i("IT.STRATUM", "Stratum", "text", "Randomisation stratum"),
        ]
        if self.arms and protocol.randomisation is not None:
            arm = self.codelist(
                "CL.ARM", "Arm", [(a.code, a.label) for a in protocol.randomisation.arms]
            )
            demography.append(i("IT.ARM", "Arm", "text", "Allocated arm", arm))
        g_demog = self.group("IG.DEMOGRAPHY", "Participant", False, demography)
        g_consent = self.group(
            "IG.CONSENT",
            "Consent",
            True,
            [
                i("IT.CONSENT_DOCUMENT", "Document version", "text", "Consent document version"),
                i("IT.CONSENT_SIGNED_ON", "Signed on", "date", "Signed on"),
            ],
        )
        yes_no_items = [
            i(f"IT.CHECK.{item.code.upper()}", item.code, "boolean", item.question)
            for item in protocol.checklist
        ]
        g_checklist = self.group("IG.CHECKLIST", "Contraindication checklist", False, yes_no_items)
        outcome = self.enum(
            "CL.CHECKLIST_OUTCOME", "Checklist outcome", [o.value for o in ChecklistOutcome]
        )
        g_signoff = self.group(
            "IG.SIGNOFF",
            "Investigator sign-off",
            True,
            [
                i("IT.SIGNOFF_OUTCOME", "Outcome", "text", "Outcome signed", outcome),
                i(
                    "IT.SIGNOFF_CONTENT_HASH",
                    "Content hash",
                    "text",
                    "SHA-256 of the signed content",
                ),
                i("IT.SIGNOFF_VOIDED_AT", "Voided at", "datetime", "Voided at"),
                i("IT.SIGNOFF_VOID_REASON", "Void reason", "text", "Why the signature was voided"),
            ],
        )
        g_review = self.group(
            "IG.REVIEW",
            "Investigator's review of an item",
            True,
            [
                i("IT.REVIEW_ITEM", "Item", "text", "Checklist item reviewed"),
                i("IT.REVIEW_ACCEPTABLE", "Acceptable", "boolean", "Acceptable for the study"),
                i("IT.REVIEW_RATIONALE", "Rationale", "text", "Rationale"),
                i("IT.REVIEW_AT", "Assessed at", "datetime", "Assessed at"),
                i("IT.REVIEW_VOIDED_AT", "Voided at", "datetime", "Voided at"),
                i("IT.REVIEW_VOID_REASON", "Void reason", "text", "Why it was voided"),
            ],
        )
        kind = self.enum("CL.SESSION_KIND", "Session kind", [k.value for k in SessionKind])
        status = self.enum("CL.SESSION_STATUS", "Session status", [s.value for s in SessionStatus])
        g_session = self.group(
            "IG.SESSION",
            "Session",
            False,
            [
                i("IT.SESSION_KIND", "Kind", "text", "Kind of session", kind),
                i("IT.SESSION_CYCLE", "Cycle", "integer", "Cycle"),
                i("IT.SESSION_STATUS", "Status", "text", "Status", status),
                i("IT.SESSION_SCHEDULED_AT", "Scheduled at", "datetime", "Scheduled at"),
                i("IT.SESSION_STARTED_AT", "Started at", "datetime", "Started at"),
                i("IT.SESSION_ENDED_AT", "Ended at", "datetime", "Ended at"),
                i("IT.SESSION_OVERNIGHT", "Overnight stay", "boolean", "Overnight stay"),
            ],
        )
        dose_kind = self.enum("CL.DOSE_KIND", "Dose kind", [k.value for k in DoseKind])
        g_dose = self.group(
            "IG.DOSE",
            "Dose",
            True,
            [
                i("IT.DOSE_KIND", "Kind", "text", "Initial or supplemental", dose_kind),
                i("IT.DOSE_MG", "Amount (mg)", "integer", "Amount in mg"),
                i("IT.DOSE_AT", "Administered at", "datetime", "Administered at"),
                i("IT.DOSE_DISPENSING", "Dispensing", "text", "Number of the dispensing"),
                i("IT.DOSE_JUSTIFICATION", "Justification", "text", "Why a limit was exceeded"),
            ],
        )
        g_vitals = self.group(
            "IG.VITALS",
            "Vital signs",
            True,
            [
                i("IT.VS_AT", "Measured at", "datetime", "Measured at"),
                i("IT.SYSBP", "Systolic", "integer", "Systolic blood pressure (mmHg)"),
                i("IT.DIABP", "Diastolic", "integer", "Diastolic blood pressure (mmHg)"),
                i("IT.PULSE", "Heart rate", "integer", "Heart rate (beats/min)"),
                i("IT.TEMP", "Temperature", "float", "Temperature (C)"),
            ],
        )
        g_effects = self.group(
            "IG.EFFECTS",
            "Effects",
            False,
            [
                *(
                    i(f"IT.EFFECT.{code.upper()}", code, "boolean", label)
                    for code, label in SESSION_EFFECTS
                ),
                i("IT.EFFECTS_NONE", "None observed", "boolean", "None observed"),
                i("IT.EFFECTS_NOTE", "Note", "text", "Note"),
            ],
        )
        f_session = self.form("F.SESSION", "Session", [g_session])
        f_dose = self.form("F.DOSE", "Doses", [g_dose])
        f_vitals = self.form("F.VITALS", "Vital signs", [g_vitals])
        f_effects = self.form("F.EFFECTS", "Effects", [g_effects])
        self.event(
            "SE.ENROLMENT",
            "Screening and enrolment",
            "Scheduled",
            False,
            [
                self.form("F.DEMOGRAPHY", "Participant", [g_demog]),
                self.form("F.CONSENT", "Consent", [g_consent]),
                self.form("F.CHECKLIST", "Contraindication checklist", [g_checklist]),
                self.form("F.REVIEW", "Investigator's reviews", [g_review]),
                self.form("F.SIGNOFF", "Investigator sign-off", [g_signoff]),
            ],
        )
        for session_kind, (oid, name) in SESSION_EVENTS.items():
            forms = (
                [f_session, f_dose, f_vitals, f_effects]
                if session_kind is SessionKind.DOSING
                else [f_session]
            )
            self.event(oid, name, "Scheduled", True, forms)
        instrument_forms = {}
        for instrument in protocol.instruments:
            code = instrument.code.upper()
            group = self.group(
                f"IG.{code}",
                instrument.title,
                False,
                [
                    i(
                        f"IT.{code}.ADMINISTERED_AT",
                        "Administered at",
                        "datetime",
                        "Administered at",
                    ),
                    *(
                        i(f"IT.{code}.{item.code.upper()}", item.code, "integer", item.label)
                        for item in instrument.items
                    ),
                    i(f"IT.{code}.TOTAL", "Total", "integer", "Total score"),
                    i(f"IT.{code}.BAND", "Band", "text", "Severity band"),
                    i(
                        f"IT.{code}.IN_WINDOW",
                        "In window",
                        "boolean",
                        "Within the timepoint's window",
                    ),
                ],
            )
            instrument_forms[instrument.code] = self.form(f"F.{code}", instrument.title, [group])
        for timepoint in protocol.timepoints:
            self.event(
                f"SE.TP.{timepoint.code.upper()}",
                timepoint.title,
                "Scheduled",
                False,
                [instrument_forms[c] for c in timepoint.instruments if c in instrument_forms],
            )
        relatedness = self.enum("CL.RELATEDNESS", "Relatedness", [r.value for r in Relatedness])
        ae_outcome = self.enum("CL.AE_OUTCOME", "Outcome", [o.value for o in AdverseEventOutcome])
        g_ae = self.group(
            "IG.AE",
            "Adverse event",
            True,
            [
                i("IT.AE_TERM", "Term", "text", "Adverse event"),
                i("IT.AE_ONSET_AT", "Onset", "datetime", "Onset"),
                i("IT.AE_GRADE", "Grade", "integer", "CTCAE grade"),
                i("IT.AE_SERIOUS", "Serious", "boolean", "Serious"),
                i(
                    "IT.AE_CRITERIA",
                    "Serious criteria",
                    "text",
                    "Seriousness criteria (" + ", ".join(c.value for c in SeriousCriterion) + ")",
                ),
                i("IT.AE_OUTCOME", "Outcome", "text", "Outcome", ae_outcome),
                i("IT.AE_RESOLVED_AT", "Resolved at", "datetime", "Resolved at"),
                i(
                    "IT.AE_RELATEDNESS",
                    "Relatedness",
                    "text",
                    "Relatedness to the product",
                    relatedness,
                ),
                i("IT.AE_REPORTED_AT", "Reported at", "datetime", "Serious event reported at"),
            ],
        )
        g_side_effect = self.group(
            "IG.SIDE_EFFECT",
            "Side effect",
            True,
            [
                i("IT.SIDE_EFFECT_TERM", "Term", "text", "Side effect"),
                i("IT.SIDE_EFFECT_SEVERITY", "Severity", "text", "Severity"),
                i("IT.SIDE_EFFECT_ONSET_AT", "Onset", "datetime", "Onset"),
                i("IT.SIDE_EFFECT_RESOLVED_AT", "Resolved at", "datetime", "Resolved at"),
            ],
        )
        g_pregnancy = self.group(
            "IG.PREGNANCY_TEST",
            "Pregnancy test",
            True,
            [
                i("IT.PREGNANCY_TESTED_AT", "Tested at", "datetime", "Tested at"),
                i("IT.PREGNANCY_RESULT", "Result", "text", "Result"),
            ],
        )
        g_screen = self.group(
            "IG.SUICIDALITY",
            "Suicidality screen",
            True,
            [
                i("IT.SCREEN_AT", "Screened at", "datetime", "Screened at"),
                *(
                    i(f"IT.SCREEN_{name.upper()}", name, "boolean", name.capitalize())
                    for name in ("ideation", "intent", "plan", "behaviour", "positive")
                ),
            ],
        )
        self.event(
            "SE.SAFETY",
            "Safety",
            "Common",
            False,
            [
                self.form("F.AE", "Adverse events", [g_ae]),
                self.form("F.SUICIDALITY", "Suicidality screens", [g_screen]),
                self.form("F.SIDE_EFFECT", "Side effects", [g_side_effect]),
                self.form("F.PREGNANCY_TEST", "Pregnancy tests", [g_pregnancy]),
            ],
        )
        withdrawal = self.enum(
            "CL.WITHDRAWAL", "Withdrawal category", [w.value for w in WithdrawalCategory]
        )
        g_transition = self.group(
            "IG.TRANSITION",
            "Transition",
            True,
            [
                i("IT.TRANSITION", "Transition", "text", "Transition"),
                i("IT.FROM_STATE", "From", "text", "From state", state),
                i("IT.TO_STATE", "To", "text", "To state", state),
                i("IT.TRANSITION_AT", "At", "datetime", "Occurred at"),
                i("IT.TRANSITION_REASON", "Reason", "text", "Reason"),
                i(
                    "IT.WITHDRAWAL_CATEGORY",
                    "Withdrawal category",
                    "text",
                    "Withdrawal category",
                    withdrawal,
                ),
                i("IT.OVERRIDE", "Override", "boolean", "Guards overridden"),
            ],
        )
        self.event(
            "SE.DISPOSITION",
            "Disposition",
            "Common",
            False,
            [self.form("F.TRANSITION", "Transitions", [g_transition])],
        )
        protocol_element = _el(self.root, "Protocol")
        for number, event in enumerate(self.events, start=1):
            _el(
                protocol_element,
                "StudyEventRef",
                StudyEventOID=event.get("OID"),
                OrderNumber=number,
                Mandatory="No",
            )
        for element in (*self.events, *self.forms, *self.groups, *self.items, *self.codelists):
            self.root.append(element)
        return self.root


# --- admin data ----------------------------------------------------------------------------


def _admin_data(
    study: str,
    versions: Sequence[ProtocolVersion],
    people: Sequence[User],
    actors: Sequence[str],
    sites: Sequence[Site],
    meanings: Sequence[str],
) -> ET.Element:
    admin = _el(None, "AdminData", StudyOID=study)
    for person in people:
        user = _el(
            admin,
            "User",
            OID=user_oid(person.username),
            UserType="Investigator" if person.role == "investigator" else "Other",
        )
        _el(user, "LoginName", person.username)
        _el(user, "DisplayName", f"{person.printed_name} ({person.role})")
        _el(user, "FullName", person.printed_name)
    for actor in actors:
        user = _el(admin, "User", OID=user_oid(actor), UserType="Other")
        _el(user, "LoginName", actor)
        _el(user, "DisplayName", f"{actor} (system or command line)")
    other = _el(admin, "User", OID=OTHER_USER, UserType="Other")
    _el(other, "DisplayName", "A user of another site (not named in this site's export)")
    for site in sites:
        location = _el(
            admin, "Location", OID=location_oid(site.code), Name=site.name, LocationType="Site"
        )
        for version in versions:
            _el(
                location,
                "MetaDataVersionRef",
                StudyOID=study,
                MetaDataVersionOID=mdv_oid(version),
                EffectiveDate=version.loaded_at.date().isoformat(),
            )
    for number, meaning in enumerate(meanings, start=1):
        definition = _el(admin, "SignatureDef", OID=f"SD.{number}", Methodology="Electronic")
        _el(definition, "Meaning", meaning)
        _el(definition, "LegalReason", "Electronic signature under 21 CFR Part 11")
    return admin


# --- clinical data -------------------------------------------------------------------------


class _Notes:
    """A subject's audit events by action, to find the one that wrote a record. Each way of
    looking (actions, by session or not, which value) is indexed on first use, so finding a
    record's event costs a lookup, not a scan of the subject's events."""

    def __init__(self, notes: Sequence[AuditNote]):
        self.by_action: dict[str, list[AuditNote]] = defaultdict(list)
        for note in notes:
            self.by_action[note.action].append(note)
        self._indexes: dict[tuple[Any, ...], dict[tuple[Any, Any], AuditNote]] = {}

    def last(
        self, actions: Sequence[str], session: int | None = None, **values: Any
    ) -> AuditNote | None:
        """The newest event of one of ``actions`` (about ``session``, if given) whose new
        values hold ``values`` (at most one)."""
        if len(values) > 1:
            raise ValueError("one value to match")
        pairs: list[tuple[str | None, Any]] = [*values.items()] or [(None, None)]
        key, value = pairs[0]
        by_session = session is not None
        shape = (tuple(actions), by_session, key)
        index = self._indexes.get(shape)
        if index is None:
            index = {}
            for note in sorted(
                (n for a in actions for n in self.by_action.get(a, ())), key=lambda n: n.seq
            ):
                if by_session and note.entity_type != "session":
                    continue
                where = note.entity_id if by_session else None
                found = None if key is None else _normal(_new(note, key))
                if isinstance(found, list | dict):
                    continue
                index[(where, found)] = note  # in chain order: the newest stays
            self._indexes[shape] = index
        return index.get((str(session) if by_session else None, _normal(value)))

    def about(self, entity_type: str, entity_id: object) -> AuditNote | None:
        """The newest event recorded against a record itself (an adverse event's assessment
        and updates)."""
        found = [
            n
            for notes in self.by_action.values()
            for n in notes
            if n.entity_type == entity_type and n.entity_id == str(entity_id)
        ]
        return max(found, key=lambda n: n.seq) if found else None

    def voiding(self, signature_id: int) -> AuditNote | None:
        """The event that voided a checklist signature, if one did."""
        for note in self.by_action.get("checklist.signature_void", ()):
            if (note.old_values or {}).get("signature_id") == signature_id:
                return note
        return None

    def nth(self, action: str, index: int) -> AuditNote | None:
        notes = self.by_action.get(action, [])
        return notes[index] if index < len(notes) else None


def newest(*notes: AuditNote | None) -> AuditNote | None:
    found = [n for n in notes if n is not None]
    return max(found, key=lambda n: n.seq) if found else None


def _normal(value: Any) -> Any:
    """A value as the audit trail and a record both give it: a time as an aware UTC datetime
    (the trail stores ISO text with microseconds, a record may have none), else as is."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, str) and len(value) >= 19 and value[10] == "T":
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            return value
    return value


def _new(note: AuditNote, key: str) -> Any:
    return (note.new_values or {}).get(key)


OTHER_USER = "USR.OTHER"


def _user_ref(name: str, listed: frozenset[str]) -> str:
    """The OID of a user listed in the admin data; a user of another site, who is not
    listed in a site's export, is ``USR.OTHER``."""
    return user_oid(name) if name in listed else OTHER_USER


def _audit_record(
    parent: ET.Element, note: AuditNote | None, site: str, listed: frozenset[str]
) -> None:
    if note is None:
        return
    record = _el(parent, "AuditRecord")
    _el(record, "UserRef", UserOID=_user_ref(note.actor, listed))
    _el(record, "LocationRef", LocationOID=location_oid(site))
    _el(record, "DateTimeStamp", _when(note.occurred_at))
    if note.reason:
        _el(record, "ReasonForChange", note.reason)
    _el(record, "SourceID", f"audit event {note.seq} ({note.action}), hash {note.hash}")


def _group(
    parent: ET.Element,
    oid: str,
    values: Sequence[tuple[str, Any]],
    note: AuditNote | None,
    site: str,
    listed: frozenset[str],
    repeat_key: int | None = None,
    signature: ET.Element | None = None,
) -> ET.Element:
    group = _el(parent, "ItemGroupData", ItemGroupOID=oid, ItemGroupRepeatKey=repeat_key)
    _audit_record(group, note, site, listed)
    if signature is not None:
        group.append(signature)
    for item, value in values:
        text = _value(value)
        if text is not None and text != "":
            _el(group, "ItemData", ItemOID=item, Value=text)
    return group


class _SubjectWriter:
    def __init__(
        self,
        scope: ExportScope,
        user_names: dict[int, str],
        meaning_oids: dict[str, str],
        listed: frozenset[str],
    ) -> None:
        self.scope = scope
        self.user_names = user_names
        self.meaning_oids = meaning_oids
        self.listed = listed

    def _group(
        self,
        parent: ET.Element,
        oid: str,
        values: Sequence[tuple[str, Any]],
        note: AuditNote | None,
        site: str,
        repeat_key: int | None = None,
        signature: ET.Element | None = None,
    ) -> ET.Element:
        return _group(parent, oid, values, note, site, self.listed, repeat_key, signature)

    def _audit_record(self, parent: ET.Element, note: AuditNote | None, site: str) -> None:
        _audit_record(parent, note, site, self.listed)

    def signature(self, signature: ChecklistSignature, site: str) -> ET.Element:
        element = _el(None, "Signature", ID=f"SIG.{signature.id}")
        _el(
            element,
            "UserRef",
            UserOID=_user_ref(self.user_names.get(signature.signer_id, ""), self.listed),
        )
        _el(element, "LocationRef", LocationOID=location_oid(site))
        _el(element, "SignatureRef", SignatureOID=self.meaning_oids[signature.meaning])
        _el(element, "DateTimeStamp", _when(signature.signed_at))
        _el(element, "CryptoBindingManifest", f"sha256:{signature.content_hash}")
        return element

    def subject(self, subject: Subject, protocol: ProtocolDefinition) -> ET.Element:
        site = subject.site
        notes = _Notes(subject.events)
        data = _el(None, "SubjectData", SubjectKey=subject.study_id)
        _el(data, "SiteRef", LocationOID=location_oid(site))
        self._enrolment(data, subject, protocol, notes)
        for rows in subject.sessions:
            self._session(data, subject, rows, notes)
        self._assessments(data, subject, protocol, notes)
        self._safety(data, subject, notes)
        self._disposition(data, subject, notes)
        return data

    def _enrolment(
        self, data: ET.Element, subject: Subject, protocol: ProtocolDefinition, notes: _Notes
    ) -> None:
        participant, site = subject.participant, subject.site
        enrolment = _el(data, "StudyEventData", StudyEventOID="SE.ENROLMENT")
        allocation = subject.allocation
        values: list[tuple[str, Any]] = [
            ("IT.SEX", participant.sex),
            ("IT.YEAR_OF_BIRTH", participant.year_of_birth),
            ("IT.STATE", participant.state),
            ("IT.CYCLE", participant.cycle),
            ("IT.ENROLLED_AT", participant.enrolled_at),
            ("IT.RANDOMISATION_NUMBER", allocation.number if allocation else None),
            ("IT.STRATUM", allocation.stratum if allocation else None),
        ]
        if self.scope.arms and protocol.randomisation is not None:
            values.append(("IT.ARM", allocation.arm if allocation else None))
        form = _el(enrolment, "FormData", FormOID="F.DEMOGRAPHY")
        # The state, cycle and allocation are written by the transitions and randomisation
        # after the enrolment: the newest of those events wrote the group's current values.
        actions = {"participant.enrol", "participant.randomise"}
        actions |= {f"participant.{t.transition}" for t in subject.transitions}
        self._group(form, "IG.DEMOGRAPHY", values, notes.last(sorted(actions)), site)
        if subject.consents:
            form = _el(enrolment, "FormData", FormOID="F.CONSENT")
            for key, consent in enumerate(subject.consents, start=1):
                note = notes.last(["consent.record"], document_version=consent.document_version)
                consent_values = [
                    ("IT.CONSENT_DOCUMENT", consent.document_version),
                    ("IT.CONSENT_SIGNED_ON", consent.signed_on),
                ]
                self._group(form, "IG.CONSENT", consent_values, note, site, key)
        if subject.answers:
            latest = {answer.item_code: answer for answer in subject.answers}
            form = _el(enrolment, "FormData", FormOID="F.CHECKLIST")
            group = _el(form, "ItemGroupData", ItemGroupOID="IG.CHECKLIST")
            self._audit_record(group, notes.last(["checklist.answer"]), site)
            for item in protocol.checklist:
                answer = latest.get(item.code)
                if answer is None:
                    continue
                oid = f"IT.CHECK.{item.code.upper()}"
                element = _el(group, "ItemData", ItemOID=oid, Value=_value(answer.answer))
                self._audit_record(element, notes.last(["checklist.answer"], item=item.code), site)
        if subject.reviews:
            form = _el(enrolment, "FormData", FormOID="F.REVIEW")
            for key, review in enumerate(subject.reviews, start=1):
                note = notes.last(["checklist.assess"], item=review.item_code)
                review_values = [
                    ("IT.REVIEW_ITEM", review.item_code),
                    ("IT.REVIEW_ACCEPTABLE", review.acceptable),
                    ("IT.REVIEW_RATIONALE", review.rationale),
                    ("IT.REVIEW_AT", review.assessed_at),
                    ("IT.REVIEW_VOIDED_AT", review.voided_at),
                    ("IT.REVIEW_VOID_REASON", review.void_reason),
                ]
                self._group(form, "IG.REVIEW", review_values, note, site, key)
        if subject.signatures:
            form = _el(enrolment, "FormData", FormOID="F.SIGNOFF")
            for key, signature in enumerate(subject.signatures, start=1):
                note = newest(
                    notes.last(["checklist.sign"], content_hash=signature.content_hash),
                    notes.voiding(signature.id),
                )
                signoff = [
                    ("IT.SIGNOFF_OUTCOME", signature.outcome),
                    ("IT.SIGNOFF_CONTENT_HASH", signature.content_hash),
                    ("IT.SIGNOFF_VOIDED_AT", signature.voided_at),
                    ("IT.SIGNOFF_VOID_REASON", signature.void_reason),
                ]
                sign = self.signature(signature, site)
                self._group(form, "IG.SIGNOFF", signoff, note, site, key, sign)

    def _session(
        self, data: ET.Element, subject: Subject, rows: SessionRows, notes: _Notes
    ) -> None:
        session, site = rows.session, subject.site
        event = _el(
            data,
            "StudyEventData",
            StudyEventOID=SESSION_EVENTS[SessionKind(session.kind)][0],
            StudyEventRepeatKey=session.id,
        )
        values = [
            ("IT.SESSION_KIND", session.kind),
            ("IT.SESSION_CYCLE", session.cycle),
            ("IT.SESSION_STATUS", session.status),
            ("IT.SESSION_SCHEDULED_AT", session.scheduled_at),
            ("IT.SESSION_STARTED_AT", session.started_at),
            ("IT.SESSION_ENDED_AT", session.ended_at),
            ("IT.SESSION_OVERNIGHT", session.overnight_stay),
        ]
        note = notes.last(["session.schedule", "session.update"], session.id)
        self._group(_el(event, "FormData", FormOID="F.SESSION"), "IG.SESSION", values, note, site)
        if session.kind != SessionKind.DOSING:
            return
        if rows.doses:
            form = _el(event, "FormData", FormOID="F.DOSE")
            for key, dose in enumerate(rows.doses, start=1):
                note = notes.last(["dose.record"], session.id, administered_at=dose.administered_at)
                dose_values = [
                    ("IT.DOSE_KIND", dose.kind),
                    ("IT.DOSE_MG", dose.amount_mg),
                    ("IT.DOSE_AT", dose.administered_at),
                    ("IT.DOSE_DISPENSING", subject.dispensings.get(dose.id)),
                    ("IT.DOSE_JUSTIFICATION", dose.breach_justification),
                ]
                self._group(form, "IG.DOSE", dose_values, note, site, key)
        if rows.readings:
            form = _el(event, "FormData", FormOID="F.VITALS")
            for key, reading in enumerate(rows.readings, start=1):
                note = notes.last(["vitals.record"], session.id, measured_at=reading.measured_at)
                reading_values = [
                    ("IT.VS_AT", reading.measured_at),
                    ("IT.SYSBP", reading.systolic),
                    ("IT.DIABP", reading.diastolic),
                    ("IT.PULSE", reading.heart_rate),
                    ("IT.TEMP", reading.temperature_c),
                ]
                self._group(form, "IG.VITALS", reading_values, note, site, key)
        if rows.effects is not None:
            effects = rows.effects
            effect_values: list[tuple[str, Any]] = [
                (f"IT.EFFECT.{code.upper()}", code in effects.effects)
                for code, _ in SESSION_EFFECTS
            ]
            effect_values += [
                ("IT.EFFECTS_NONE", effects.none_observed),
                ("IT.EFFECTS_NOTE", effects.note),
            ]
            note = notes.last(["effects.record"], session.id)
            form = _el(event, "FormData", FormOID="F.EFFECTS")
            self._group(form, "IG.EFFECTS", effect_values, note, site)

    def _assessments(
        self, data: ET.Element, subject: Subject, protocol: ProtocolDefinition, notes: _Notes
    ) -> None:
        instruments = {i.code: i for i in protocol.instruments}
        by_timepoint: dict[str, list[Any]] = defaultdict(list)
        for assessment in subject.assessments:
            by_timepoint[assessment.timepoint].append(assessment)
        for timepoint in protocol.timepoints:
            done = [a for a in by_timepoint.get(timepoint.code, []) if a.instrument in instruments]
            if not done:
                continue
            event = _el(data, "StudyEventData", StudyEventOID=f"SE.TP.{timepoint.code.upper()}")
            for assessment in done:
                instrument = instruments[assessment.instrument]
                code = instrument.code.upper()
                values: list[tuple[str, Any]] = [
                    (f"IT.{code}.ADMINISTERED_AT", assessment.administered_at)
                ]
                values += [
                    (f"IT.{code}.{item.code.upper()}", assessment.items.get(item.code))
                    for item in instrument.items
                ]
                values += [
                    (f"IT.{code}.TOTAL", assessment.total),
                    (f"IT.{code}.BAND", assessment.band),
                    (f"IT.{code}.IN_WINDOW", assessment.in_window),
                ]
                note = notes.last(["assessment.record"], assessment=assessment.id)
                form = _el(event, "FormData", FormOID=f"F.{code}")
                self._group(form, f"IG.{code}", values, note, subject.site)

    def _safety(self, data: ET.Element, subject: Subject, notes: _Notes) -> None:
        if not (
            subject.adverse_events
            or subject.screens
            or subject.side_effects
            or subject.pregnancy_tests
        ):
            return
        site = subject.site
        event = _el(data, "StudyEventData", StudyEventOID="SE.SAFETY")
        if subject.adverse_events:
            form = _el(event, "FormData", FormOID="F.AE")
            for ae in subject.adverse_events:
                values = [
                    ("IT.AE_TERM", ae.term),
                    ("IT.AE_ONSET_AT", ae.onset_at),
                    ("IT.AE_GRADE", ae.grade),
                    ("IT.AE_SERIOUS", ae.serious),
                    ("IT.AE_CRITERIA", " ".join(ae.serious_criteria)),
                    ("IT.AE_OUTCOME", ae.outcome),
                    ("IT.AE_RESOLVED_AT", ae.resolved_at),
                    ("IT.AE_RELATEDNESS", ae.relatedness),
                    ("IT.AE_REPORTED_AT", ae.reported_at),
                ]
                self._group(
                    form,
                    "IG.AE",
                    values,
                    newest(
                        notes.last(["adverse_event.record"], id=ae.id),
                        notes.about("adverse_event", ae.id),
                    ),
                    site,
                    ae.id,
                )
        if subject.screens:
            form = _el(event, "FormData", FormOID="F.SUICIDALITY")
            for screen in subject.screens:
                screen_values: list[tuple[str, Any]] = [("IT.SCREEN_AT", screen.screened_at)]
                screen_values += [
                    (f"IT.SCREEN_{name.upper()}", getattr(screen, name)) for name in SCREEN_ITEMS
                ]
                note = notes.last(["suicidality_screen.record"], id=screen.id)
                self._group(form, "IG.SUICIDALITY", screen_values, note, site, screen.id)
        if subject.side_effects:
            form = _el(event, "FormData", FormOID="F.SIDE_EFFECT")
            for effect in subject.side_effects:
                effect_values = [
                    ("IT.SIDE_EFFECT_TERM", effect.term),
                    ("IT.SIDE_EFFECT_SEVERITY", effect.severity),
                    ("IT.SIDE_EFFECT_ONSET_AT", effect.onset_at),
                    ("IT.SIDE_EFFECT_RESOLVED_AT", effect.resolved_at),
                ]
                note = notes.last(["side_effect.record"], id=effect.id)
                self._group(form, "IG.SIDE_EFFECT", effect_values, note, site, effect.id)
        if subject.pregnancy_tests:
            form = _el(event, "FormData", FormOID="F.PREGNANCY_TEST")
            for test in subject.pregnancy_tests:
                test_values = [
                    ("IT.PREGNANCY_TESTED_AT", test.tested_at),
                    ("IT.PREGNANCY_RESULT", test.result),
                ]
                note = notes.last(["pregnancy_test.record"], tested_at=test.tested_at)
                self._group(form, "IG.PREGNANCY_TEST", test_values, note, site, test.id)

    def _disposition(self, data: ET.Element, subject: Subject, notes: _Notes) -> None:
        if not subject.transitions:
            return
        event = _el(data, "StudyEventData", StudyEventOID="SE.DISPOSITION")
        form = _el(event, "FormData", FormOID="F.TRANSITION")
        seen: dict[str, int] = defaultdict(int)
        for key, transition in enumerate(subject.transitions, start=1):
            # The n-th transition of a kind is the n-th audit event of its action.
            action = f"participant.{transition.transition}"
            note = notes.nth(action, seen[action])
            seen[action] += 1
            values = [
                ("IT.TRANSITION", transition.transition),
                ("IT.FROM_STATE", transition.from_state),
                ("IT.TO_STATE", transition.to_state),
                ("IT.TRANSITION_AT", transition.occurred_at),
                ("IT.TRANSITION_REASON", transition.reason),
                ("IT.WITHDRAWAL_CATEGORY", transition.withdrawal_category),
                ("IT.OVERRIDE", transition.override),
            ]
            self._group(form, "IG.TRANSITION", values, note, subject.site, key)


def _text(element: ET.Element) -> str:
    return ET.tostring(element, encoding="unicode")


def odm_document(db: Session, scope: ExportScope, created: datetime | None = None) -> Iterator[str]:
    """The ODM document as it streams, in pieces of text."""
    created = created or datetime.now(UTC)
    query = scope.query()
    versions = protocol_versions(db, query)
    everyone = users(db)
    user_names = {u.id: u.username for u in everyone}
    meanings = list(
        db.scalars(
            sa.select(ChecklistSignature.meaning).distinct().order_by(ChecklistSignature.meaning)
        )
    )
    meaning_oids = {m: f"SD.{n}" for n, m in enumerate(meanings, start=1)}
    covered = scope.covered_site
    sites = [
        s
        for s in db.scalars(sa.select(Site).order_by(Site.code))
        if covered is None or s.code == covered
    ]
    # A site's export names its own staff and the study-wide roles, no other site's people.
    site_ids = {s.id for s in sites}
    people = [
        u for u in everyone if covered is None or u.site_id in site_ids or u.role in SITELESS_ROLES
    ]
    actors = [a for a in system_actors(db) if a not in user_names.values()]
    listed = frozenset([*(u.username for u in people), *actors])
    description = f"Exported for {scope.reader}" + ("" if scope.arms else "; blinded: no arms")
    stamp = created.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    yield '<?xml version="1.0" encoding="UTF-8"?>\n'
    yield (
        f'<ODM xmlns="{NS}" ODMVersion="{ODM_VERSION}" FileType="Snapshot" Granularity="All"'
        f' FileOID={quoteattr(f"tracker.{created:%Y%m%dT%H%M%S}")} CreationDateTime="{stamp}"'
        f' SourceSystem="tracker" SourceSystemVersion={quoteattr(source_version())}'
        f" Description={quoteattr(description)}>\n"
    )
    by_code: dict[str, list[ProtocolVersion]] = defaultdict(list)
    for version in versions:
        by_code[version.code].append(version)
    for code, code_versions in by_code.items():
        study = _el(None, "Study", OID=study_oid(code))
        variables = _el(study, "GlobalVariables")
        _el(variables, "StudyName", code_versions[-1].title)
        _el(variables, "StudyDescription", code_versions[-1].title)
        _el(variables, "ProtocolName", code.upper())
        for version in code_versions:
            study.append(_Metadata(version, definition_of(version), scope.arms).build())
        yield _text(study) + "\n"
    for code, code_versions in by_code.items():
        yield (
            _text(_admin_data(study_oid(code), code_versions, people, actors, sites, meanings))
            + "\n"
        )
    writer = _SubjectWriter(scope, user_names, meaning_oids, listed)
    current: int | None = None
    for subject in subjects(db, query, arms=scope.arms, events=True):
        version = subject.participant.protocol_version
        if version.id != current:
            if current is not None:
                yield "</ClinicalData>\n"
            current = version.id
            yield (
                f"<ClinicalData StudyOID={quoteattr(study_oid(version.code))}"
                f" MetaDataVersionOID={quoteattr(mdv_oid(version))}>\n"
            )
        yield _text(writer.subject(subject, definition_of(version))) + "\n"
    if current is not None:
        yield "</ClinicalData>\n"
    yield "</ODM>\n"
