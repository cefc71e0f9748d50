"""Site time (issue 17): pages show and take times in the signed-in user's site's time zone,
with the offset; everything is stored and exchanged (the API) in UTC. Study-wide users (the
auditor, the admin, the statistician) see UTC."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from flask import has_request_context
from flask_login import current_user


@functools.cache
def zone(name: str) -> tzinfo:
    return UTC if name in ("", "UTC") else ZoneInfo(name)


def viewer_zone() -> tzinfo:
    """The zone of the user of this request (UTC outside a request or without a site)."""
    if not has_request_context() or not current_user.is_authenticated:
        return UTC
    site = getattr(current_user, "site", None)
    return zone(site.time_zone) if site is not None else UTC


def zone_label(tz: tzinfo, at: datetime | None = None) -> str:
    """ "UTC", or "Europe/Berlin, UTC+01:00" (the offset at ``at``, now by default)."""
    if tz is UTC:
        return "UTC"
    offset = (at or datetime.now(UTC)).astimezone(tz).strftime("%z")
    return f"{tz}, UTC{offset[:3]}:{offset[3:]}"


def site_time(moment: Any, tz: tzinfo | None = None) -> str:
    """A moment as its site reads it: "2026-12-04 14:30 UTC" or "2026-12-04 15:30 +01:00"."""
    if moment is None:
        return "—"
    tz = tz or viewer_zone()
    local: datetime = moment.astimezone(tz)
    if tz is UTC:
        return local.strftime("%Y-%m-%d %H:%M UTC")
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M ") + f"{offset[:3]}:{offset[3:]}"


def local_time(moment: Any, tz: tzinfo | None = None) -> str:
    """A moment in the site's time without the zone ("2026-12-04 15:30"), for a table whose
    header names the zone (``zone_name``)."""
    if moment is None:
        return "—"
    local: datetime = moment.astimezone(tz or viewer_zone())
    return local.strftime("%Y-%m-%d %H:%M")


def zone_name() -> str:
    """The viewer's zone for a header: "UTC" or "Europe/Berlin, UTC+01:00"."""
    return zone_label(viewer_zone())
