"""Per-worker read caches of client and resource registrations, for the protocol hot paths.

A token or introspection request needs its client's registration (RFC 6749 §2) and, for
RFC 8707 / RFC 9068, the registered resources. They change rarely and are read on every
request, so each worker keeps them in memory:

    change made in this worker (admin UI, RFC 7592, CLI in-process)  -> seen at once
    change made by another worker or process                         -> seen within
                                                                        REGISTRY_CACHE_SECONDS
    REGISTRY_CACHE_SECONDS = 0                                        -> no caching

"At once" works through one process-wide generation number, bumped by any ORM flush that
writes a Client or Resource; every cached entry remembers the generation it was read at.
Callers get fresh transient copies: nothing a request does to its ``request.client`` can
leak into another request. The endpoints that only read a token's client (introspection,
UserInfo) share one instance per cached registration instead (``shared``). Unknown client
ids are not cached, so a flood of made-up ids cannot fill memory, and a new registration is
found at once.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from .. import db
from ..models import Client, Resource

MAX_CLIENTS = 10_000  # cached registrations per worker; past it the cache starts over

_generation = 0
TABLES = {"clients", "resources", "resource_clients"}
_COLUMNS = tuple(attr.key for attr in Client.__mapper__.column_attrs)
_new_client = Client._sa_class_manager.new_instance


@event.listens_for(Session, "after_flush")
def _registrations_changed(session: Session, _context) -> None:
    global _generation
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Client | Resource):
            _generation += 1
            return


@event.listens_for(Session, "do_orm_execute")
def _bulk_write(state) -> None:
    # delete(Client)/update(Resource)... statements bypass the flush above.
    if (
        (state.is_update or state.is_delete)
        and getattr(state.statement, "table", None) is not None
        and state.statement.table.name in TABLES
    ):
        invalidate()


# Set while an endpoint authenticates a client that it then only READS up to its answer
# (endpoints.IntrospectionEndpoint): server.query_client answers ``RegistryCache.shared``
# instead of a copy made per request.
READING_CLIENT: ContextVar[bool] = ContextVar("idp_reading_client", default=False)


def invalidate() -> None:
    """Forget every cached registration in this process (raw SQL writes, tests)."""
    global _generation
    _generation += 1


@dataclass(frozen=True)
class Target:
    """A registered resource as the protocol reads it (a read-only copy of a Resource row)."""

    identifier: str
    scopes: tuple[str, ...]
    token_format: str | None
    access_token_lifetime: int | None
    introspection_client_id: str | None
    client_ids: frozenset[str]

    def allows_client(self, client_id: str) -> bool:
        return client_id in self.client_ids


@dataclass(frozen=True)
class Catalogue:
    """Every registered resource, by identifier and by the clients it is open to."""

    targets: dict[str, Target]
    by_client: dict[str, tuple[Target, ...]]
    registered_scopes: frozenset[str]


class RegistryCache:
    def __init__(self, ttl: float):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[dict, float, int, tuple[str, ...]]] = {}
        self._catalogue: tuple[Catalogue, float, int] | None = None
        self._shared: dict[str, tuple[tuple, Catalogue, Client]] = {}

    def _fresh(self, loaded_at: float, generation: int) -> bool:
        return generation == _generation and time.monotonic() - loaded_at < self.ttl

    def client(self, client_id: str) -> Client | None:
        """An enabled client by id, as a new transient Client; None if unknown or disabled."""
        entry = self._entry(client_id)
        if entry is None:
            return None
        # A new transient instance filled directly: the instrumented constructor would fire
        # ~35 attribute events per request for a copy nobody flushes.
        client = _new_client()
        values = client.__dict__
        values.update(entry[0])
        for name in entry[3]:  # lists and dicts are copied, the rest is immutable
            values[name] = values[name].copy()
        targets = self.catalogue().by_client.get(client_id, ())
        client.resource_scopes = frozenset(s for t in targets for s in t.scopes)
        return client

    def shared(self, client_id: str) -> Client | None:
        """An enabled client as ``client`` gives it, but one instance per cached registration
        shared by the requests that only READ it (the client of a token at introspection
        and UserInfo; the client introspection authenticates, ``READING_CLIENT``):
        the copy is made when the registration or the resources are re-read, not per
        request. Never change it; ``client`` gives a copy of one's own."""
        entry = self._entry(client_id)
        if entry is None:
            return None
        catalogue = self.catalogue()
        found = self._shared.get(client_id)
        if found is not None and found[0] is entry and found[1] is catalogue:
            return found[2]
        client = self.client(client_id)
        if self.ttl > 0:
            if len(self._shared) >= MAX_CLIENTS:
                self._shared.clear()
            self._shared[client_id] = (entry, catalogue, client)
        return client

    def settings(self, client_id: str) -> dict | None:
        """An enabled client's registered column values, shared and READ-ONLY; None if
        unknown or disabled. For checks that read a setting or two (the liveness rule),
        without the copy ``client`` makes."""
        entry = self._entry(client_id)
        return None if entry is None else entry[0]

    def _entry(self, client_id: str) -> tuple | None:
        entry = self._clients.get(client_id)
        if entry is None or not self._fresh(entry[1], entry[2]):
            generation, loaded_at = _generation, time.monotonic()
            row = db.session().scalar(
                select(Client).where(Client.client_id == client_id, Client.disabled.is_(False))
            )
            if row is None:
                self._clients.pop(client_id, None)
                return None
            values = {name: getattr(row, name) for name in _COLUMNS}
            mutable = tuple(k for k, v in values.items() if isinstance(v, list | dict))
            entry = (values, loaded_at, generation, mutable)
            if self.ttl > 0:
                if len(self._clients) >= MAX_CLIENTS:
                    self._clients.clear()
                self._clients[client_id] = entry
        return entry

    def catalogue(self) -> Catalogue:
        entry = self._catalogue
        if entry is None or not self._fresh(entry[1], entry[2]):
            with self._lock:
                entry = self._catalogue
                if entry is None or not self._fresh(entry[1], entry[2]):
                    generation, loaded_at = _generation, time.monotonic()
                    entry = (_load_catalogue(), loaded_at, generation)
                    self._catalogue = entry
        return entry[0]


def _load_catalogue() -> Catalogue:
    targets = {}
    by_client: dict[str, list[Target]] = {}
    for row in db.session().scalars(select(Resource).order_by(Resource.identifier)):
        target = Target(
            identifier=row.identifier,
            scopes=tuple(row.scopes),
            token_format=row.token_format,
            access_token_lifetime=row.access_token_lifetime,
            introspection_client_id=row.introspection_client_id,
            client_ids=frozenset(c.client_id for c in row.clients),
        )
        targets[target.identifier] = target
        for client_id in target.client_ids:
            by_client.setdefault(client_id, []).append(target)
    return Catalogue(
        targets=targets,
        by_client={k: tuple(v) for k, v in by_client.items()},
        registered_scopes=frozenset(s for t in targets.values() for s in t.scopes),
    )


def init_app(app: Flask) -> None:
    app.extensions["idp.registry"] = RegistryCache(float(app.config["REGISTRY_CACHE_SECONDS"]))


def registry() -> RegistryCache:
    return current_app._get_current_object().extensions["idp.registry"]
