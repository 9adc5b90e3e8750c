"""Flask-WTF forms; each carries a CSRF token."""

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length


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
