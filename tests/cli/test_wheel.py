"""The package installs as a wheel: templates, static files, migrations, the OpenAPI
description and the password blocklist travel inside it."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_templates_static_files_and_migrations(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("idp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (ROOT / "templates").rglob("*.*"):  # pages, and mail's .html + .txt
        assert f"idp/templates/{template.relative_to(ROOT / 'templates')}" in names
    for asset in (ROOT / "static").rglob("*.*"):
        assert f"idp/static/{asset.relative_to(ROOT / 'static')}" in names
    for migration in (ROOT / "idp" / "migrations" / "versions").glob("*.py"):
        assert f"idp/migrations/versions/{migration.name}" in names
    assert "idp/migrations/env.py" in names and "idp/migrations/script.py.mako" in names
    assert "idp/oauth/openapi.json" in names  # served at /openapi.json
    # the password blocklist (NIST SP 800-63B rev. 4 §3.1.1.2), read offline, with its licence
    assert "idp/data/common-passwords.txt.gz" in names and "idp/data/README.md" in names
    # and the word lists' digests, which workers read instead of the words (auth/wordlists.py)
    assert {"idp/data/common-passwords.digests", "idp/data/zxcvbn.digests"} <= names
