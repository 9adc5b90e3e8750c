"""OAuth 2.0 Demonstrating Proof of Possession, DPoP (RFC 9449): every proof is checked here.

    client ──POST /token, DPoP: proof(htm, htu, jti, iat[, nonce])──► ``from_request``
              §4.3 checks ──► g.dpop_jkt (RFC 7638 thumbprint of the proof's key)
              ──► token_type "DPoP"; the access token bound to jkt: ``cnf.jkt`` in a JWT
              (§6.1), the ``jkt`` column for an opaque one (introspection answers cnf, §6.2);
              a public client's refresh token bound too (§5)
    client ──GET /userinfo, Authorization: DPoP <at>, DPoP: proof(..., ath)──► ``at_resource``
              same checks plus ath (§4.3 item 12, §7) and the token's jkt; errors as
              ``WWW-Authenticate: DPoP error=..., algs=...`` (§7.1)
    client ──POST /par with dpop_jkt or a proof──► the code is bound to that key (§10)
    resource server ──POST /introspect token, dpop_proof, dpop_method, dpop_uri──►
              ``check_presented`` (UserInfo's check, without this server's nonce)

A proof's ``jti`` is recorded until the proof's ``iat`` window has passed, in the store that
client assertions use (``client_auth.first_use``: the database's ``jwt_replay`` table or
Redis, shared by every worker; purged by ``idp purge``), under its own namespace.

Server nonces (§8, §9) are stateless: an HMAC of the current time window keyed by
SECRET_KEY, so every worker computes the same one; the current and the previous window's
nonce are accepted. They are asked for only with ``DPOP_REQUIRE_NONCE``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from flask import current_app, g, request
from joserfc import jwk, jws
from joserfc.errors import JoseError

from .client_auth import first_use
from .paths import PATHS

TYP = "dpop+jwt"  # §4.2
# §4.2: asymmetric algorithms only, never "none" nor a MAC (dpop_signing_alg_values_supported).
ALGORITHMS = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512")
# Members of a private key (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2): a proof carrying one is
# refused (§4.3 item 7): its key was published.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
MAX_PROOF_BYTES = 8192
JKT = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of a SHA-256 thumbprint (RFC 7638)
NONCE_BYTES = 24


class DPoPError(OAuth2Error):
    """invalid_dpop_proof or use_dpop_nonce (§5, §7.1, §8, §9); 400 at the authorization server."""

    def __init__(self, description=None, error="invalid_dpop_proof", nonce=None):
        super().__init__(description, status_code=400, error=error)
        self.nonce = nonce

    def get_headers(self):
        headers = super().get_headers()
        if self.nonce:
            headers.append(("DPoP-Nonce", self.nonce))
        return headers


def thumbprint(jwk_dict: dict) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key."""
    return jwk.import_key(jwk_dict).thumbprint()


def ath(access_token: str) -> str:
    """§4.2: base64url(SHA-256(ASCII(access token))), the proof's ``ath`` claim."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def normalise_uri(uri: str) -> str:
    """§4.3 item 9: RFC 3986 §6.2.2-6.2.3 normalisation, without query and fragment.

    Scheme and host lower-cased, the scheme's default port dropped, an empty path is "/".
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    port = parts.port
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", "", ""))


def endpoint_url(name: str) -> str:
    """The htu a proof for one of this server's endpoints carries: built from ISSUER."""
    return current_app.config["ISSUER"] + PATHS[name]


# --- nonces (§8, §9) ----------------------------------------------------------------------


