"""User and site administration for the admin role."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from tracker.admin.forms import (
    NO_SITE,
    ActiveForm,
    EmailForm,
    ProtocolActivateForm,
    ResetPasswordForm,
    RoleChangeForm,
    SiteCreateForm,
    SiteTimeZoneForm,
    UserCreateForm,
)
from tracker.auth import services as users
from tracker.auth.models import User
from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.errors import DomainError
from tracker.participants.queries import enrolled_by_version
from tracker.paths import FIXTURES
from tracker.protocol import ProtocolFileError
from tracker.security import Permission, requires
from tracker.sites import services as sites
from tracker.sites.models import Site
from tracker.study import services as study

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _site_choices() -> list[tuple[str, str]]:
    return [(s.code, f"{s.code} — {s.name}") for s in sites.list_sites(get_db())]


def _chosen_site(code: str | None) -> Site | None:
    return None if not code or code == NO_SITE else sites.get_site_by_code(get_db(), code)


def _form_error(form: FlaskForm, error: DomainError) -> None:
    form.form_errors.extend(error.details or [error.message])


@bp.route("/users")
@requires(Permission.USERS_MANAGE)
def user_list() -> ResponseReturnValue:
    return render_template("admin/users.html", users=users.list_users(get_db()))


@bp.route("/users/new", methods=["GET", "POST"])
@requires(Permission.USERS_MANAGE)
def user_create() -> ResponseReturnValue:
    form = UserCreateForm()
    form.set_site_choices(_site_choices())
    status = 200 if request.method == "GET" else 400
    if form.validate_on_submit():
        try:
            user = users.create_user(
                get_db(),
                current_actor(),
                username=form.username.data or "",
                role=form.role.data or "",
                password=form.new_password.data or "",
                printed_name=form.printed_name.data or "",
                site=_chosen_site(form.site.data),
                email=form.email.data,
            )
        except DomainError as error:
            _form_error(form, error)
            status = error.status
        else:
            flash(
                f"User {user.username} created with a temporary password: they choose their "
                "own at their first sign-in.",
                "success",
            )
            return redirect(url_for("admin.user_detail", user_id=user.id))
    return render_template("admin/user_create.html", form=form), status


def _detail_forms(user: User) -> tuple[RoleChangeForm, ActiveForm, ResetPasswordForm]:
    role_form = RoleChangeForm(
        prefix="role", data={"role": user.role, "site": user.site.code if user.site else NO_SITE}
    )
    role_form.set_site_choices(_site_choices())
    return role_form, ActiveForm(prefix="active"), ResetPasswordForm(prefix="reset")


def _render_detail(
    user: User,
    role_form: RoleChangeForm,
    active_form: ActiveForm,
    reset_form: ResetPasswordForm,
    status: int = 200,
    email_form: EmailForm | None = None,
) -> ResponseReturnValue:
    return render_template(
        "admin/user_detail.html",
        user=user,
        role_form=role_form,
        active_form=active_form,
        reset_form=reset_form,
        email_form=email_form or EmailForm(prefix="email", data={"email": user.email or ""}),
    ), status


@bp.route("/users/<int:user_id>/email", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def user_set_email(user_id: int) -> ResponseReturnValue:
    user = users.get_user(get_db(), user_id)
    form = EmailForm(prefix="email")
    if form.validate_on_submit():
        try:
            users.set_email(get_db(), current_actor(), user, form.email.data)
        except DomainError as error:
            _form_error(form, error)
        else:
            flash(f"{user.username}'s e-mail address is {user.email or 'removed'}.", "success")
            return redirect(url_for("admin.user_detail", user_id=user.id))
    return _render_detail(user, *_detail_forms(user), status=400, email_form=form)


@bp.route("/users/<int:user_id>")
@requires(Permission.USERS_MANAGE)
def user_detail(user_id: int) -> ResponseReturnValue:
    user = users.get_user(get_db(), user_id)
    return _render_detail(user, *_detail_forms(user))


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def user_change_role(user_id: int) -> ResponseReturnValue:
    user = users.get_user(get_db(), user_id)
    role_form, active_form, reset_form = _detail_forms(user)
    if role_form.validate_on_submit():
        try:
            users.change_role(
                get_db(),
                current_actor(),
                user,
                role_form.role.data or "",
                _chosen_site(role_form.site.data),
                role_form.reason.data or "",
            )
        except DomainError as error:
            _form_error(role_form, error)
        else:
            flash(f"{user.username} is now {user.role}.", "success")
            return redirect(url_for("admin.user_detail", user_id=user.id))
    return _render_detail(user, role_form, active_form, reset_form, 400)


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def user_set_active(user_id: int) -> ResponseReturnValue:
    user = users.get_user(get_db(), user_id)
    role_form, active_form, reset_form = _detail_forms(user)
    if active_form.validate_on_submit():
        try:
            users.set_active(
                get_db(),
                current_actor(),
                user,
                not user.is_active,
                active_form.reason.data or "",
            )
        except DomainError as error:
            _form_error(active_form, error)
        else:
            flash(f"{user.username} is {'enabled' if user.is_active else 'disabled'}.", "success")
            return redirect(url_for("admin.user_detail", user_id=user.id))
    return _render_detail(user, role_form, active_form, reset_form, 400)


@bp.route("/users/<int:user_id>/password", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def user_reset_password(user_id: int) -> ResponseReturnValue:
    user = users.get_user(get_db(), user_id)
    role_form, active_form, reset_form = _detail_forms(user)
    if reset_form.validate_on_submit():
        try:
            users.set_password(
                get_db(),
                current_actor(),
                user,
                reset_form.new_password.data or "",
                reset_form.reason.data or "",
            )
        except DomainError as error:
            _form_error(reset_form, error)
        else:
            flash(
                f"The password of {user.username} is reset; their sessions have ended.", "success"
            )
            return redirect(url_for("admin.user_detail", user_id=user.id))
    return _render_detail(user, role_form, active_form, reset_form, 400)


@bp.route("/sites", methods=["GET", "POST"])
@requires(Permission.SITES_MANAGE)
def site_list() -> ResponseReturnValue:
    form = SiteCreateForm()
    status = 200
    if form.validate_on_submit():
        try:
            site = sites.create_site(
                get_db(),
                current_actor(),
                form.code.data or "",
                form.name.data or "",
                form.time_zone.data or "UTC",
            )
        except DomainError as error:
            _form_error(form, error)
        else:
            flash(f"Site {site.code} created.", "success")
            return redirect(url_for("admin.site_list"))
    if form.is_submitted():
        status = 400
    return render_template("admin/sites.html", sites=sites.list_sites(get_db()), form=form), status


@bp.route("/sites/<code>/time-zone", methods=["POST"])
@requires(Permission.SITES_MANAGE)
def site_time_zone(code: str) -> ResponseReturnValue:
    site = sites.get_site_by_code(get_db(), code)
    form = SiteTimeZoneForm(prefix=f"tz{site.id}")
    if form.validate_on_submit():
        try:
            sites.set_time_zone(get_db(), current_actor(), site, form.time_zone.data or "")
        except DomainError as error:
            flash(f"{site.code}: {error.message}", "error")
        else:
            flash(f"{site.code} works in {site.time_zone} from now on.", "success")
    return redirect(url_for("admin.site_list"))


def _protocol_files() -> dict[str, str]:
    """The protocol files shipped with the tracker, by file name."""
    folder = FIXTURES / "protocols"
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.toml"))}


@bp.route("/protocols", methods=["GET", "POST"])
@requires(Permission.PROTOCOLS_MANAGE)
def protocols() -> ResponseReturnValue:
    """The protocol versions loaded, and the admin's choice of the one new enrolments use."""
    files = _protocol_files()
    form = ProtocolActivateForm()
    form.protocol.choices = [(name, name) for name in files]
    status = 200
    if form.validate_on_submit():
        try:
            row = study.activate_protocol(
                get_db(), current_actor(), files[form.protocol.data or ""]
            )
        except (DomainError, ProtocolFileError) as error:
            form.form_errors.append(str(getattr(error, "message", error)))
        else:
            flash(f"New enrolments now use {row.code} version {row.version}.", "success")
            return redirect(url_for("admin.protocols"))
    if form.is_submitted():
        status = 400 if not form.form_errors else 409
    db = get_db()
    return render_template(
        "admin/protocols.html",
        versions=study.protocol_versions(db),
        active=study.current_protocol_version(db),
        enrolled=enrolled_by_version(db),
        form=form,
    ), status
