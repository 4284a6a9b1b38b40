"""An administrator of several clinics signs in to the clinic they last switched to, not always the
first by name; one who has never switched, or lost that clinic, gets the first."""
from __future__ import annotations

import re

from sqlalchemy import delete
from sqlmodel import select

from core.db import new_session
from core.models import Clinic, Membership, User
from tests.support import login, post


def _current_clinic(client) -> int:
    html = client.get("/").text
    return int(re.search(r'<select id="clinic_id" name="clinic_id"[^>]*>.*?<option value="(\d+)" selected>', html,
                         re.S).group(1))


def _sign_in_again(app, client) -> int:
    assert post(app, client, "/logout").status_code == 302
    login(app, client, "admin")
    return _current_clinic(client)


def test_sign_in_opens_the_clinic_last_switched_to(app, client, db):
    first, second = db.exec(select(Clinic).order_by(Clinic.name)).all()[:2]
    login(app, client, "admin")
    assert _current_clinic(client) == first.id  # never switched: the first by name

    assert post(app, client, "/switch-clinic", {"clinic_id": second.id}).status_code == 302
    assert _current_clinic(client) == second.id
    assert _sign_in_again(app, client) == second.id
    assert _sign_in_again(app, client) == second.id  # signing in does not forget it

    post(app, client, "/switch-clinic", {"clinic_id": first.id})
    assert _sign_in_again(app, client) == first.id

    assert post(app, client, "/switch-clinic", {"clinic_id": 99999}).status_code == 404  # not theirs: no change
    assert _sign_in_again(app, client) == first.id


def test_a_last_clinic_whose_membership_was_removed_is_not_opened(app, client, db):
    first, second = db.exec(select(Clinic).order_by(Clinic.name)).all()[:2]
    login(app, client, "admin")
    post(app, client, "/switch-clinic", {"clinic_id": second.id})
    admin = db.exec(select(User).where(User.email == "admin@demo.glia.example")).one()
    with new_session(app.extensions["glia"].engine) as w:
        w.exec(delete(Membership).where(Membership.user_id == admin.id, Membership.clinic_id == second.id))
        w.commit()
    assert post(app, client, "/logout").status_code == 302
    login(app, client, "admin")
    html = client.get("/").text
    assert 'id="clinic_id"' not in html and f">{first.name}</span>" in html  # one clinic left: that one
