"""A software authenticator for tests: ES256 keys (``cryptography``), attestation "none",
authenticator data and client data built as WebAuthn L3 §6.1 and §5.8.1 say, so the server
is tested against the bytes a browser would send, not against a mock of py_webauthn."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from base64 import urlsafe_b64decode, urlsafe_b64encode

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """One credential on one authenticator. ``counter=False`` reports 0 forever, as synced
    passkeys do; ``backup_eligible`` sets the BE (and BS) flags."""

    def __init__(self, *, counter: bool = True, backup_eligible: bool = False, uv: bool = True):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.counter = counter
        self.sign_count = 0
        self.backup_eligible = backup_eligible
        self.uv = uv
        self.user_handle: bytes | None = None

    @property
    def id(self) -> str:
        return b64(self.credential_id)

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _flags(self, uv: bool | None, attested: bool) -> int:
        flags = UP
        if self.uv if uv is None else uv:
            flags |= UV
        if self.backup_eligible:
            flags |= BE | BS
        if attested:
            flags |= AT
        return flags

    @staticmethod
    def client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    def create(self, options: str | dict, origin: str, rp_id: str | None = None, uv=None) -> dict:
        """The JSON of navigator.credentials.create() for these creation options."""
        options = json.loads(options) if isinstance(options, str) else options
        rp_id = rp_id or options["rp"]["id"]
        self.user_handle = unb64(options["user"]["id"])
        client_data = self.client_data("webauthn.create", options["challenge"], origin)
        attested = (
            bytes(16)  # AAGUID: zeros, as with attestation "none"
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self.cose_key()
        )
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags(uv, attested=True)])
            + struct.pack(">I", self.sign_count)
            + attested
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "attestationObject": b64(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: str | dict,
        origin: str,
        rp_id: str | None = None,
        uv=None,
        sign_count: int | None = None,
        user_handle: bytes | None = None,
    ) -> dict:
        """The JSON of navigator.credentials.get(): an assertion signed with the key."""
        options = json.loads(options) if isinstance(options, str) else options
        rp_id = rp_id or options["rpId"]
        if sign_count is None:
            if self.counter:
                self.sign_count += 1
            sign_count = self.sign_count if self.counter else 0
        client_data = self.client_data("webauthn.get", options["challenge"], origin)
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags(uv, attested=False)])
            + struct.pack(">I", sign_count)
        )
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        handle = user_handle if user_handle is not None else self.user_handle
        response = {
            "clientDataJSON": b64(client_data),
            "authenticatorData": b64(auth_data),
            "signature": b64(signature),
        }
        if handle is not None:
            response["userHandle"] = b64(handle)
        return {"id": self.id, "rawId": self.id, "type": "public-key", "response": response}
