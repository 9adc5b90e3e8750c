"""Flask-WTF forms; each carries a CSRF token."""

from flask_wtf import FlaskForm
from markupsafe import escape
from wtforms import HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from .policy import Strength, check_password, setting, strength


class LoginForm(FlaskForm):
    username = StringField(
        "Username or email",
        validators=[DataRequired(), Length(max=320)],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        "Password", validators=[DataRequired()], render_kw={"autocomplete": "current-password"}
    )
    next = HiddenField()
    submit = SubmitField("Sign in")


class ConsentForm(FlaskForm):
    allow = SubmitField("Allow")
    deny = SubmitField("Deny")


class ConfirmForm(FlaskForm):
    """A bare CSRF-protected POST (sign out, revoke an application)."""

    submit = SubmitField("Confirm")


# --- choosing a new password (change, reset, admin, invitation, registration) ---------------


# Usernames: what every form that names a new account accepts (admin, invitation,
# self-registration). Letters, digits and . _ @ + -, not starting with a sign.
USERNAME = r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"


def username_field(*, required=True, filters=(), autocomplete="username", **kwargs):
    """A username field with the one rule above; ``required=False`` leaves it optional."""
    return StringField(
        "Username",
        filters=list(filters),
        validators=[
            DataRequired() if required else Optional(),
            Length(max=150),
            Regexp(USERNAME, message="Letters, digits and . _ @ + - only."),
        ],
        render_kw={"autocomplete": autocomplete},
        **kwargs,
    )


def password_context(form) -> dict:
    """The user's own words the policy compares a new password with: ``form.password_context``
    when the view set it (the user is known), else the form's username, email and name."""
    given = getattr(form, "password_context", None)
    if given is not None:
        return dict(given)
    words = {}
    for name in ("username", "email", "name"):
        field = getattr(form, name, None)
        data = getattr(field, "data", None)
        if isinstance(data, str) and data.strip() and not getattr(field, "errors", None):
            words[name] = data.strip()
    return words


class PasswordPolicy:
    """WTForms validator: ``policy.check_password`` (NIST SP 800-63B rev. 4 §3.1.1.2); every
    reason is shown, in one message. Empty data is left to DataRequired/Optional."""

    field_flags = {}

    def __call__(self, form, field) -> None:
        if not field.data:
            return
        reasons = check_password(field.data, **password_context(form))
        if reasons:  # one message, so the error summary links the field once
            raise ValidationError(" ".join(reasons))


class MinimumLengthHint:
    """The hint under a new-password field, read from the configuration when shown."""

    def __str__(self) -> str:
        return (
            f"At least {setting('PASSWORD_MIN_LENGTH')} characters. Any characters, spaces "
            "included; a few unrelated words make a strong password."
        )

    def __html__(self) -> str:
        return str(escape(str(self)))

    def __bool__(self) -> bool:
        return True


def new_password_field(label: str = "New password", required: bool = True) -> PasswordField:
    """A new-password field with the policy; pasting and password managers are welcome
    (autocomplete=new-password, no maxlength in characters: PASSWORD_MAX_BYTES applies)."""
    first = [DataRequired(message="Enter a new password.")] if required else [Optional()]
    return PasswordField(
        label,
        validators=[*first, PasswordPolicy()],
        render_kw={"autocomplete": "new-password", "spellcheck": "false"},
        description=MinimumLengthHint(),
    )


class NewPasswordForm(FlaskForm):
    """A form whose ``password`` is a new password; subclass it or copy ``new_password_field``.
    Render it with templates/_new_password.html (errors, strength, show-password toggle)."""

    password = new_password_field()


def password_feedback(form) -> Strength | None:
    """zxcvbn's estimate of a refused new password, for the form shown again (None when the
    field is empty or was accepted)."""
    field = getattr(form, "password", None)
    if field is None or not field.data or not field.errors:
        return None
    return strength(field.data, **password_context(form))


class ChangePasswordForm(NewPasswordForm):
    current_password = PasswordField(
        "Current password",
        validators=[DataRequired(message="Enter your current password.")],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField("Change password")


class ForgotPasswordForm(FlaskForm):
    # Named "username" so that the per-account rate limit (limits.by_account) counts it.
    username = StringField(
        "Username or email",
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
        validators=[DataRequired(message="Enter your username or email address."), Length(max=320)],
        render_kw={"autocomplete": "username", "spellcheck": "false"},
    )
    submit = SubmitField("Send the link")


class ResetPasswordForm(NewPasswordForm):
    submit = SubmitField("Set the new password")
