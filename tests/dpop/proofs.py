"""DPoP proofs as a client makes them (RFC 9449 §4.2), signed with joserfc."""

from __future__ import annotations

import json
import time
import uuid

from joserfc import jws
from joserfc.jwk import ECKey

from idp.oauth import dpop


class Prover:
    """A DPoP key pair (§4.1) that makes proofs; each argument can make one thing wrong."""

    def __init__(self, key=None, alg="ES256", token_url="http://localhost/token"):
        self.key = key or ECKey.generate_key("P-256", private=True)
        self.alg = alg
        self.token_url = token_url

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()  # RFC 7638

    def proof(self, htm="POST", htu="", *, access_token=None, header=None, **claims):
        protected = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.key.as_dict(private=False)}
        protected.update(header or {})
        protected = {k: v for k, v in protected.items() if v is not None}
        htu = self.token_url if htu == "" else htu  # None: no htu claim at all
        payload = {"jti": uuid.uuid4().hex, "htm": htm, "htu": htu, "iat": int(time.time())}
        if access_token is not None:
            payload["ath"] = dpop.ath(access_token)
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jws.serialize_compact(
            protected, json.dumps(payload), self.key, algorithms=[self.alg]
        )

    def headers(self, *args, **kwargs) -> dict:
        return {"DPoP": self.proof(*args, **kwargs)}
