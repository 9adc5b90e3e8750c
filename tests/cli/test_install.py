"""The README's install: two commands that work on a fresh machine whatever is released later.

CI (.ci/run) runs those two commands from README.md in a fresh clone with the machine's own
``python3 -m venv``; these tests keep the rules that make that reproducible.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def locked() -> dict[str, str]:
    """Every requirement of requirements.lock: name -> pinned version."""
    pins = {}
    text = (ROOT / "requirements.lock").read_text()
    for entry in re.split(r"\n(?=\S)", text):
        if entry.startswith("#") or not entry.strip():
            continue
        match = REQUIREMENT.match(entry)
        assert match, f"not pinned with ==: {entry.splitlines()[0]}"
        assert not match.group(2), f"extras in the lock are resolved afresh by pip: {match[0]}"
        assert "--hash=sha256:" in entry, f"no hash: {match[0]}"
        pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b.strip() for b in blocks if "python3 -m venv" in b]


def test_every_locked_requirement_is_pinned_and_hashed():
    pins = locked()
    assert {"flask", "authlib", "pytest", "coverage"} <= set(pins)


def test_readme_installs_the_lock_exactly_without_resolving():
    # pip before 23.3 re-resolves a dependency asked for with extras (pytest-cov ->
    # coverage[toml]) to its newest release, then refuses it in hash-checking mode: the install
    # broke as soon as coverage had a release newer than the lock. --no-deps installs the
    # lock's list and nothing else.
    commands = readme_commands()
    assert [("idp demo" in c, "pytest" in c) for c in commands] == [(True, False), (False, True)]
    for command in commands:
        assert "pip install -q --no-deps -r requirements.lock" in command
        assert "--no-deps -e ." in command


def test_ci_runs_the_readme_commands_as_written():
    script = (ROOT / ".ci" / "run").read_text()
    assert 'readme_command "pytest"' in script and 'readme_command "idp demo"' in script
    assert "pip install" not in script  # no private copy of the install that could drift


def test_the_lock_is_closed_under_dependencies():
    # With --no-deps nothing pulls in a missing dependency: the lock must list all of them,
    # at versions that satisfy every package's requirements (pip check).
    check = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_this_environment_is_the_lock():
    pins = locked()
    for name, version in pins.items():
        assert metadata.version(name) == version, name
