"""Flask-WTF forms of the admin UI; every one that posts carries a CSRF token.

Password fields are write-only: they are never filled back into a page, and their values
go to the hasher and nowhere else (not to the audit log, not to a flash message).
"""

from __future__ import annotations

import re
import zoneinfo
from functools import cache

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    URL,
    DataRequired,
    Email,
    EqualTo,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from ..auth.forms import MinimumLengthHint, PasswordPolicy, username_field
from ..auth.passwords import PasswordTooLong, check_length
from ..oauth.claims import OIDC_SCOPES
from ..oauth.client_auth import CONFIDENTIAL_METHODS
from ..oauth.jar import SIGNING_ALG_VALUES as REQUEST_OBJECT_ALGS
from ..oauth.keys import ALGORITHMS
from ..oauth.server import GRANT_TYPES
from ..oauth.token_exchange import GRANT_TYPE as TOKEN_EXCHANGE

# NIST SP 800-63B §5.1.1.2: at least 8 characters for a password a person chooses.
PASSWORD_MIN_LENGTH = 8
# OIDC Core §5.1: phone_number SHOULD be E.164, with an optional RFC 3966 extension.
E164 = r"^\+[1-9][0-9]{1,14}(;ext=[0-9]{1,10})?$"
# OIDC Core §5.1: locale is a BCP47 language tag (a dash or, commonly, an underscore).
BCP47 = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
GROUP_NAME = r"^[\w .:/@+-]+$"


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def strip(value):
    return value.strip() if isinstance(value, str) else value


def none_if_blank(value):
    value = strip(value)
    return value or None


@cache
def time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def known_time_zone(form, field):
    if field.data and time_zones() and field.data not in time_zones():
        raise ValidationError("Not a time zone of the IANA database, e.g. Europe/Paris.")


def password_not_too_long(form, field):
    try:
        check_length(field.data or "")
    except PasswordTooLong as exc:
        raise ValidationError(str(exc)) from None


def password_fields(required: bool):
    first = [DataRequired()] if required else [Optional()]
    password = PasswordField(
        "New password",
        # The one policy (auth.policy.check_password via auth.forms.PasswordPolicy): length
        # from PASSWORD_MIN_LENGTH and PASSWORD_MAX_BYTES, blocklist, the user's own words.
        validators=[*first, PasswordPolicy()],
        render_kw={"autocomplete": "new-password"},
        description=MinimumLengthHint(),
    )
    confirm = PasswordField(
        "Repeat the password",
        validators=[EqualTo("password", message="The passwords do not match.")],
        render_kw={"autocomplete": "new-password"},
    )
    return password, confirm


class UserCreateForm(FlaskForm):
    username = username_field(filters=[strip], autocomplete="off")
    email = StringField(
        "Email", filters=[none_if_blank], validators=[Optional(), Length(max=320), Email()]
    )
    email_verified = BooleanField("Email address is verified")
    name = StringField("Full name", filters=[none_if_blank], validators=[Length(max=255)])
    password, confirm = password_fields(required=False)
    is_admin = BooleanField("Administrator")
    submit = SubmitField("Create user")


class UserProfileForm(FlaskForm):
    """The OpenID Connect standard claims an admin may edit (OIDC Core §5.1)."""

    name = StringField("Full name", filters=[none_if_blank], validators=[Length(max=255)])
    given_name = StringField("Given name", filters=[none_if_blank], validators=[Length(max=255)])
    family_name = StringField("Family name", filters=[none_if_blank], validators=[Length(max=255)])
    email = StringField(
        "Email", filters=[none_if_blank], validators=[Optional(), Length(max=320), Email()]
    )
    email_verified = BooleanField("Email address is verified")
    phone_number = StringField(
        "Phone number",
        filters=[none_if_blank],
        validators=[Optional(), Regexp(E164, message="Use E.164, e.g. +33123456789.")],
        description="E.164 format, e.g. +33123456789.",
    )
    phone_number_verified = BooleanField("Phone number is verified")
    street_address = StringField(
        "Street address", filters=[none_if_blank], validators=[Length(max=255)]
    )
    locality = StringField("City", filters=[none_if_blank], validators=[Length(max=255)])
    region = StringField("Region", filters=[none_if_blank], validators=[Length(max=255)])
    postal_code = StringField("Postal code", filters=[none_if_blank], validators=[Length(max=32)])
    country = StringField("Country", filters=[none_if_blank], validators=[Length(max=255)])
    locale = StringField(
        "Locale",
        filters=[none_if_blank],
        validators=[Optional(), Length(max=35), Regexp(BCP47, message="A tag such as en-GB.")],
        description="BCP47 language tag, e.g. en-GB.",
    )
    zoneinfo = StringField(
        "Time zone",
        filters=[none_if_blank],
        validators=[Optional(), Length(max=64), known_time_zone],
        description="e.g. Europe/Paris.",
    )
    picture = StringField(
        "Picture URL",
        filters=[none_if_blank],
        validators=[
            Optional(),
            Length(max=2048),
            URL(require_tld=False, message="An http(s) URL."),
        ],
    )
    submit = SubmitField("Save profile")

    ADDRESS = ("street_address", "locality", "region", "postal_code", "country")
    CLAIMS = (
        "name",
        "given_name",
        "family_name",
        "email",
        "email_verified",
        "phone_number",
        "phone_number_verified",
        "locale",
        "zoneinfo",
        "picture",
    )

    def validate_picture(self, field):
        if field.data and not field.data.lower().startswith(("https://", "http://")):
            raise ValidationError("An http(s) URL.")


