"""The API's own routes: health and the OpenAPI document."""

from __future__ import annotations

import sqlalchemy as sa
from flask import jsonify
from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, build_openapi
from tracker.api.schemas import (
    Health,
)
from tracker.db import get_db
from tracker.security import public


@api_route(
    bp, "/health", "GET", summary="Liveness and database check", tag="system", response=Health
)
@public
def health() -> ResponseReturnValue:
    try:
        get_db().execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError:
        return Health(status="unavailable", database="unreachable").model_dump(), 503
    return Health(status="ok", database="ok").model_dump()


@api_route(bp, "/openapi.json", "GET", summary="This OpenAPI document", tag="system")
@public
def openapi() -> ResponseReturnValue:
    return jsonify(build_openapi())
