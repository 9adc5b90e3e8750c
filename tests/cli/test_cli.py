"""The `idp` command line: init, users, clients, keys (through Click and the real script)."""

from __future__ import annotations

import json
import os
import pty
import select as io_select
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from idp import db
from idp.cli import cli
from idp.models import Client, SigningKey, User, secret_hash

from ..helpers import Auth, basic_auth

NEW_PASSWORD = "a brand new passphrase, all hers"  # not her name: the policy refuses that
LOCAL_ISSUER = "http://127.0.0.1:8000"


def idp_command() -> list[str]:
    script = Path(sys.executable).parent / "idp"
    if script.exists():
        return [str(script)]
    found = shutil.which("idp")
    return [found] if found else [sys.executable, "-c", "from idp.cli import main; main()"]


def run_idp(args: list[str], instance: Path, stdin: str = "", **env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_INSTANCE_PATH=str(instance), **env_extra)
    return subprocess.run(
        idp_command() + args,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=instance.parent,
        timeout=120,
    )


def invoke(runner, *args, input=None):
    return runner.invoke(cli, list(args), input=input)


def create_user(runner, *extra, username="carol", email="carol@example.com"):
    return invoke(
        runner,
        "users", "create", "--username", username, "--email", email, "--password-stdin", "--json",
        *extra,
        input=NEW_PASSWORD + "\n",
    )  # fmt: skip


def stored_user(app, username) -> User | None:
    with app.app_context():
        return db.session().scalar(select(User).where(User.username == username))


def stored_client(app, client_id) -> Client | None:
    with app.app_context():
        return db.session().scalar(select(Client).where(Client.client_id == client_id))


def client_count(app) -> int:
    with app.app_context():
        return len(db.session().scalars(select(Client)).all())


# --- idp init (real entry point) ----------------------------------------------------------


