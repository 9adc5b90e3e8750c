"""The cheapest possible WSGI app: the ceiling a server puts on any app it runs.

Answers every request with the same 1.5 kB JSON body (the size of this server's discovery
document) and does nothing else, so whatever a load test measures against it is the cost of
the HTTP server and the kernel alone. ``flask_app`` is the same answer from a Flask view,
to show what Flask and Werkzeug add to every request that reaches a view. ``bench/ceiling.sh``
serves them with gunicorn (as ``idp serve`` configures it) and, for comparison, with a server
with a native HTTP parser.
"""

from __future__ import annotations

import json

from flask import Flask, Response

BODY = json.dumps({"issuer": "http://127.0.0.1:8800", "padding": "x" * 1450}).encode()
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


flask_app = Flask(__name__)


@flask_app.get("/")
def hello():
    return Response(BODY, content_type="application/json")
