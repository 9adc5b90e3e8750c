"""The authorization endpoint (RFC 6749 §3.1, §4.1.1; OIDC Core §3.1.2).

validate client, redirect_uri, response_type, scope, PKCE, nonce
  │  error before the redirect URI is trusted → error page, never redirected
  │  any later error → redirected to the client with state and iss
login needed? no session | prompt=login | max_age | id_token_hint of another user
  │            | claims asks for another sub (OIDC Core §3.1.2.2, §5.5.1)
  │  prompt=none → login_required; else /login, which comes back here
stronger sign-in needed? acr_values | claims acr | client requires MFA (acr.decide)
  │  prompt=none → login_required; unreachable essential acr → unmet_authentication_
  │  requirements; else the missing factor (auth.mfa.begin need=), which comes back here
consent needed? new scopes | new claims asked for by the claims parameter (OIDC Core §5.5)
  │            | prompt=consent (first-party clients skip new scopes and claims)
  │  prompt=none → consent_required; else consent page, POSTed back with CSRF token
issue the code → deliver by response_mode (query | form_post), always with iss
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import make_response, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from .. import audit, db
from ..auth import mfa
from ..auth.forms import ConsentForm
from ..auth.session import current_authentication
from ..models import Client, Consent, utcnow
from ..security import allow_form_action
from . import acr, claims_request, jar, par, prompts
from .claims import CLAIM_DESCRIPTIONS, SCOPE_DESCRIPTIONS
from .responses import added_params, deliver
from .server import query_client, server
from .subjects import subject_for

FORM_FIELDS = {"csrf_token", "allow", "deny"}
# Parameters that must not repeat (RFC 6749 §3.1); Authlib checks the first five itself.
SINGLE = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "prompt",
    "max_age",
    "response_mode",
    "code_challenge",
    "code_challenge_method",
    "login_hint",
    "id_token_hint",
    "acr_values",
    "claims",
)


def oauth_params() -> dict[str, str]:
    return {k: v for k, v in request.values.items() if k not in FORM_FIELDS}


def authorize_url(params: dict[str, str]) -> str:
    return url_for("oauth.authorize") + "?" + urlencode(params)


def client_redirect_target(next_url: str | None) -> tuple[Client, str] | None:
    """The client and registered redirect URI an /authorize URL (login's ``next``) ends at.

    When no consent is needed, signing in redirects login -> authorize -> client, and
    browsers check the login page's form-action against that whole chain (CSP3 §6.3.1).
    The login page also names the client, so the user knows where they are signing in.
    """
    try:
        parts = urlsplit(next_url or "")
    except ValueError:  # "http://[": not a URL, so not one of ours (found by fuzzing)
        return None
    if parts.scheme or parts.netloc or parts.path != url_for("oauth.authorize"):
        return None
    args = dict(parse_qsl(parts.query))
    client = query_client(args.get("client_id", ""))
    if client is None:
        return None
    uri = (
        args.get("redirect_uri")
        or par.redirect_uri_of(args, client)  # RFC 9126: the pushed redirect_uri
        or client.get_default_redirect_uri()
    )
    return (client, uri) if uri and client.check_redirect_uri(uri) else None


def error_page(error: OAuth2Error):
    return (
        render_template(
            "oauth/error.html", error=error.error, description=error.get_error_description()
        ),
        error.status_code or 400,
    )


def answered_already():
    """RFC 9126 §4: a pushed request ends with its first response (a code, a denial, an
    error). This response uses it up; when another tab's answer came first, the error page
    to show instead, for the client has had its response. None for a plain request."""
    problem = par.consume()
    return error_page(problem) if problem else None


def redirect_error(error: OAuth2Error, redirect_uri: str, params: dict[str, str]):
    # After another tab's answer, this request's error may be that tab's code's nonce
    # read as a replay: it stays on the page, as a second code would.
    if refused := answered_already():
        return refused
    body = [(k, v) for k, v in error.get_body()]
    if params.get("state") and not any(k == "state" for k, _ in body):
        body.append(("state", params["state"]))
    return deliver(redirect_uri, body, response_mode(params))


def response_mode(params: dict[str, str]) -> str:
    return "form_post" if params.get("response_mode") == "form_post" else "query"


def authorize():
    if (replaced := jar.authorization_request()) is not None:
        return replaced  # RFC 9101: a request object goes on as a pushed request
    params = oauth_params()
    user = current_user._get_current_object() if current_user.is_authenticated else None
    try:
        grant = server().get_consent_grant(end_user=user)
    except OAuth2Error as error:
        params = par.authorization_params(params, user)
        if error.redirect_uri:
            return redirect_error(error, error.redirect_uri, params)
        return error_page(error)

    redirect_uri = grant.redirect_uri
    client = grant.request.client
    params = par.authorization_params(params, user)  # RFC 9126 §4: what was pushed
    try:
        for name in SINGLE:
            if len(request.values.getlist(name)) > 1:
                raise InvalidRequestError(f"Parameter '{name}' is repeated")
        requested = prompts.requested_prompts(params)
        max_age = prompts.max_age(params)
        hint_sub = prompts.id_token_hint_subject(params, client)
        wanted = claims_request.parse(params.get("claims"))  # OIDC Core §5.5
        auth_time, amr = current_authentication()

        reasons = prompts.login_reasons(user, requested, max_age, auth_time, hint_sub)
        # OIDC Core §3.1.2.2: a sub asked for by value names the only user who may answer,
        # as this client sees its users (pairwise or public, §8).
        if user is not None and claims_request.subject_mismatch(wanted, subject_for(client, user)):
            reasons.append("claims_sub_other_user")
        if reasons:
            if "none" in requested:
                raise LoginRequiredError()
            return redirect_to_login(params)

        need = acr.decide(user, amr, params, client)
        if need:
            if "none" in requested:
                raise LoginRequiredError()
            # Step-up: the missing factor, then back here (the session keeps its sid).
            response = mfa.begin(user, amr, authorize_url(par.link_params(params)), need=need)
            db.session().commit()
            return response

        scopes = scope_to_list(grant.request.scope) or []
        extra = claims_request.beyond_scopes(wanted, scopes)  # OIDC Core §5.5
        if prompts.consent_reasons(user, client, scopes, requested, extra):
            if "none" in requested:
                raise ConsentRequiredError()
            form = ConsentForm()
            if not (request.method == "POST" and form.validate_on_submit()):
                return consent_page(form, client, scopes, params, redirect_uri, wanted, extra)
            if form.deny.data:
                audit.record("consent.denied", actor=user.sub, target=client.client_id)
                db.session().commit()
                return finish(grant, None, redirect_uri, params)
            remember_consent(user, client, scopes, extra)
    except OAuth2Error as error:
        return redirect_error(error, redirect_uri, params)
    return finish(grant, user, redirect_uri, params)


def redirect_to_login(params: dict[str, str]):
    # After signing in the user comes back here; prompt=login and max_age have then been
    # honoured (keeping max_age=0 would send the user back to the login page forever).
    back = dict(params)
    back.pop("max_age", None)
    remaining = [p for p in (back.pop("prompt", "") or "").split() if p != "login"]
    if remaining:
        back["prompt"] = " ".join(remaining)
    login_args = {"next": authorize_url(par.link_params(back))}
    if params.get("login_hint"):
        login_args["login_hint"] = params["login_hint"]
    return redirect(url_for("auth.login", **login_args))


def consent_page(form, client, scopes, params, redirect_uri: str, wanted=None, extra=()):
    consent = prompts.consent_of(current_user, client)
    granted = consent.scopes if consent else set()
    items = [
        {"scope": s, "text": SCOPE_DESCRIPTIONS.get(s, s), "new": s not in granted} for s in scopes
    ]
    # OIDC Core §5.5: claims asked for one by one, beyond the scopes; essential ones
    # (§5.5.1) are shown as asked as required (the user may still deny).
    had = prompts.granted_claims(consent)
    essential = set(claims_request.essential_claims(wanted))
    claims = [
        {
            "claim": c,
            "text": CLAIM_DESCRIPTIONS.get(c, c),
            "essential": c in essential,
            "new": c not in had,
        }
        for c in extra
    ]
    response = make_response(
        render_template(
            "consent/consent.html",
            form=form,
            client=client,
            scopes=items,
            claims=claims,
            action=authorize_url(par.link_params(params)),
        )
    )
    # Allow and Deny end in a redirect to the client, and browsers check form-action
    # against every redirect of a form submission (CSP3 §6.3.1): allow that one origin.
    # The logo (RFC 7591 §2 logo_uri, https only) is the one third-party image allowed here.
    allow_form_action(response, redirect_uri, image=client.logo_uri)
    return response


def remember_consent(user, client, scopes: list[str], claims: Sequence[str] = ()) -> None:
    """Record the user's consent, adding these scopes, and these claims consented to one by
    one (the claims parameter, OIDC Core §5.5), to what was granted before.

    Two first consents may arrive at once (two tabs, or this page and the device page):
    the row is created with INSERT ... ON CONFLICT DO NOTHING, then read under a row lock
    (SQLite: the INSERT already holds the write lock), so neither fails on the unique
    (user, client) constraint and neither loses the other's scopes.
    """
    session = db.session()
    dialect = session.get_bind().dialect.name
    insert = db.insert_for(dialect)
    now = utcnow()
    session.execute(
        insert(Consent)
        .values(
            user_id=user.id, client_id=client.client_id, scope="", granted_at=now, updated_at=now
        )
        .on_conflict_do_nothing(index_elements=["user_id", "client_id"])
    )
    consent = session.scalar(
        select(Consent)
        .where(Consent.user_id == user.id, Consent.client_id == client.client_id)
        .with_for_update(of=Consent)
        .execution_options(populate_existing=True)
    )
    consent.scope = " ".join(sorted(consent.scopes | set(scopes)))
    if claims:
        consent.claims = " ".join(sorted(consent.claim_names | set(claims)))
    details = {"scope": consent.scope}
    if consent.claims:
        details["claims"] = consent.claims
    audit.record("consent.granted", actor=user.sub, target=client.client_id, **details)
    session.commit()


def finish(grant, user, redirect_uri: str, params: dict[str, str]):
    if refused := answered_already():
        return refused
    response = server().create_authorization_response(grant_user=user, grant=grant)
    location = response.headers.get("Location")
    if response.status_code != 302 or not location:
        return response
    body = added_params(location, redirect_uri)
    if params.get("state") and not any(k == "state" for k, _ in body):
        body.append(("state", params["state"]))  # a pushed state is not in this URL (RFC 9126)
    return deliver(redirect_uri, body, response_mode(params))