def _nonce_for(window: int) -> str:
    key = hashlib.sha256(b"idp.dpop.nonce\0" + _secret()).digest()
    mac = hmac.new(key, str(window).encode(), hashlib.sha256).digest()[:NONCE_BYTES]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _secret() -> bytes:
    secret = current_app.config["SECRET_KEY"] or ""
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _window(now: float | None = None) -> int:
    lifetime = int(current_app.config["DPOP_NONCE_LIFETIME"])
    return int((now if now is not None else time.time()) // lifetime)


def current_nonce() -> str:
    return _nonce_for(_window())


def nonce_is_valid(value) -> bool:
    """The nonce of this window or of the previous one (a client may have just fetched it)."""
    if not isinstance(value, str):
        return False
    now = _window()
    return any(hmac.compare_digest(value, _nonce_for(w)) for w in (now, now - 1))


def nonce_required() -> bool:
    return bool(current_app._get_current_object().config["DPOP_REQUIRE_NONCE"])


# --- the proof (§4.3) ---------------------------------------------------------------------


def _b64json(segment: str) -> dict:
    padded = segment + "=" * (-len(segment) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _registry(alg: str) -> jws.JWSRegistry:
    """Only the header's algorithm; room in the header for an RSA jwk (joserfc allows 512 B)."""
    registry = jws.JWSRegistry(algorithms=[alg])
    registry.max_header_length = 4096
    return registry


def check_proof(
    proof: str, htm: str, htu: str, access_token: str | None = None, *, server_nonce: bool = True
) -> str:
    """Check one DPoP proof JWT as §4.3 lists; its key's thumbprint (jkt). Raises DPoPError.

    ``access_token`` is given at resources: then ``ath`` must be its hash (item 12).
    ``server_nonce`` False skips item 10 for a proof a resource server received: the nonce
    it carries is that server's own (§9), never one this server provided.
    """
    # 2. a well-formed JWS in compact serialisation.
    if len(proof) > MAX_PROOF_BYTES or proof.count(".") != 2:
        raise DPoPError("The DPoP proof is not a JWT.")
    try:
        header = _b64json(proof.split(".")[0])
    except (ValueError, UnicodeError):
        raise DPoPError("The DPoP proof is not a JWT.") from None
    # 4. typ; 5. an asymmetric algorithm this server supports (never none, never HS*).
    if header.get("typ") != TYP:
        raise DPoPError("The DPoP proof's typ must be dpop+jwt.")
    if header.get("alg") not in ALGORITHMS:
        raise DPoPError("The DPoP proof's alg is not supported.")
    # 7. the jwk header: a public key, never a private one.
    key_dict = header.get("jwk")
    if not isinstance(key_dict, dict) or key_dict.get("kty") not in ("EC", "RSA", "OKP"):
        raise DPoPError("The DPoP proof has no public jwk.")
    if any(member in key_dict for member in PRIVATE_MEMBERS):
        raise DPoPError("The DPoP proof's jwk contains a private key.")
    # 6. the signature, with that key and only the header's (allowed) algorithm.
    try:
        key = jwk.import_key(key_dict)
        signed = jws.deserialize_compact(proof, key, registry=_registry(header["alg"]))
        claims = json.loads(signed.payload)
        jkt = key.thumbprint()
    except (JoseError, ValueError, TypeError, KeyError):
        raise DPoPError("The DPoP proof's signature is invalid.") from None
    if not isinstance(claims, dict):
        raise DPoPError("The DPoP proof's claims are not a JSON object.")
    # 3. the required claims.
    for name in ("jti", "htm", "htu", "iat"):
        if name not in claims:
            raise DPoPError(f"The DPoP proof has no {name} claim.")
    jti, iat = claims["jti"], claims["iat"]
    if not isinstance(jti, str) or not 0 < len(jti) <= 256:
        raise DPoPError("The DPoP proof's jti is invalid.")
    # 8. htm; 9. htu, both normalised, without query and fragment.
    if claims["htm"] != htm:
        raise DPoPError("The DPoP proof's htm does not match the request method.")
    try:  # a malformed htu ("http://[", a bad port) is a mismatch, not an error
        same = isinstance(claims["htu"], str) and normalise_uri(claims["htu"]) == normalise_uri(htu)
    except ValueError:
        same = False
    if not same:
        raise DPoPError("The DPoP proof's htu does not match the request URI.")
    # 10. the server's nonce, when this server asks for one.
    if server_nonce and nonce_required() and not nonce_is_valid(claims.get("nonce")):
        raise DPoPError(
            "Use the nonce of the DPoP-Nonce header.", error="use_dpop_nonce", nonce=current_nonce()
        )
    # 11. iat within the window (§11.1: a proof is accepted only briefly).
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise DPoPError("The DPoP proof's iat is invalid.")
    now = time.time()
    max_age = int(current_app.config["DPOP_PROOF_MAX_AGE"])
    skew = int(current_app.config["DPOP_CLOCK_SKEW"])
    if iat > now + skew:
        raise DPoPError("The DPoP proof was issued in the future.")
    if iat < now - max_age - skew:
        raise DPoPError("The DPoP proof is too old.")
    # 12. at a resource: ath is the hash of the access token presented with it.
    if access_token is not None:
        if not isinstance(claims.get("ath"), str):
            raise DPoPError("The DPoP proof has no ath claim.")
        if not hmac.compare_digest(claims["ath"], ath(access_token)):
            raise DPoPError("The DPoP proof's ath does not match the access token.")
    # §11.1: a jti only once while its proof could be accepted (all workers: one store).
    expires = datetime.fromtimestamp(iat + max_age + 2 * skew, tz=UTC)
    if not first_use(f"dpop\0{jkt}", jti, expires):
        raise DPoPError("The DPoP proof was already used (jti replay).")
    return jkt


def header_proof() -> str | None:
    """The request's DPoP header, if any; more than one is refused (§4.3 item 1)."""
    req = request._get_current_object()
    if "HTTP_DPOP" not in req.environ:  # the one WSGI name of a DPoP header: none sent
        return None
    values = req.headers.getlist("DPoP")
    if len(values) > 1:
        raise DPoPError("Send one DPoP header.")
    return values[0] if values else None


# --- the authorization server (§5, §10) ---------------------------------------------------


def from_request(endpoint: str) -> str | None:
    """Check the DPoP header of a request to one of this server's endpoints; the jkt, kept
    for this request in ``g.dpop_jkt`` (None without a header). Raises DPoPError."""
    proof = header_proof()
    jkt = check_proof(proof, request.method, endpoint_url(endpoint)) if proof else None
    g._get_current_object().dpop_jkt = jkt
    return jkt


def current_jkt() -> str | None:
    """The key the tokens issued in this request are bound to (None: Bearer)."""
    return vars(g._get_current_object()).get("dpop_jkt")  # g.get, without the proxy


def require_for(client) -> None:
    """§5.2: a client registered with dpop_bound_access_tokens sends a proof every time."""
    if client is not None and client.dpop_bound_access_tokens and current_jkt() is None:
        raise InvalidRequestError("This client must send a DPoP proof (dpop_bound_access_tokens).")


def check_code(code) -> None:
    """§10: a code bound with dpop_jkt is redeemed only with a proof by that key."""
    bound = getattr(code, "dpop_jkt", None)
    if bound and current_jkt() != bound:
        raise InvalidGrantError("The DPoP key does not match the dpop_jkt of the authorization.")


def check_refresh(row, client) -> None:
    """§5: a public client's refresh token is bound to the key it was issued with."""
    if client.is_public and row.jkt and current_jkt() != row.jkt:
        raise InvalidGrantError("The refresh token is bound to another DPoP key.")


def check_dpop_jkt(value) -> str | None:
    """§10: the dpop_jkt authorization request parameter, a base64url SHA-256 thumbprint."""
    if value is None:
        return None
    if not isinstance(value, str) or not JKT.match(value):
        raise InvalidRequestError("dpop_jkt must be a JWK SHA-256 thumbprint (RFC 7638).")
    return value


def bind_pushed(lists: dict[str, list[str]]) -> None:
    """§10.1: a PAR request with a proof binds the code to the proof's key; a dpop_jkt sent
    with it must name that key."""
    jkt = current_jkt()
    if jkt is None:
        return
    if lists.get("dpop_jkt", [jkt]) != [jkt]:
        raise DPoPError("dpop_jkt does not match the key of the DPoP proof.")
    lists["dpop_jkt"] = [jkt]


def token_type() -> str:
    return "DPoP" if current_jkt() else "Bearer"


def add_nonce(response):
    """§8.2: the next nonce on every answer, when nonces are in use."""
    if nonce_required():
        response.headers["DPoP-Nonce"] = current_nonce()
    return response


# --- resources: UserInfo (§7) -------------------------------------------------------------


class ResourceError(Exception):
    """A refused protected-resource request: 401 with a DPoP challenge (§7.1)."""

    def __init__(self, error: str, description: str, nonce: str | None = None, status=401):
        super().__init__(description)
        self.error, self.description, self.nonce, self.status = error, description, nonce, status

    def challenge(self) -> str:
        return f'DPoP error="{self.error}", algs="{" ".join(ALGORITHMS)}"'


def challenge() -> str:
    """The DPoP challenge of a request without credentials (§7.1)."""
    return f'DPoP algs="{" ".join(ALGORITHMS)}"'


def at_resource(endpoint: str, scheme: str, access_token: str, row) -> None:
    """§7: the token and its proof at one of this server's resources (UserInfo).

    A DPoP-bound token is accepted only with the DPoP scheme and a proof by its key that
    names it (ath); a token sent with the DPoP scheme must be bound. Raises ResourceError.
    """
    bound = getattr(row, "jkt", None) if row is not None else None
    if scheme == "bearer":
        if bound:  # §7.2: a bound token is not a bearer token
            raise ResourceError("invalid_token", "This access token is DPoP-bound.")
        return
    try:
        proof = header_proof()
    except DPoPError as error:
        raise ResourceError(error.error, error.description, error.nonce) from None
    check_presented(proof, request.method, endpoint_url(endpoint), access_token, row)


def check_presented(
    proof: str | None, htm: str, htu: str, access_token: str, row, *, server_nonce: bool = True
) -> None:
    """§7 and §4.3: ``proof``, received with ``access_token`` on the request ``htm htu`` at a
    resource: every proof check, ``ath`` the token's hash (item 12), and the proof's key the
    one the token is bound to. The one check for UserInfo and for the proofs resource servers
    send to introspection (``endpoints.IntrospectionEndpoint``). Raises ResourceError.

    ``row`` None (an unknown token) checks the proof alone; the caller refuses the token.
    """
    try:
        if not proof:
            raise DPoPError("A DPoP proof is required.")
        jkt = check_proof(proof, htm, htu, access_token, server_nonce=server_nonce)
    except DPoPError as error:
        raise ResourceError(error.error, error.description, error.nonce) from None
    if row is None:
        return  # the caller answers invalid_token for an unknown token
    bound = getattr(row, "jkt", None)
    if not bound:
        raise ResourceError("invalid_token", "This access token is not DPoP-bound.")
    if not hmac.compare_digest(jkt, bound):
        raise ResourceError("invalid_token", "The DPoP proof's key does not match the token.")


def cnf(row) -> dict | None:
    """§6: the confirmation claim of a bound token."""
    return {"jkt": row.jkt} if getattr(row, "jkt", None) else None
