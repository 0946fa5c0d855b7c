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


def host_pytest(project: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run pytest in the folder ``project`` as a host project would: none of this suite's
    settings module, path, pytest options or ``VERILOCK_*`` variables in the environment."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTEST_ADDOPTS")
        and not key.startswith("VERILOCK_")
    }
    return subprocess.run(  # noqa: S603 (our own interpreter and pytest)
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_fixtures_work_in_a_project_without_django_or_configuration(tmp_path: Path) -> None:
    (tmp_path / "test_host.py").write_text(HOST_TEST)
    completed = host_pytest(tmp_path, "--strict-markers")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 passed" in completed.stdout


DJANGO_HOST_SETTINGS = """
SECRET_KEY = "host-tests"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "verilock_django"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
"""

DJANGO_HOST_TEST = """
import pytest

from verilock_django.models import Session
from verilock_django.sync import sync_session


@pytest.mark.django_db
def test_sync_against_the_in_process_fake(verilock_api):
    remote = verilock_api.add_session(status="approved")
    sync_session(remote.id)
    assert Session.objects.get(pk=remote.id).status == "approved"
    assert [r.status for r in verilock_api.requests] == [200]


@pytest.mark.django_db
def test_sync_against_the_loopback_server(verilock_server):
    remote = verilock_server.state.add_session(status="declined")
    sync_session(remote.id)
    assert Session.objects.get(pk=remote.id).status == "declined"


def test_the_key_is_only_supplied_while_a_fixture_is_used(settings):
    assert not getattr(settings, "VERILOCK_API_KEY", "")
"""


def test_fixtures_supply_a_key_to_a_django_project_that_sets_none(tmp_path: Path) -> None:
    (tmp_path / "host_settings.py").write_text(DJANGO_HOST_SETTINGS)
    (tmp_path / "test_host.py").write_text(DJANGO_HOST_TEST)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nDJANGO_SETTINGS_MODULE = host_settings\npythonpath = .\n"
    )
    completed = host_pytest(tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "3 passed" in completed.stdout


IMPORT_CHECK = """
import sys

import verilock_django.testing.factories
import verilock_django.testing.plugin
import verilock_django.testing.webhooks
from verilock_django.testing import FakeVerilock, FakeVerilockServer

import django.apps
import django.conf

fake = FakeVerilock(api_key="k")
session = fake.add_session(status="processing")
fake.complete(session.id, "approved")
answer = fake.handle("GET", f"/sessions/{session.id}", "", {"X-API-Key": "k"}, b"")
assert answer.json()["status"] == "approved", answer.body
fake.close()
assert FakeVerilockServer.__name__ == "FakeVerilockServer"

loaded = sorted(m for m in sys.modules if m == "responses" or m.startswith("responses."))
assert not loaded, loaded
assert django.conf.settings.configured is False, "the kit configured Django settings"
assert django.apps.apps.ready is False, "the kit populated the app registry"
print("ok")
"""


def test_the_kit_works_without_settings_or_responses_and_leaves_django_unconfigured() -> None:
    # pytest loads the plugin in every host project run, Django or not, with or without
    # the `responses` test extra: importing the kit (the status vocabulary imports
    # django.db.models for its choices) must neither configure settings nor populate the
    # app registry, and the fake must work before either happens.
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    completed = subprocess.run(  # noqa: S603
        [sys.executable, "-c", IMPORT_CHECK],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "ok"