class PasswordForm(FlaskForm):
    password, confirm = password_fields(required=True)
    end_sessions = BooleanField("Also sign the user out everywhere", default=True)
    submit = SubmitField("Set password")


class GroupsForm(FlaskForm):
    groups = MultiCheckboxField("Groups", coerce=int)
    submit = SubmitField("Save groups")


class DeleteUserForm(FlaskForm):
    confirm_username = StringField(
        "Type the username to confirm", filters=[strip], validators=[DataRequired()]
    )
    submit = SubmitField("Delete user")


class GroupForm(FlaskForm):
    name = StringField(
        "Name",
        filters=[strip],
        validators=[
            DataRequired(),
            Length(max=150),
            Regexp(GROUP_NAME, message="Letters, digits, spaces and . : / @ + - _ only."),
        ],
    )
    description = TextAreaField("Description", filters=[strip], validators=[Length(max=2000)])
    submit = SubmitField("Save group")


class MemberForm(FlaskForm):
    username = StringField("Username", filters=[strip], validators=[DataRequired()])
    submit = SubmitField("Add member")


class DeleteForm(FlaskForm):
    submit = SubmitField("Delete")


def lines(text: str | None) -> list[str]:
    """A textarea of URIs, one a line, as a list without blanks or repeats."""
    return list(dict.fromkeys(line.strip() for line in (text or "").splitlines() if line.strip()))


def words(text: str | None) -> list[str]:
    return list(dict.fromkeys((text or "").split()))


