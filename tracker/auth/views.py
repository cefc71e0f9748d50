from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from tracker.auth import services
from tracker.auth.forms import ChangePasswordForm, LoginForm
from tracker.auth.signin import (
    begin_sign_in,
    client_address,
    current_actor,
    end_sign_in,
)
from tracker.db import get_db
from tracker.errors import InvalidInput
from tracker.extensions import limiter, password_check_limit
from tracker.security import Permission, public, requires

bp = Blueprint("auth", __name__)


def _login_rate_limit() -> str:
    return str(current_app.config["TRACKER_LOGIN_RATE_LIMIT"])


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if target:
        parts = urlsplit(target)
        if (
            not parts.scheme
            and not parts.netloc
            and target.startswith("/")
            and not target.startswith("//")
        ):
            return target
    return url_for("main.dashboard")


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(_login_rate_limit, methods=["POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        policy = services.lockout_policy()
        try:
            result = services.authenticate(
                get_db(),
                form.username.data or "",
                form.password.data or "",
                ip_address=client_address(),
                max_failures=policy.max_failures,
                lockout=policy.lockout,
            )
        except services.LoginRefused as refused:
            # Rendered with 200 so the edge commits the audited failure and the lockout count.
            error = refused.message
        else:
            begin_sign_in(result)
            if result.user.password_temporary:
                flash(
                    "Your password was set by an administrator. Choose your own before you "
                    "go on: until then you cannot sign or use the API.",
                    "info",
                )
                return redirect(url_for("auth.change_password"))
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form, error=error)


@bp.route("/logout", methods=["POST"])
@requires(Permission.ACCOUNT_MANAGE_OWN)
def logout() -> ResponseReturnValue:
    end_sign_in(current_user._get_current_object())
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@requires(Permission.ACCOUNT_MANAGE_OWN)
@password_check_limit
def change_password() -> ResponseReturnValue:
    form = ChangePasswordForm()
    user = current_user._get_current_object()
    status = 200
    if form.validate_on_submit():
        db = get_db()
        try:
            services.check_password(
                db, user, current_actor(), form.current_password.data or "", "changed"
            )
        except services.PasswordRefused as refused:
            form.current_password.errors.append(refused.message)
            status = 422
        else:
            try:
                services.set_password(
                    db,
                    current_actor(),
                    user,
                    form.new_password.data or "",
                    reason="changed by the user",
                )
            except InvalidInput as error:
                form.new_password.errors.extend(error.details or [error.message])
                status = 400
            else:
                # Every session ended with the change, this one included: sign in again.
                end_sign_in(user)
                flash("Your password is changed. Sign in with the new password.", "success")
                return redirect(url_for("auth.login"))
    elif request.method == "POST":
        status = 400
    return render_template(
        "auth/change_password.html", form=form, temporary=user.password_temporary
    ), status
