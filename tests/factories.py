"""Test data: users and clients created through the same code paths the CLI uses."""

from __future__ import annotations

from dataclasses import dataclass

from idp import db
from idp.auth.passwords import hash_password
from idp.models import Client, User
from idp.oauth.clients import create_client

PASSWORD = "correct horse battery staple"
_hash_cache: dict[str, str] = {}


@dataclass
class RegisteredClient:
    """A client row plus the plaintext secret that only its creator ever sees."""

    client_id: str
    client_secret: str | None
    redirect_uri: str
    row: Client


class Factory:
    def __init__(self, app):
        self.app = app

    def user(self, username="alice", password=PASSWORD, **fields) -> User:
        with self.app.app_context():
            if password not in _hash_cache:
                _hash_cache[password] = hash_password(password)
            session = db.session()
            user = User(username=username, password_hash=_hash_cache[password], **fields)
            session.add(user)
            session.commit()
            return user

    def client(
        self,
        *,
        name="Test App",
        public=False,
        redirect_uris=("https://rp.example/cb",),
        grant_types=("authorization_code", "refresh_token"),
        scope="openid profile email address phone offline_access",
        first_party=False,
        auth_method="client_secret_basic",
        id_token_alg=None,
    ) -> RegisteredClient:
        with self.app.app_context():
            return self._client(
                name,
                public,
                redirect_uris,
                grant_types,
                scope,
                first_party,
                auth_method,
                id_token_alg,
            )

    def _client(
        self,
        name,
        public,
        redirect_uris,
        grant_types,
        scope,
        first_party,
        auth_method,
        id_token_alg,
    ) -> RegisteredClient:
        session = db.session()
        row, secret = create_client(
            session,
            name=name,
            redirect_uris=list(redirect_uris),
            grant_types=list(grant_types),
            scope=scope,
            public=public,
            first_party=first_party,
            id_token_alg=id_token_alg,
        )
        if not public:
            row.token_endpoint_auth_method = auth_method
        session.commit()
        return RegisteredClient(
            row.client_id, secret, list(redirect_uris)[0] if redirect_uris else "", row
        )