class ClientForm(FlaskForm):
    """Client metadata of RFC 7591 §2 that this server uses."""

    client_name = StringField("Name", filters=[strip], validators=[DataRequired(), Length(max=255)])
    client_type = RadioField(
        "Type",
        choices=[
            SelectChoice("confidential", "Confidential (a server that can keep a secret)"),
            SelectChoice("public", "Public (browser or native app, PKCE only)"),
        ],
        default="confidential",
    )
    token_endpoint_auth_method = SelectField(
        "Token endpoint authentication",
        choices=list(CONFIDENTIAL_METHODS),
        default="client_secret_basic",
        description="Confidential clients only. private_key_jwt needs the client's public keys.",
    )
    jwks_uri = StringField(
        "JWK Set URL (private_key_jwt, request objects)",
        filters=[none_if_blank],
        description="Where the client publishes its public keys; or paste them below.",
    )
    jwks = TextAreaField(
        "JWK Set (private_key_jwt, request objects)",
        filters=[none_if_blank],
        description="Public keys only.",
    )
    require_par = BooleanField("Require pushed authorization requests (RFC 9126 §6)")
    require_dpop = BooleanField(
        "Require DPoP-bound access tokens (RFC 9449 §5.2)",
        description="Token requests without a DPoP proof are refused.",
    )
    # RFC 9101 (oauth/jar.py): request objects are checked with the client's keys above.
    request_object_signing_alg = SelectField(
        "Request object signing algorithm",
        choices=[SelectChoice("", "Any the server accepts"), *REQUEST_OBJECT_ALGS],
        default="",
        description="Signed request objects (RFC 9101) must use this algorithm.",
    )
    require_signed_request_object = BooleanField("Require signed request objects (RFC 9101 §10.5)")
    redirect_uris = TextAreaField(
        "Redirect URIs",
        # The matching rule of idp.urls.redirect_uri_matches, in the operator's words.
        description="One a line; compared exactly, except that an http URI on 127.0.0.1 "
        "(any 127.x.x.x) or [::1] accepts any port, for native apps that listen on a port "
        "chosen at run time (RFC 8252 §7.3). localhost gets no such exception. "
        "Required with the authorization_code grant.",
    )
    post_logout_redirect_uris = TextAreaField(
        "Post-logout redirect URIs", description="One a line."
    )
    backchannel_logout_uri = StringField(
        "Back-channel logout URI",
        filters=[none_if_blank],
        validators=[Length(max=2048)],
        description="Receives logout tokens when a session ends (Back-Channel Logout 1.0).",
    )
    backchannel_logout_session_required = BooleanField("Back-channel logout needs sid")
    frontchannel_logout_uri = StringField(
        "Front-channel logout URI",
        filters=[none_if_blank],
        validators=[Length(max=2048)],
        description="Loaded in a frame at sign-out; same origin as a redirect URI.",
    )
    frontchannel_logout_session_required = BooleanField("Front-channel logout needs iss and sid")
    grant_types = MultiCheckboxField(
        "Grant types",
        validators=[DataRequired(message="Choose at least one grant type.")],
        # Token exchange comes with its policy (`idp clients policy`), not from a checkbox.
        choices=[g for g in GRANT_TYPES if g != TOKEN_EXCHANGE],
        default=["authorization_code", "refresh_token"],
    )
    scopes = MultiCheckboxField(
        "Scopes",
        choices=list(OIDC_SCOPES),
        default=["openid", "profile", "email"],
    )
    extra_scopes = StringField(
        "Other scopes",
        description="API scopes, separated by spaces (client credentials use these).",
    )
    first_party = BooleanField("First party (skip the consent page)")
    require_mfa = BooleanField(
        "Requires MFA",
        description="Users must have signed in with a second factor (step-up at sign-in).",
    )
    access_token_lifetime = IntegerField(
        "Access token lifetime (seconds)",
        validators=[Optional(), NumberRange(min=60, max=86400)],
        description="Empty: the server default.",
    )
    refresh_token_lifetime = IntegerField(
        "Refresh token lifetime (seconds)",
        validators=[Optional(), NumberRange(min=300, max=366 * 86400)],
        description="Empty: the server default.",
    )
    access_token_format = SelectField(
        "Access token format",
        choices=[
            SelectChoice("", "Server default"),
            SelectChoice("jwt", "JWT (RFC 9068)"),
            SelectChoice("opaque", "Opaque"),
        ],
        default="",
    )
    id_token_signed_response_alg = SelectField(
        "ID token signing algorithm",
        choices=[SelectChoice("", "Server default"), *ALGORITHMS],
        default="",
    )
    # OIDC Core §5.3.2 and §8 (issue 16).
    userinfo_signed_response_alg = SelectField(
        "UserInfo answer",
        choices=[SelectChoice("", "JSON (not signed)"), *ALGORITHMS],
        default="",
        description="Signed: UserInfo answers as a JWT (application/jwt) with iss and aud.",
    )
    subject_type = SelectField(
        "Subject identifier",
        choices=[
            SelectChoice("public", "Public: the same sub for every client"),
            SelectChoice("pairwise", "Pairwise: a sub of its own for this client's sector"),
        ],
        default="public",
        description="OIDC Core §8. Changing it gives the client's users new sub values.",
    )
    sector_identifier_uri = StringField(
        "Sector identifier URI",
        filters=[none_if_blank],
        validators=[Length(max=2048)],
        description="https URL of a JSON array listing every redirect URI; clients sharing "
        "its host see the same pairwise sub. Needed when redirect URIs use several hosts.",
    )
    submit = SubmitField("Save client")

    def validate_extra_scopes(self, field):
        for scope in words(field.data):
            if not SCOPE_TOKEN.match(scope):
                raise ValidationError(f"{scope!r} is not a valid scope (RFC 6749 §3.3).")

    @property
    def scope(self) -> str:
        chosen = [*(self.scopes.data or []), *words(self.extra_scopes.data)]
        return " ".join(dict.fromkeys(chosen))

    @property
    def redirect_uri_list(self) -> list[str]:
        return lines(self.redirect_uris.data)

    @property
    def post_logout_uri_list(self) -> list[str]:
        return lines(self.post_logout_redirect_uris.data)

    @property
    def is_public(self) -> bool:
        return self.client_type.data == "public"


class AuditFilterForm(FlaskForm):
    """The audit viewer's filters: a GET form, so it carries no CSRF token."""

    class Meta:
        csrf = False

    event = StringField("Event", filters=[strip], description="Name or prefix, e.g. admin.")
    actor = StringField("Actor", filters=[strip], description="Username or sub.")
    target = StringField("Target", filters=[strip])
    since = StringField("From (date)", filters=[strip], render_kw={"type": "date"})
    until = StringField("Until (date)", filters=[strip], render_kw={"type": "date"})
    submit = SubmitField("Filter")
