"""The relying party's side of RFC 7591 / RFC 7592 in tests: requests and metadata."""

from __future__ import annotations

REDIRECT_URI = "https://rp.example/cb"


def metadata(**fields) -> dict:
    """A minimal valid registration request, with fields added or replaced."""
    body = {"redirect_uris": [REDIRECT_URI], "client_name": "Self-Registered App"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class Registrar:
    """The relying party's side of RFC 7591/7592, through the Flask test client."""

    def __init__(self, client):
        self.client = client

    def register(self, body: dict | None = None, token: str | None = None, **fields):
        body = metadata(**fields) if body is None else body
        return self.client.post("/register", json=body, headers=bearer(token) if token else {})

    def registered(self, **fields) -> dict:
        response = self.register(**fields)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def path(self, info: dict) -> str:
        return info["registration_client_uri"].removeprefix("http://localhost")

    def read(self, info: dict, token: str | None = None):
        return self.client.get(
            self.path(info), headers=bearer(token or info["registration_access_token"])
        )

    def update(self, info: dict, body: dict, token: str | None = None):
        return self.client.put(
            self.path(info),
            json=body,
            headers=bearer(token or info["registration_access_token"]),
        )

    def delete(self, info: dict, token: str | None = None):
        return self.client.delete(
            self.path(info), headers=bearer(token or info["registration_access_token"])
        )
