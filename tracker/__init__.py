"""tracker: the protocol workflow tracker for clinical trials of MDMA-assisted therapy."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.routing import IntegerConverter, Map

from tracker import db as database
from tracker.config import Settings, check_shared_state, load_settings, server_workers
from tracker.paths import SOURCE_ROOT as ROOT  # noqa: F401 (the checkout, for tests and tools)
from tracker.paths import STATIC, TEMPLATES

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` that only matches ids a 32-bit integer column can hold: a huge id in a
    path is a plain 404, not an out-of-range error from the database (a 500)."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def create_app(
    overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> Flask:
    """Build the app: settings (checked), database, extensions, blueprints, errors, CLI."""
    settings = load_settings(environ=environ, overrides=overrides)
    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        template_folder=str(TEMPLATES),
        static_folder=str(STATIC),
    )
    app.config.from_mapping(settings.flask_config())
    app.extensions["tracker.settings"] = settings
    check_shared_state(settings, server_workers())
    if settings.proxy_fix:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Only as many X-Forwarded-* values as there are trusted proxies are believed.
        hops = settings.proxy_fix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    # Before any route is added: ids in paths are 32-bit integer columns.
    app.url_map.converters["int"] = BoundedIntConverter
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # WeasyPrint reports every layout step at INFO (a line per page of a PDF report), and
    # pikepdf its start-up.
    for name in ("weasyprint", "fontTools", "pikepdf"):
        logging.getLogger(name).setLevel(logging.WARNING)

    from tracker.auth.passwords import use_fast_hashing

    use_fast_hashing(settings.env == "testing")

    app.jinja_env.add_extension("jinja2.ext.do")
    from tracker.security import Permission, can

    app.jinja_env.globals["can"] = lambda name: can(Permission(name))
    from tracker.protocol.accountability import dispensing_number

    app.jinja_env.globals["dispensing_number"] = dispensing_number
    from tracker.pages import refusal_anchor

    app.jinja_env.globals["refusal_anchor"] = refusal_anchor
    from tracker.site_time import local_time, zone_name

    app.jinja_env.filters["local"] = local_time
    app.jinja_env.globals["zone_name"] = zone_name

    database.init_app(app, settings.database_url)
    _init_checkpoints(app, settings)
    _init_extensions(app)
    _register_blueprints(app)

    from tracker.http_errors import register_error_handlers

    register_error_handlers(app)
    _register_request_edges(app)

    from tracker.cli import register_cli

    register_cli(app)
    return app


def _init_checkpoints(app: Flask, settings: Settings) -> None:
    from datetime import timedelta

    from tracker.audit.checkpoints import CheckpointError, CheckpointStore, load_private_key
    from tracker.audit.services import CHECKPOINTS
    from tracker.config import ConfigError

    try:
        key = load_private_key(settings.audit_signing_key)
    except CheckpointError as error:
        raise ConfigError(str(error)) from None
    assert settings.audit_checkpoint_dir is not None
    app.extensions[CHECKPOINTS] = CheckpointStore(
        settings.audit_checkpoint_dir, key, timedelta(minutes=settings.audit_checkpoint_minutes)
    )


def _init_extensions(app: Flask) -> None:
    from tracker.auth.signin import init_login
    from tracker.extensions import csrf, limiter

    csrf.init_app(app)
    limiter.init_app(app)
    init_login(app)


def _register_feature_api_routes() -> None:
    """Each feature owns its JSON routes (its ``api`` module adds them to the API blueprint);
    importing the modules registers them before the blueprint is registered on the app."""
    from tracker.api import views as api_views
    from tracker.dosing import api as dosing_api
    from tracker.exchange import api as exchange_api
    from tracker.jobs import api as jobs_api
    from tracker.notes import api as notes_api
    from tracker.outcomes import api as outcomes_api
    from tracker.participants import api as participants_api
    from tracker.pharmacy import api as pharmacy_api
    from tracker.randomisation import api as randomisation_api
    from tracker.reports import api as reports_api
    from tracker.safety import api as safety_api
    from tracker.sessions import api as sessions_api

    del (
        api_views,
        dosing_api,
        exchange_api,
        jobs_api,
        notes_api,
        outcomes_api,
        participants_api,
        pharmacy_api,
        randomisation_api,
        reports_api,
        safety_api,
        sessions_api,
    )


def _register_blueprints(app: Flask) -> None:
    from tracker.admin.views import bp as admin_bp
    from tracker.api import bp as api_bp
    from tracker.auth.views import bp as auth_bp
    from tracker.dosing.views import bp as dosing_bp
    from tracker.exchange.views import bp as exchange_bp
    from tracker.jobs.views import bp as jobs_bp
    from tracker.main.views import bp as main_bp
    from tracker.notes.views import bp as notes_bp
    from tracker.outcomes.views import bp as outcomes_bp
    from tracker.participants.views import bp as participants_bp
    from tracker.pharmacy.views import bp as pharmacy_bp
    from tracker.randomisation.views import bp as randomisation_bp
    from tracker.reports.audit_views import bp as audit_bp
    from tracker.reports.views import bp as reports_bp
    from tracker.safety.views import bp as safety_bp
    from tracker.sessions.views import bp as sessions_bp

    _register_feature_api_routes()
    for blueprint in (
        auth_bp,
        main_bp,
        participants_bp,
        sessions_bp,
        dosing_bp,
        safety_bp,
        notes_bp,
        outcomes_bp,
        randomisation_bp,
        pharmacy_bp,
        reports_bp,
        exchange_bp,
        jobs_bp,
        admin_bp,
        audit_bp,
        api_bp,
    ):
        app.register_blueprint(blueprint)


def _register_request_edges(app: Flask) -> None:
    @app.before_request
    def _refuse_nul_in_forms() -> None:
        """No submitted text may hold a NUL character: PostgreSQL cannot store one (it would
        be a 500) and no clinical record needs one. The API checks its JSON the same way."""
        fields = list(request.args.items(multi=True))
        if request.method in ("POST", "PUT", "PATCH") and request.form:
            fields += list(request.form.items(multi=True))
        for key, value in fields:
            if "\x00" in key or "\x00" in value:
                from werkzeug.exceptions import BadRequest

                raise BadRequest("The request holds a NUL character, which no field may contain.")

    # after_request functions run in reverse order: the commit runs first, then the headers
    # are set on whatever response it leaves.
    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if app.config["SESSION_COOKIE_SECURE"]:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.endpoint != "static":
            # Pages and API answers may carry participant data: never cached.
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        return response

    from tracker.auth.services import COMMIT_REFUSAL

    @app.after_request
    def _commit_at_the_edge(response: Response) -> Response:
        """One commit per request when it went well; a rollback when it did not, except that
        a refused password check keeps its own record (the failure count and its audit
        event, written before anything else in the request)."""
        if not database.has_db():
            return response
        db = database.get_db()
        if response.status_code >= 400 and not db.info.pop(COMMIT_REFUSAL, False):
            db.rollback()
            return response
        try:
            db.commit()
        except SQLAlchemyError:
            db.rollback()
            app.logger.exception("commit failed")
            from tracker.http_errors import json_error
            from tracker.security import is_api_request

            message = "The change could not be saved; nothing was changed. Try again."
            if is_api_request():
                return json_error(503, message)
            return Response(message, status=503, mimetype="text/plain")
        return response
