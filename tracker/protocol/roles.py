"""The roles a user of the tracker can hold (SPEC §1)."""

from enum import StrEnum


class Role(StrEnum):
    """A user's single role; the web layer maps permissions onto these values."""

    COORDINATOR = "coordinator"
    THERAPIST = "therapist"
    INVESTIGATOR = "investigator"
    AUDITOR = "auditor"
    ADMIN = "admin"
    RATER = "rater"  # blinded independent rater of outcome assessments (SPEC §10)
    PHARMACIST = "pharmacist"  # site investigational-product manager, unblinded (SPEC §11, §12)
    STATISTICIAN = "statistician"  # unblinded statistician: the randomisation list (SPEC §11)
