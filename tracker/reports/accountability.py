"""The investigational-product section of the compliance report (SPEC §12): each lot in the
report's scope judged by C20 to C23 (the core's lot checks), with its balance. A blinded
reader sees an arm-bound lot by its number only."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.db import utcnow
from tracker.pharmacy import queries
from tracker.pharmacy.models import DrugLot
from tracker.protocol.accountability import LOT_CHECKS, balance, run_lot_checks
from tracker.protocol.compliance_records import CheckResult
from tracker.sites.models import Site


@dataclass(frozen=True)
class LotResult:
    lot_id: int
    label: str
    balance: int
    results: tuple[CheckResult, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "lot": self.lot_id,
            "label": self.label,
            "balance": self.balance,
            "results": [
                {
                    "check": r.check_id,
                    "outcome": r.outcome.value,
                    "evidence": [e.to_dict() for e in r.evidence],
                    "note": r.note,
                }
                for r in self.results
            ],
        }


def accountability_section(db: Session, user: User | None, site: str | None) -> list[LotResult]:
    """Every lot of the user's site (or the study's, or the filter's site), judged now."""
    query = sa.select(DrugLot).order_by(DrugLot.site_id, DrugLot.id)
    if user is not None and user.site_id is not None:
        query = query.where(DrugLot.site_id == user.site_id)
    if site:
        query = query.join(Site, Site.id == DrugLot.site_id).where(Site.code == site)
    lots = list(db.scalars(query))
    masked = user is None or not queries.sees_products(db, user)
    now = utcnow()
    return [
        LotResult(lot.id, record.label, balance(record.lines), run_lot_checks(record, now))
        for lot, record in zip(lots, queries.lot_records(db, lots, masked=masked), strict=True)
    ]


def lot_check_catalogue() -> list[dict[str, str]]:
    return [
        {"id": c.id, "description": c.description, "severity": c.severity.value, "scope": "lot"}
        for c in LOT_CHECKS
    ]
