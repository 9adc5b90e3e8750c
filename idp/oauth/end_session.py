"""OpenID Connect RP-Initiated Logout 1.0: the ``end_session_endpoint``.

https://openid.net/specs/openid-connect-rpinitiated-1_0.html

    GET or POST /end_session (§2): id_token_hint, logout_hint, client_id,
        post_logout_redirect_uri, state, ui_locales
      │ id_token_hint not signed by this server, or client_id not its audience
      │   → error page, never redirected (§4)
      │ post_logout_redirect_uri kept only on an exact match with the identified
      │   client's post_logout_redirect_uris (§3), else the user stays here
      ├─ nobody signed in here ─────────────────────────────► redirect or signed-out page
      ├─ the hint names this session (its sub, and its sid) ► end the session
      └─ otherwise (no hint, another user, an older session) ► confirmation page: a CSRF
         form POSTed back here, so a third-party page cannot sign anyone out silently
    session ended (session.end → terminate: tokens revoked, back-channel queued)
      → signed-out page with Front-Channel Logout iframes, then on to the redirect target
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from flask import make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SubmitField

from .. import audit, db
from ..auth import session as user_session
from ..models import Client, UserSession
from ..security import CSP, allow_form_action
from . import logout, oidc
from .oidc import audiences
from .server import query_client

PARAMS = (
    "id_token_hint",
    "logout_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
)
MAX_PARAM = 8192
# Never a post-logout target, even if a registration let one through.
UNSAFE_SCHEMES = ("javascript", "data", "vbscript", "file")
# A POST the browser sent cross-site carries no SameSite=Lax cookie; the signed-out-looking
# request is relayed once, as a POST from this origin, which does carry it.
RELAYED = "relayed"


class LogoutRequestError(Exception):
    """A request §4 says must not be honoured with a redirect."""


class ConfirmLogoutForm(FlaskForm):
    confirm = SubmitField("Sign out")
    cancel = SubmitField("Stay signed in")


@dataclass
class LogoutRequest:
    params: dict[str, str]
    client: Client | None = None
    hint: dict = field(default_factory=dict)
    # post_logout_redirect_uri with state, when it is registered for the client
    target: str | None = None
    # why a post_logout_redirect_uri that was sent is not followed
    dropped: str | None = None


def verified_hint(token: str) -> dict:
    """Claims of an ID token this server signed; an expired one is accepted (§2).

    §2 requires an ID token here: an access token (at+jwt) or a logout token signed with the
    same keys is refused (RFC 8725 §3.11), so a resource server holding a user's access
    token cannot sign the user out.
    """
    claims = oidc.decode_id_token(token)
    if claims is None:
        raise LogoutRequestError("id_token_hint is not an ID token this server issued")
    return claims


def parse(values) -> LogoutRequest:
    """Validate the parameters of §2 (raises LogoutRequestError)."""
    for name in PARAMS:
        if len(values.getlist(name)) > 1:
            raise LogoutRequestError(f"Parameter '{name}' is repeated")
    params = {name: values[name] for name in PARAMS if values.get(name)}
    if any(len(value) > MAX_PARAM for value in params.values()):
        raise LogoutRequestError("A parameter is too long")
    req = LogoutRequest(params)
    if "id_token_hint" in params:
        req.hint = verified_hint(params["id_token_hint"])
    client_id = params.get("client_id")
    if client_id:
        req.client = query_client(client_id)
        if req.client is None:
            raise LogoutRequestError("client_id is not a registered client")
        # §2: the client_id must be the one the hint was issued to.
        if req.hint and client_id not in audiences(req.hint):
            raise LogoutRequestError("client_id does not match the id_token_hint's audience")
    elif req.hint:
        auds = audiences(req.hint)
        issued_to = auds[0] if len(auds) == 1 else req.hint.get("azp")
        req.client = query_client(issued_to) if issued_to else None
    uri = params.get("post_logout_redirect_uri")
    if uri:
        if req.client is None:
            req.dropped = "the application sending you here could not be identified"
        elif uri not in (req.client.post_logout_redirect_uris or []) or (
            urlsplit(uri).scheme.lower() in UNSAFE_SCHEMES
        ):
            # §3: exact string match against the registered values, else no redirect.
            req.dropped = "the return address is not registered for this application"
        else:
            state = params.get("state")
            req.target = add_params_to_uri(uri, [("state", state)]) if state else uri
    return req


def tied_to_session(req: LogoutRequest) -> bool:
    """The hint names the signed-in user's current session: no confirmation needed.

    Only an ID token of this very session (its sub and its sid) whose grant is live
    (oidc.live_subject: client enabled, consent not revoked) skips the question; a hint
    without sid (a device-flow ID token) does not name a browser session.
    """
    if not req.hint or not current_user.is_authenticated:
        return False
    if req.hint.get("sub") != current_user.sub:
        return False
    if not req.hint.get("sid") or req.hint["sid"] != user_session.current_sid():
        return False
    return oidc.live_subject(req.hint) is not None


def end_session():
    """The endpoint (GET and POST, §2)."""
    try:
        req = parse(request.values)
    except LogoutRequestError as error:
        audit.record("logout.request_refused", reason=str(error))
        db.session().commit()
        return error_page(str(error))

    if not current_user.is_authenticated:
        if request.method == "POST" and not request.form.get(RELAYED):
            return relay(req)
        return finish([], req)

    form = ConfirmLogoutForm()
    confirmed = request.method == "POST" and form.validate_on_submit()
    if confirmed and form.cancel.data:
        audit.record("logout.declined", actor=current_user.sub)
        db.session().commit()
        return redirect(url_for("account.index"))
    tied = tied_to_session(req)
    if not tied and not (confirmed and form.confirm.data):
        return confirm_page(form, req)

    sub = current_user.sub
    row = user_session.end("logout")
    audit.record(
        "logout",
        actor=sub,
        via="end_session",
        client=req.client.client_id if req.client else None,
        confirmed=not tied,
    )
    db.session().commit()
    return finish([row] if row is not None else [], req)


def relay(req: LogoutRequest):
    """Re-send a cross-site POST from this origin so the browser attaches the cookie."""
    params = [*req.params.items(), (RELAYED, "1")]
    return render_template(
        "oauth/form_post.html", action=url_for("oauth.end_session"), params=params
    )


def confirm_page(form: ConfirmLogoutForm, req: LogoutRequest):
    response = make_response(
        render_template(
            "oauth/logout_confirm.html",
            form=form,
            params=req.params,
            client=req.client,
            dropped=req.dropped,
            user=current_user,
        )
    )
    if req.target:
        # Confirming ends in a redirect to the RP, and browsers check form-action against
        # every redirect of a form submission (CSP3 §6.3.1): allow that one origin.
        allow_form_action(response, req.target)
    return response


def error_page(description: str):
    # error: base.html prefixes the title with "Error: " (WCAG 2.2 §3.3.1).
    return render_template(
        "oauth/logout_error.html", description=description, error="invalid_request"
    ), 400


def finish(rows: list[UserSession], req: LogoutRequest):
    """After sign-out: straight to the RP, or the signed-out page (with iframes first)."""
    frames = logout.frontchannel_uris(rows)
    if req.target and not frames:
        return redirect(req.target)
    return signed_out_page(frames, target=req.target, client=req.client, dropped=req.dropped)


def signed_out_page(
    frames: list[str],
    target: str | None = None,
    client: Client | None = None,
    dropped: str | None = None,
):
    """The signed-out page; it loads each Front-Channel Logout URI in a hidden iframe."""
    response = make_response(
        render_template(
            "oauth/logged_out.html", frames=frames, target=target, client=client, dropped=dropped
        )
    )
    if frames:
        origins = " ".join(dict.fromkeys(logout.origin(uri) for uri in frames))
        response.headers["Content-Security-Policy"] = (
            CSP.format(extra="", img="") + f"; frame-src {origins}; child-src {origins}"
        )
    return response
