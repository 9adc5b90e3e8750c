"""`idp serve --reuse-port`: each worker listens on a socket of its own, so the kernel spreads
keep-alive connections across the workers (docs/configuration.md).

With the default shared socket, whichever worker is idle accepts the next connection and
keeps it while it stays open: under 32 keep-alive connections one of two workers held 28
(docs/benchmarks.md, eleventh round), and two workers served little more than one. This
test opens 32 connections at once and reads from the access log which worker answered
each: with a socket per worker, the kernel's hash of each connection's addresses picks the
worker, and both get a share (fewer than 4 of 32 on one side by chance: p < 3e-6).

Only /healthz is asked, which reads no table, so a SQLite file serves on both CI databases.
"""

from __future__ import annotations

import http.client
from collections import Counter
from urllib.parse import urlsplit

import pytest

from .test_workers import at_once, running

CONNECTIONS = 32
REQUESTS_PER_CONNECTION = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    database = f"sqlite:///{tmp_path_factory.mktemp('reuse-port')}/idp.sqlite3"
    with running(tmp_path_factory, database, "--reuse-port") as started:
        yield started


class Answer:
    """What Server.served_by reads: the request id header of one answer."""

    def __init__(self, response: http.client.HTTPResponse):
        assert response.status == 200
        self.headers = {"X-Request-Id": response.getheader("X-Request-Id")}


def keep_alive_requests(url: str) -> list[Answer]:
    """REQUESTS_PER_CONNECTION requests on one HTTP/1.1 connection, kept open between them."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        answers = []
        for _ in range(REQUESTS_PER_CONNECTION):
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            answers.append(Answer(response))
            response.read()
        return answers
    finally:
        connection.close()


def test_each_worker_has_a_listener_and_takes_a_share_of_keep_alive_connections(server):
    per_connection = at_once(CONNECTIONS, lambda _i: keep_alive_requests(server.url))

    workers = [server.served_by(answers) for answers in per_connection]
    # Keep-alive (RFC 9112 §9.3): a connection's requests all go to the worker that accepted it.
    assert all(len(pids) == 1 for pids in workers), workers
    held = Counter(next(iter(pids)) for pids in workers)
    assert len(held) == 2, held
    assert min(held.values()) >= 4, held