def test_init_twice_is_safe_and_writes_the_secret_key_once(tmp_path):
    instance = tmp_path / "instance"
    first = run_idp(["init", "--issuer", LOCAL_ISSUER, "--json"], instance)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert len(result["keys_created"]) == 2  # one RS256 and one ES256 key
    config = instance / "config.py"
    assert result["secret_key_written_to"] == str(config)
    assert (instance / "idp.sqlite3").exists()
    # The secret key is readable by its owner only.
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert text.count("SECRET_KEY =") == 1
    assert text.count("ISSUER =") == 1
    assert result["issuer"] == LOCAL_ISSUER

    second = run_idp(["init", "--json"], instance)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["keys_created"] == []
    assert again["secret_key_written_to"] is None
    assert config.read_text() == text
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    # The initialised instance is usable by the other commands.
    made = run_idp(
        ["users", "create", "--username", "dave", "--password-stdin", "--json"],
        instance,
        stdin=NEW_PASSWORD + "\n",
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["username"] == "dave"


def test_init_keeps_existing_settings_in_instance_config(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text("ACCESS_TOKEN_LIFETIME = 900\n")
    done = run_idp(["init", "--issuer", LOCAL_ISSUER], instance)
    assert done.returncode == 0, done.stderr
    text = (instance / "config.py").read_text()
    assert text.startswith("ACCESS_TOKEN_LIFETIME = 900\n")
    assert "SECRET_KEY =" in text
    assert "Traceback" not in done.stderr


def test_help_on_a_machine_with_nothing_configured_lists_the_commands(tmp_path):
    # The first thing a new operator types: no issuer yet, so the app cannot be built, and
    # the help must not need it.
    instance = tmp_path / "instance"
    instance.mkdir()
    done = run_idp(["--help"], instance)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "Error" not in done.stderr
    for command in ("init", "demo", "serve", "users", "clients", "keys", "db"):
        assert f"  {command} " in done.stdout
    mistyped = run_idp(["user", "list"], instance)
    assert mistyped.returncode == 2
    assert "No such command 'user'" in mistyped.stderr
    assert "Traceback" not in mistyped.stderr


def test_unsafe_configuration_is_a_short_error_not_a_traceback(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    done = run_idp(
        ["keys", "rotate"], instance, IDP_SECRET_KEY="k", IDP_ISSUER="http://idp.example"
    )
    assert done.returncode == 2
    assert "IDP_ISSUER" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


# --- the issuer: never a silent default (OIDC Discovery §3) ------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def discover(base: str, process: subprocess.Popen, seconds: float = 30) -> dict:
    """The discovery document of a server this test started, once it answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            with urllib.request.urlopen(base + "/.well-known/openid-configuration") as answer:
                return json.load(answer)
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the server did not answer")


def start_idp(args: list[str], instance: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_INSTANCE_PATH=str(instance))
    with log.open("w") as out:
        return subprocess.Popen(
            idp_command() + args, env=env, cwd=instance.parent, stdout=out, stderr=out
        )


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_serve_refuses_to_start_without_an_issuer(tmp_path):
    # OIDC Discovery §3 / RFC 8414 §2: relying parties reach every endpoint through the
    # issuer; a guessed default sends them to a port where nothing listens.
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text('SECRET_KEY = "k" * 32\n')
    done = run_idp(["serve", "--bind", f"127.0.0.1:{free_port()}"], instance)
    assert done.returncode == 2
    assert "No issuer is configured" in done.stderr
    assert "idp init --issuer" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_init_writes_the_issuer_and_serve_publishes_it(tmp_path):
    # README, "Running it for real": init with the issuer, then serve on that address.
    instance = tmp_path / "instance"
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    done = run_idp(["init", "--issuer", issuer + "/", "--json"], instance)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["issuer"] == issuer  # no trailing slash (Discovery §3)
    assert f"ISSUER = {issuer!r}" in (instance / "config.py").read_text()

    server = start_idp(
        ["serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"], instance, tmp_path / "log"
    )
    try:
        meta = discover(issuer, server)
    finally:
        stop(server)
    assert meta["issuer"] == issuer
    assert meta["token_endpoint"] == issuer + "/token"
    assert meta["jwks_uri"].startswith(issuer + "/")


def test_init_again_with_another_issuer_replaces_it(tmp_path):
    instance = tmp_path / "instance"
    assert run_idp(["init", "--issuer", LOCAL_ISSUER], instance).returncode == 0
    again = run_idp(["init", "--issuer", "https://id.example.com", "--json"], instance)
    assert again.returncode == 0, again.stderr
    text = (instance / "config.py").read_text()
    assert text.count("ISSUER =") == 1
    assert "ISSUER = 'https://id.example.com'" in text
    # Without --issuer, init keeps the configured one.
    kept = run_idp(["init", "--json"], instance)
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["issuer"] == "https://id.example.com"


def test_init_without_an_issuer_and_without_a_terminal_says_what_to_pass(tmp_path):
    instance = tmp_path / "instance"
    done = run_idp(["init"], instance)
    assert done.returncode == 2
    assert "--issuer" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (instance / "idp.sqlite3").exists()
    assert not (instance / "config.py").exists()


@pytest.mark.parametrize(
    "issuer", ["http://id.example.com", "https://id.example.com/?x=1", "id.example.com"]
)
def test_init_refuses_an_unsafe_issuer(tmp_path, issuer):
    # RFC 6749 §3.1 (TLS outside loopback), RFC 8414 §2 (no query or fragment).
    instance = tmp_path / "instance"
    done = run_idp(["init", "--issuer", issuer], instance)
    assert done.returncode == 2
    assert "--issuer" in done.stderr
    assert not (instance / "config.py").exists()


def test_init_in_a_terminal_asks_for_the_issuer(tmp_path):
    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_INSTANCE_PATH=str(instance))
    main, child = pty.openpty()
    process = subprocess.Popen(
        idp_command() + ["init"], stdin=child, stdout=child, stderr=child, env=env,
        cwd=tmp_path,
    )  # fmt: skip
    os.close(child)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Issuer URL" not in seen and time.monotonic() < deadline:
            if io_select.select([main], [], [], 0.5)[0]:
                seen += os.read(main, 1024)
        assert b"Issuer URL" in seen
        os.write(main, b"https://id.example.com\n")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)
    assert "ISSUER = 'https://id.example.com'" in (instance / "config.py").read_text()


def test_run_without_a_configured_issuer_uses_its_own_address(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text('SECRET_KEY = "k" * 32\n')
    port = free_port()
    server = start_idp(["run", "--port", str(port)], instance, tmp_path / "log")
    try:
        meta = discover(f"http://127.0.0.1:{port}", server)
    finally:
        stop(server)
    assert meta["issuer"] == f"http://127.0.0.1:{port}"


# --- idp users create ---------------------------------------------------------------------


def test_users_create_with_password_stdin_makes_a_user_who_can_sign_in(app, runner, client):
    result = create_user(runner)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["username"] == "carol" and data["email"] == "carol@example.com"
    assert data["admin"] is False
    assert "password" not in data  # it came from stdin: never echoed
    assert NEW_PASSWORD not in result.output

    row = stored_user(app, "carol")
    assert row.sub == data["sub"]
    assert row.is_admin is False
    assert row.password_hash.startswith("$argon2id$")
    assert NEW_PASSWORD not in row.password_hash

    # OIDC Core §5.1 "sub": stable and opaque.
    assert Auth(client).login("carol", NEW_PASSWORD).status_code == 302
    assert client.get("/account/").status_code == 200


def test_users_create_admin_sets_is_admin(app, runner):
    result = create_user(runner, "--admin")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["admin"] is True
    assert stored_user(app, "carol").is_admin is True


def test_users_create_without_password_stdin_prints_a_random_password_once(app, runner, client):
    result = invoke(runner, "users", "create", "--username", "erin", "--json")
    assert result.exit_code == 0, result.output
    password = json.loads(result.stdout)["password"]
    assert len(password) >= 16
    assert Auth(client).login("erin", password).status_code == 302


@pytest.mark.parametrize(
    ("username", "email"),
    [
        ("carol", "other@example.com"),
        ("other", "carol@example.com"),
        ("other", "Carol@Example.com"),
    ],
)
def test_duplicate_username_or_email_is_a_clear_error(app, runner, username, email):
    assert create_user(runner).exit_code == 0
    result = create_user(runner, username=username, email=email)
    assert result.exit_code != 0
    assert "already exists" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert stored_user(app, "other") is None


def test_empty_password_on_stdin_is_refused(app, runner):
    result = invoke(
        runner, "users", "create", "--username", "frank", "--password-stdin", input="\n"
    )
    assert result.exit_code != 0
    assert "empty password" in result.output
    assert stored_user(app, "frank") is None


# --- idp clients create -------------------------------------------------------------------


def create_client(runner, *extra):
    return invoke(
        runner,
        "clients", "create", "--name", "Billing", "--redirect-uri", "https://billing.example/cb",
        "--grant-type", "authorization_code", "--scope", "openid", "--json",
        *extra,
    )  # fmt: skip


def test_confidential_client_secret_is_shown_once_and_stored_only_as_a_hash(app, runner, client):
    # RFC 6749 §2.3.1 / RFC 7591 §3.2.1: the secret is issued to the client; the server
    # keeps only what it needs to check it.
    result = create_client(runner, "--confidential")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    client_id, secret = data["client_id"], data["client_secret"]
    assert len(secret) >= 32
    assert data["token_endpoint_auth_method"] == "client_secret_basic"
    assert data["redirect_uris"] == ["https://billing.example/cb"]
    assert data["grant_types"] == ["authorization_code"]

    row = stored_client(app, client_id)
    assert row.client_secret_hash == secret_hash(secret)
    stored = repr({c.name: getattr(row, c.name) for c in Client.__table__.columns})
    assert secret not in stored

    # The secret authenticates the client at the token endpoint (RFC 6749 §3.2.1):
    # a bad code is then invalid_grant, while a wrong secret is invalid_client.
    form = {
        "grant_type": "authorization_code",
        "code": "nope",
        "redirect_uri": data["redirect_uris"][0],
    }
    good = client.post("/token", data=form, headers=basic_auth(client_id, secret))
    assert good.get_json()["error"] == "invalid_grant"
    bad = client.post("/token", data=form, headers=basic_auth(client_id, secret + "x"))
    assert bad.status_code == 401 and bad.get_json()["error"] == "invalid_client"


def test_client_secret_appears_once_in_the_text_output(runner):
    result = invoke(
        runner, "clients", "create", "--name", "N", "--redirect-uri", "https://n.example/cb"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    secret = next(line.split(": ", 1)[1] for line in lines if line.startswith("client_secret:"))
    assert result.stdout.count(secret) == 1
    assert "shown only now" in result.stdout


def test_public_client_gets_no_secret_and_auth_method_none(app, runner):
    # RFC 6749 §2.1 public clients; RFC 7591 §2 token_endpoint_auth_method "none".
    result = create_client(runner, "--public")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["client_secret"] is None
    assert data["token_endpoint_auth_method"] == "none"
    row = stored_client(app, data["client_id"])
    assert row.client_secret_hash is None
    assert row.token_endpoint_auth_method == "none"


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://app.example/cb", "loopback"),  # RFC 8252 §7.3, RFC 6749 §3.1.2.1
        ("https://app.example/cb#frag", "fragment"),  # RFC 6749 §3.1.2
        ("javascript:alert(1)", "javascript"),
        ("/relative/cb", "absolute"),
    ],
)
def test_unsafe_redirect_uri_is_refused(app, runner, uri, reason):
    result = invoke(runner, "clients", "create", "--name", "Bad", "--redirect-uri", uri, "--json")
    assert result.exit_code != 0
    assert reason in result.output
    assert "Traceback" not in result.output
    assert client_count(app) == 0


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:8765/cb", "http://[::1]/cb", "http://localhost/cb"]
)
def test_http_loopback_redirect_uri_is_accepted(runner, uri):
    # RFC 8252 §7.3: native apps listen on the loopback interface.
    result = invoke(
        runner, "clients", "create", "--name", "Native", "--redirect-uri", uri, "--public"
    )
    assert result.exit_code == 0, result.output


def test_authorization_code_client_needs_a_redirect_uri(app, runner):
    result = invoke(runner, "clients", "create", "--name", "NoUri", "--json")
    assert result.exit_code != 0
    assert "--redirect-uri" in result.output
    assert client_count(app) == 0


# --- idp keys rotate ----------------------------------------------------------------------


def test_keys_rotate_adds_new_active_keys_and_keeps_old_ones_published(app, runner, client):
    # RFC 7517 §5 / OIDC Core §10.1.1: rotated-out keys stay in the JWKS for a while so
    # tokens they signed still verify.
    before = {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    result = invoke(runner, "keys", "rotate", "--json")
    assert result.exit_code == 0, result.output
    active = json.loads(result.stdout)["active"]
    assert sorted(k["alg"] for k in active) == ["ES256", "RS256"]
    new = {k["kid"] for k in active}
    assert not new & before

    with app.app_context():
        rows = db.session().scalars(select(SigningKey)).all()
        old = [r for r in rows if r.kid in before]
        assert all(r.retired_at is not None for r in old)
        grace = timedelta(seconds=app.config["KEY_GRACE_PERIOD"])
        assert all(r.publish_until - r.retired_at == grace for r in old)
        assert all(r.retired_at is None for r in rows if r.kid in new)

    published = {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    assert published == before | new


def test_json_output_of_every_command_parses(app, runner):
    outputs = [
        create_user(runner),
        create_client(runner, "--public"),
        invoke(runner, "keys", "rotate", "--json"),
    ]
    for result in outputs:
        assert result.exit_code == 0, result.output
        assert isinstance(json.loads(result.stdout), dict)


def test_serve_writes_the_log_out_before_gunicorn_replaces_the_process(monkeypatch, tmp_path):
    # exec replaces the process with its log writer thread: what the app logged while it
    # was built (a bad setting's warning, say) must be written first.
    from click.testing import CliRunner

    from idp import logs, serve

    started = []
    monkeypatch.setattr(serve, "exec_gunicorn", lambda *args: started.append(args))
    monkeypatch.setattr(logs, "drain", lambda: started.append("drained"))
    for name in list(os.environ):
        if name.startswith("IDP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IDP_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("IDP_ISSUER", LOCAL_ISSUER)
    monkeypatch.setenv("IDP_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("IDP_DATABASE_URL", f"sqlite:///{tmp_path}/idp.sqlite3")
    result = CliRunner().invoke(cli, ["serve", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert started[0] == "drained" and len(started) == 2
