"""The pytest plugin as a host project sees it: installed, no configuration, no Django."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HOST_TEST = """
import pytest
import requests


def test_in_process_fake_uses_documented_defaults(verilock_api):
    session = verilock_api.add_session(status="processing")
    url = f"https://verilock.io/api/v1/sessions/{session.id}"
    response = requests.get(url, headers={"Authorization": "Bearer anything"})
    assert response.json()["status"] == "processing"
    verilock_api.complete(session.id, "approved")
    assert requests.get(url, headers={"X-API-Key": "k"}).json()["status"] == "approved"
    assert verilock_api.requests_for(session.id) == 2
    with pytest.raises(requests.ConnectionError):
        requests.get("https://example.com/")


@pytest.mark.verilock(api_key="secret")
def test_live_server(verilock_server):
    url = f"{verilock_server.url}/sessions"
    assert requests.get(url, headers={"X-API-Key": "nope"}).status_code == 401
    assert requests.get(url, headers={"X-API-Key": "secret"}).status_code == 200
"""


def test_fixtures_work_in_a_project_without_django_or_configuration(tmp_path: Path) -> None:
    (tmp_path / "test_host.py").write_text(HOST_TEST)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTEST_ADDOPTS")
    }
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 passed" in completed.stdout


def test_importing_the_kit_needs_neither_responses_nor_configured_django() -> None:
    # pytest loads the plugin in every host project run, Django or not, with or without
    # the `responses` test extra: importing it must stay cheap and safe. (The kit shares
    # the app's timestamp parser and error classes, which import django.core.exceptions,
    # but nothing that reads settings or touches a database.)
    code = (
        "import os, sys; os.environ.pop('DJANGO_SETTINGS_MODULE', None); "
        "import verilock_django.testing, verilock_django.testing.factories, "
        "verilock_django.testing.server, verilock_django.testing.plugin; "
        "heavy = ('responses', 'django.conf', 'django.db', 'django.apps'); "
        "loaded = sorted(m for m in sys.modules if m.startswith(heavy)); "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # noqa: S603
