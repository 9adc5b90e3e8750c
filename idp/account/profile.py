"""The user's profile: the OpenID Connect standard claims (OIDC Core §5.1) the admin lets
users edit themselves (ACCOUNT_EDITABLE_CLAIMS), and the new-device notice opt-out.

The form is built from the setting, so a claim that is not allowed has no field: a forged
``email`` or ``is_admin`` in the POST body is never read. Validation is the admin form's
(``admin.forms``). Audited as ``profile.updated`` with the names of the changed claims,
never their values.
"""

from __future__ import annotations

import re
from datetime import date

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, SubmitField
from wtforms.validators import URL, Length, Optional, Regexp, ValidationError

from .. import audit, db
from ..admin.forms import BCP47, E164, known_time_zone, none_if_blank

bp = Blueprint("profile", __name__, url_prefix="/account")

# The label of each claim, in the order the page shows them.
LABELS = {
    "name": "Full name",
    "given_name": "Given name",
    "family_name": "Family name",
    "middle_name": "Middle name",
    "nickname": "Nickname",
    "profile": "Profile page URL",
    "picture": "Picture URL",
    "website": "Website",
    "gender": "Gender",
    "birthdate": "Birthdate",
    "zoneinfo": "Time zone",
    "locale": "Locale",
    "phone_number": "Phone number",
}
# OIDC Core §5.1 birthdate: YYYY-MM-DD, 0000-MM-DD (year withheld) or YYYY alone.
BIRTHDATE = r"^([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4})$"


def http_url(form, field):
    if field.data and not field.data.lower().startswith(("https://", "http://")):
        raise ValidationError("An http(s) URL.")


def real_date(form, field):
    if field.data and re.match(BIRTHDATE, field.data) and len(field.data) == 10:
        year, month, day = (int(part) for part in field.data.split("-"))
        try:
            date(year or 2000, month, day)  # 0000: the year is withheld (a leap year)
        except ValueError:
            raise ValidationError("Not a date of the calendar.") from None


def text(label: str, length: int = 255, **kwargs):
    return StringField(label, filters=[none_if_blank], validators=[Length(max=length)], **kwargs)


def url(label: str):
    return StringField(
        label,
        filters=[none_if_blank],
        validators=[
            Optional(),
            Length(max=2048),
            URL(require_tld=False, message="An http(s) URL."),
            http_url,
        ],
        description="An https:// address.",
    )


FIELDS = {
    "name": lambda: text(LABELS["name"], render_kw={"autocomplete": "name"}),
    "given_name": lambda: text(LABELS["given_name"], render_kw={"autocomplete": "given-name"}),
    "family_name": lambda: text(LABELS["family_name"], render_kw={"autocomplete": "family-name"}),
    "middle_name": lambda: text(
        LABELS["middle_name"], render_kw={"autocomplete": "additional-name"}
    ),
    "nickname": lambda: text(LABELS["nickname"], render_kw={"autocomplete": "nickname"}),
    "profile": lambda: url(LABELS["profile"]),
    "picture": lambda: url(LABELS["picture"]),
    "website": lambda: url(LABELS["website"]),
    "gender": lambda: text(LABELS["gender"], 64, description="In your own words."),
    "birthdate": lambda: StringField(
        LABELS["birthdate"],
        filters=[none_if_blank],
        validators=[
            Optional(),
            Regexp(BIRTHDATE, message="Use YYYY-MM-DD, or the year alone."),
            real_date,
        ],
        description="YYYY-MM-DD, 0000-MM-DD without the year, or the year alone.",
    ),
    "zoneinfo": lambda: StringField(
        LABELS["zoneinfo"],
        filters=[none_if_blank],
        validators=[Optional(), Length(max=64), known_time_zone],
        description="e.g. Europe/Paris.",
    ),
    "locale": lambda: StringField(
        LABELS["locale"],
        filters=[none_if_blank],
        validators=[Optional(), Length(max=35), Regexp(BCP47, message="A tag such as en-GB.")],
        description="A language tag, e.g. en-GB.",
    ),
    "phone_number": lambda: StringField(
        LABELS["phone_number"],
        filters=[none_if_blank],
        validators=[Optional(), Regexp(E164, message="Use E.164, e.g. +33123456789.")],
        description="E.164 format, e.g. +33123456789. Changing it makes it unverified.",
        render_kw={"autocomplete": "tel"},
    ),
}


def editable_claims() -> list[str]:
    """The allowed claims (config.check refused any other), in the page's order."""
    allowed = set(current_app.config["ACCOUNT_EDITABLE_CLAIMS"])
    return [name for name in LABELS if name in allowed]


def profile_form(**kwargs) -> FlaskForm:
    """A form with a field for each allowed claim, and for nothing else."""
    fields = {name: FIELDS[name]() for name in editable_claims()}
    form_class = type("ProfileForm", (FlaskForm,), {**fields, "submit": SubmitField("Save")})
    return form_class(**kwargs)


class NoticesForm(FlaskForm):
    new_device_notices = BooleanField(
        "Email me when someone signs in to my account from a new device or browser"
    )
    submit = SubmitField("Save")


def profile_claims(user) -> list[tuple[str, str]]:
    """(label, value) of the allowed claims the user has filled in, for the account page
    (the name is already at its top)."""
    names = [n for n in editable_claims() if n != "name" and getattr(user, n)]
    return [(LABELS[n], getattr(user, n)) for n in names]


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def edit():
    user = current_user._get_current_object()
    claims = editable_claims()
    if not claims:  # the admin allows no profile editing
        abort(404)
    form = profile_form(data={name: getattr(user, name) for name in claims})
    if form.validate_on_submit():
        changed = [name for name in claims if getattr(form, name).data != getattr(user, name)]
        for name in changed:
            setattr(user, name, getattr(form, name).data)
        if "phone_number" in changed:
            user.phone_number_verified = False
        if changed:
            audit.record("profile.updated", actor=user.sub, claims=changed)
        db.session().commit()
        flash("Profile saved." if changed else "Nothing changed.")
        return redirect(url_for("account.index"))
    status = 400 if form.errors else 200
    return render_template("account/profile.html", form=form, claims=claims), status


@bp.post("/notices")
@login_required
def notices():
    form = NoticesForm()
    if not form.validate_on_submit():
        abort(400)
    user = current_user._get_current_object()
    wanted = bool(form.new_device_notices.data)
    if wanted != user.new_device_notices:
        user.new_device_notices = wanted
        audit.record("account.notices_changed", actor=user.sub, new_device=wanted)
        db.session().commit()
    flash(
        "You will get an email after a sign-in from a new device or browser."
        if wanted
        else "You will no longer get an email after a sign-in from a new device or browser."
    )
    return redirect(url_for("account.index"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_global(profile_claims, "profile_claims")
    app.add_template_global(editable_claims, "editable_claims")
    app.add_template_global(NoticesForm, "NoticesForm")
