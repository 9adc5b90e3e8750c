"""PKCE (RFC 7636) as this server requires it: S256 only; mandatory for public clients.

Authlib's ``CodeChallenge`` accepts ``plain`` and checks for a challenge only at the token
endpoint; RFC 9700 §2.1.1 asks for S256 and for PKCE on every public client, so the
authorization request is refused up front when either rule is broken.
"""

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge as _CodeChallenge


class CodeChallenge(_CodeChallenge):
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"  # only ever stored as S256

    def __init__(self):
        super().__init__(required=True)

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        challenge = data.get("code_challenge")
        method = data.get("code_challenge_method")
        if not challenge and grant.request.client.is_public:
            raise InvalidRequestError(
                "Public clients must use PKCE: send code_challenge with "
                "code_challenge_method=S256 (RFC 7636, RFC 9700 section 2.1.1)."
            )
        if challenge and method != "S256":
            raise InvalidRequestError(
                "code_challenge_method must be S256; 'plain' is not supported "
                "(RFC 9700 section 2.1.1)."
            )
        super().validate_code_challenge(grant, redirect_uri)
