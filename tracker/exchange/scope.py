"""What an export may carry for its reader (SPEC §11, §13): their site's participants only
(the visibility every page uses), and the allocated arms only for a reader who may know every
arm: the unblinded roles, or anyone once the study is unblinded.

An investigator's emergency unblinding reveals one arm on that participant's page, for their
care; it does not put the arm into a data set that leaves the system.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import SITELESS_ROLES, User
from tracker.errors import InvalidInput
from tracker.exchange.source import participants_query
from tracker.participants.models import Participant
from tracker.pharmacy.queries import MASKED_PRODUCT
from tracker.randomisation.queries import ALWAYS_UNBLINDED, arm_labels_by_version, study_unblinded
from tracker.sites.models import Site

SDTM_FORMATS = ("csv", "xpt", "json")


@dataclass(frozen=True)
class ExportScope:
    """Who the export is for and what it carries."""

    reader: str  # the name on the file and the audit trail
    user: User | None  # None: the command line's study-wide view
    site: str | None
    arms: bool
    arm_labels: dict[int, dict[str, str]]  # protocol version id -> arm code -> label
    # The one site the export covers: the one asked for, else a site user's own (None: every
    # site). Resolved with the scope, so it holds after the session that read the user ends.
    covered_site: str | None = None

    def query(self) -> sa.Select[Participant]:
        return participants_query(self.user, self.site)

    def arm_label(self, version_id: int, arm: str) -> str:
        """An arm's label in its own protocol version (two protocols may share a code)."""
        return self.arm_labels.get(version_id, {}).get(arm, arm)

    def treatment(self, version_id: int, arm: str | None) -> str:
        """The product a randomised participant was given, as this reader may know it."""
        if arm is None or not self.arms:
            return MASKED_PRODUCT
        return self.arm_label(version_id, arm)


def may_know_arms(db: Session, user: User | None, requested: bool) -> bool:
    """Whether the export carries arms: once the study is unblinded, always; before, for a
    reader who may know every arm, or, on the command line (which has no role), when asked."""
    if study_unblinded(db) is not None:
        return True
    return requested if user is None else user.role in ALWAYS_UNBLINDED


def export_scope(
    db: Session, user: User | None, reader: str, *, site: str | None = None, arms: bool = False
) -> ExportScope:
    """The scope of an export; an unknown site is refused before anything is written."""
    site_code = site.strip().upper() if site and site.strip() else None
    if (
        site_code is not None
        and db.scalar(sa.select(Site.id).where(Site.code == site_code)) is None
    ):
        raise InvalidInput(f"Unknown site {site_code!r}.")
    covered = site_code
    if covered is None and user is not None and user.role not in SITELESS_ROLES and user.site:
        covered = user.site.code
    return ExportScope(
        reader,
        user,
        site_code,
        may_know_arms(db, user, arms),
        arm_labels_by_version(db),
        covered_site=covered,
    )
