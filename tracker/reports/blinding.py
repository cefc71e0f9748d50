"""The blinding section of the compliance report (SPEC §11): how many blinding-integrity
guesses are recorded and, once the study is unblinded, Bang's blinding index per arm and kind
of respondent (the core's ``bang_index``). Before the unblinding no figure is given by arm."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.participants.models import Participant
from tracker.participants.queries import visibility
from tracker.protocol.randomisation import BlindingIndex, bang_index
from tracker.randomisation.models import (
    BlindingGuess,
    EmergencyUnblinding,
    RandomisationEntry,
    StudyUnblinding,
)
from tracker.randomisation.queries import study_unblinded

RESPONDENT_ORDER = ("participant", "therapist", "rater")


@dataclass(frozen=True)
class BlindingSection:
    unblinding: StudyUnblinding | None
    guesses: int
    emergency_unblindings: int
    indices: list[BlindingIndex] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "study_unblinded": self.unblinding is not None,
            "unblinded_at": self.unblinding.unblinded_at.isoformat() if self.unblinding else None,
            "guesses": self.guesses,
            "emergency_unblindings": self.emergency_unblindings,
            "blinding_index": [
                {
                    "arm": i.arm,
                    "respondent": i.respondent,
                    "n": i.n,
                    "correct": i.correct,
                    "incorrect": i.incorrect,
                    "unsure": i.unsure,
                    "index": i.index,
                    "standard_error": i.standard_error,
                    "interval_95": list(i.interval) if i.interval else None,
                }
                for i in self.indices
            ],
        }


def blinding_section(
    db: Session, user: User | None, within: sa.Select[Participant] | None = None
) -> BlindingSection:
    scope = [] if within is None else [Participant.id.in_(within.with_only_columns(Participant.id))]
    visible = sa.select(Participant.id).where(*visibility(user), *scope)
    guesses = int(
        db.scalar(
            sa.select(sa.func.count())
            .select_from(BlindingGuess)
            .where(BlindingGuess.participant_id.in_(visible))
        )
        or 0
    )
    unblindings = int(
        db.scalar(
            sa.select(sa.func.count())
            .select_from(EmergencyUnblinding)
            .where(EmergencyUnblinding.participant_id.in_(visible))
        )
        or 0
    )
    unblinding = study_unblinded(db)
    if unblinding is None:
        return BlindingSection(None, guesses, unblindings)
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for arm, respondent, guess in db.execute(
        sa.select(RandomisationEntry.arm, BlindingGuess.respondent, BlindingGuess.guess)
        .join(RandomisationEntry, RandomisationEntry.participant_id == BlindingGuess.participant_id)
        .where(BlindingGuess.participant_id.in_(visible))
    ):
        grouped[(arm, respondent)].append(guess)
    indices = [
        bang_index(arm, respondent, values)
        for (arm, respondent), values in sorted(
            grouped.items(), key=lambda item: (item[0][0], RESPONDENT_ORDER.index(item[0][1]))
        )
    ]
    return BlindingSection(unblinding, guesses, unblindings, indices)
