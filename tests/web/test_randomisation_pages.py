"""Randomisation on the pages (SPEC §11): the coordinator randomises from the participant
page and sees the number, not the arm; the investigator's emergency unblinding needs their
password, shows the arm on a page of its own and leaves the unblinding on the participant
page; the statistician's allocation list shows the arms, and no blinded role reaches it."""

from __future__ import annotations

import html
import random
import re

import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login
from tests.factories import PASSWORD, make_user, randomised_depression_study
from tracker.audit.services import Actor
from tracker.histories import Team, run_histories
from tracker.outcome_histories import OutcomePlan, outcome_history
from tracker.participants.models import Participant
from tracker.paths import FIXTURES
from tracker.randomisation import queries
from tracker.study.services import activate_protocol

LABELS = ("Midomafetamine (MDMA) 120 mg + 60 mg", "Active placebo (methylphenidate 20 mg)")


def test_randomise_and_unblind_on_the_pages(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    _version, statistician, rater = randomised_depression_study(db_session)
    run_histories(
        [
            outcome_history(
                db_session,
                team,
                rater,
                random.Random(4),
                OutcomePlan("responder", stage="preparation"),
            )
        ]
    )
    db_session.commit()
    participant = db_session.scalars(sa.select(Participant)).one()
    page = f"/participants/{participant.id}"

    assert login(client, team.coordinator.username).status_code == 302
    shown = client.get(page).get_data(as_text=True)
    assert "Not randomised yet" in shown and "Randomise " + participant.study_id in shown
    done = client.post(
        f"/participants/{participant.id}/randomise",
        data={"csrf_token": csrf_token(client, page), "expected_version": participant.version},
        follow_redirects=True,
    )
    text = html.unescape(done.get_data(as_text=True))
    number = re.search(r"is randomised: (R\d\d-\d{5})", text)
    assert number, text[:2000]
    assert "blinded" in text and not any(label in text for label in LABELS)
    # Twice is refused, in plain sight.
    again = client.post(
        f"/participants/{participant.id}/randomise",
        data={"csrf_token": csrf_token(client, page), "expected_version": participant.version + 1},
        follow_redirects=True,
    )
    assert "Not randomised: " in html.unescape(again.get_data(as_text=True))
    assert client.get("/randomisation/").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    assert login(client, team.investigator.username).status_code == 302
    reason = "Suspected serotonin syndrome; the emergency physician needs the product."
    wrong = client.post(
        f"/participants/{participant.id}/unblind",
        data={"csrf_token": csrf_token(client, page), "reason": reason, "password": "nope"},
    )
    refused = html.unescape(wrong.get_data(as_text=True))
    assert wrong.status_code in (401, 403, 422) and "Not unblinded:" in refused
    # The reason typed is kept; the password never is.
    assert reason in refused and 'value="nope"' not in refused
    unblinded = client.post(
        f"/participants/{participant.id}/unblind",
        data={"csrf_token": csrf_token(client, page), "reason": reason, "password": PASSWORD},
    )
    assert unblinded.status_code == 200
    revealed = html.unescape(unblinded.get_data(as_text=True))
    label = next(label for label in LABELS if label in revealed)
    after = html.unescape(client.get(page).get_data(as_text=True))
    assert label in after and reason in after and team.investigator.printed_name in after
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    # Another blinded reader still sees no arm, but sees that an unblinding took place.
    assert login(client, team.coordinator.username).status_code == 302
    other = html.unescape(client.get(page).get_data(as_text=True))
    assert label not in other and reason in other
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    assert login(client, statistician.username).status_code == 302
    listing = html.unescape(client.get("/randomisation/").get_data(as_text=True))
    assert number.group(1) in listing and participant.study_id in listing
    assert "midomafetamine" in listing or "active_placebo" in listing
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    # The rater records their own guess at the primary endpoint, on a page that shows nothing
    # else of the participant; a guess for someone else is not offered.
    assert login(client, rater.username).status_code == 302
    guesses = f"/participants/{participant.id}/blinding-guesses"
    form = html.unescape(client.get(guesses).get_data(as_text=True))
    assert "The primary endpoint" in form and "The participant's" not in form
    token = csrf_token(client, guesses)
    refused = client.post(
        guesses,
        data={
            "csrf_token": token,
            "respondent": "participant",
            "occasion": "timepoint:primary_endpoint",
            "guess": "unsure",
            "confidence": "2",
        },
    )
    assert refused.status_code == 400
    recorded = client.post(
        guesses,
        data={
            "csrf_token": token,
            "respondent": "rater",
            "occasion": "timepoint:primary_endpoint",
            "guess": "active_placebo",
            "confidence": "3",
        },
        follow_redirects=True,
    )
    assert "The rater's guess is recorded" in html.unescape(recorded.get_data(as_text=True))
    (row,) = queries.guesses_of(db_session, participant.id)
    assert (row.respondent, row.respondent_user_id, row.guess) == (
        "rater",
        rater.id,
        "active_placebo",
    )


def test_the_block_sizes_are_known_to_the_unblinded_only(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    from tests.factories import FACTORY_ACTOR
    from tracker.auth.services import create_api_token

    activate_protocol(
        db_session,
        Actor.system(),
        (FIXTURES / "protocols" / "mdma-mdd-v2.toml").read_text(encoding="utf-8"),
    )
    statistician = make_user(db_session, "statistician", None)
    tokens = {
        "coordinator": create_api_token(db_session, FACTORY_ACTOR, team.coordinator),
        "statistician": create_api_token(db_session, FACTORY_ACTOR, statistician),
    }
    db_session.commit()

    def design(role: str) -> dict[str, object]:
        response = client.get(
            "/api/v1/protocol", headers={"Authorization": f"Bearer {tokens[role]}"}
        )
        assert response.status_code == 200
        return response.get_json()["definition"]["randomisation"]  # type: ignore[no-any-return]

    assert design("coordinator")["block_sizes"] == "concealed"
    assert [a["code"] for a in design("coordinator")["arms"]] == [  # type: ignore[index]
        "midomafetamine",
        "active_placebo",
    ]
    assert design("statistician")["block_sizes"] == [4, 6]
