from __future__ import annotations

import functools
import re
import zoneinfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.errors import Conflict, InvalidInput, NotFound
from tracker.sites.models import Site

SITE_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")


def time_zone_problems(value: str) -> list[str]:
    if value not in available_time_zones():
        return [f"{value!r} is not a time zone: give an IANA name such as Europe/Berlin."]
    return []


@functools.cache
def available_time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def create_site(db: Session, actor: Actor, code: str, name: str, time_zone: str = "UTC") -> Site:
    """Create a study site; codes are short upper-case identifiers such as ``S01``."""
    code = code.strip().upper()
    name = name.strip()
    time_zone = (time_zone or "UTC").strip()
    problems = time_zone_problems(time_zone)
    if not SITE_CODE.match(code):
        problems.append("The site code must be 2 to 16 letters or digits, starting with a letter.")
    if not name or len(name) > 200:
        problems.append("The site name must be 1 to 200 characters.")
    if problems:
        raise InvalidInput(" ".join(problems), problems)
    if db.scalar(sa.select(Site.id).where(Site.code == code)) is not None:
        raise Conflict(f"A site with code {code} already exists.")
    site = Site(code=code, name=name, time_zone=time_zone)
    db.add(site)
    db.flush()
    record_event(
        db,
        actor,
        "site.create",
        "site",
        site.code,
        new={"code": code, "name": name, "time_zone": time_zone},
    )
    return site


def set_time_zone(db: Session, actor: Actor, site: Site, time_zone: str) -> Site:
    """The zone the site's pages show and take times in (an admin's change, audited)."""
    time_zone = (time_zone or "").strip()
    problems = time_zone_problems(time_zone)
    if problems:
        raise InvalidInput("The time zone was not changed: " + " ".join(problems), problems)
    if time_zone != site.time_zone:
        old = site.time_zone
        site.time_zone = time_zone
        db.flush()
        record_event(
            db,
            actor,
            "site.time_zone",
            "site",
            site.code,
            old={"time_zone": old},
            new={"time_zone": time_zone},
        )
    return site


def get_site_by_code(db: Session, code: str) -> Site:
    site = db.scalar(sa.select(Site).where(Site.code == code.strip().upper()))
    if site is None:
        raise NotFound(f"No site with code {code!r}.")
    return site


def list_sites(db: Session) -> list[Site]:
    return list(db.scalars(sa.select(Site).order_by(Site.code)))
