"""The built distribution is complete and works when installed into a fresh virtualenv.

Builds the wheel and sdist with ``python -m build`` (or takes them from
``VERILOCK_DIST_DIR``, as CI does after ``make build``), checks them with twine, installs the
wheel into a new virtualenv, and runs ``migrate``, ``check`` and the sync command's
``--help`` in a minimal project generated in a temporary directory.

Slow (a build and an install): ``VERILOCK_SKIP_PACKAGING_TEST=1`` skips it locally. CI
always runs it.
"""

from __future__ import annotations

import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

from .distribution import SKIP_SLOW, install_into_new_venv, only, run

ROOT = Path(__file__).resolve().parent.parent

pytestmark = SKIP_SLOW


def test_wheel_ships_migrations_templates_static_files_and_py_typed(dist: Path) -> None:
    with zipfile.ZipFile(only(dist, "verilock_django-*.whl")) as wheel:
        names = set(wheel.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        plugin_entry = wheel.read(entry_points).decode()
    expected = {
        "verilock_django/py.typed",
        "verilock_django/migrations/__init__.py",
        "verilock_django/migrations/0001_initial.py",
        "verilock_django/management/commands/sync_verilock_sessions.py",
    }
    # Every migration, template and static file in the source tree is in the wheel.
    package = ROOT / "verilock_django"
    for folder in ("migrations", "templates", "static"):
        for path in (package / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                expected.add(path.relative_to(ROOT).as_posix())
    assert any(n.startswith("verilock_django/templates/") for n in expected)
    assert any(n.startswith("verilock_django/static/") for n in expected)
    assert expected - names == set()
    # The test suite and the example project are not part of the distribution.
    assert not any(n.startswith(("tests/", "example_project/")) for n in names)
    # The pytest plugin is registered, so users' suites get the fixtures by installing.
    assert "[pytest11]" in plugin_entry
    assert "verilock = verilock_django.testing.plugin" in plugin_entry


def test_sdist_ships_the_package_data_too(dist: Path) -> None:
    with tarfile.open(only(dist, "verilock_django-*.tar.gz")) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert "verilock_django/py.typed" in names
    assert "verilock_django/migrations/0001_initial.py" in names
    assert any(n.startswith("verilock_django/templates/") for n in names)
    assert any(n.startswith("verilock_django/static/") for n in names)
    assert "README.md" in names
    # The README's relative links resolve inside the sdist too.
    assert {"docs/tutorial.md", "docs/payloads.md", "CHANGELOG.md", "CONTRIBUTING.md"} <= names


def test_twine_accepts_the_distributions(dist: Path) -> None:
    files = [only(dist, "verilock_django-*.whl"), only(dist, "verilock_django-*.tar.gz")]
    output = run(sys.executable, "-m", "twine", "check", "--strict", *files)
    assert output.count("PASSED") == 2


MINIMAL_SETTINGS = """
    SECRET_KEY = "packaging-test-only"
    USE_TZ = True
    DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
    INSTALLED_APPS = [
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "verilock_django",
    ]
    MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ]
    TEMPLATES = [{{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {{"context_processors": [
            "django.template.context_processors.request",
            "django.contrib.auth.context_processors.auth",
            "django.contrib.messages.context_processors.messages",
        ]}},
    }}]
    ROOT_URLCONF = "minimal_site.urls"
    DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
    VERILOCK_API_KEY = "qi_test_packaging"
"""


def make_project(where: Path) -> Path:
    """A host project as a user would write it: the app in INSTALLED_APPS, the admin on."""
    site = where / "minimal_site"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")
    (site / "settings.py").write_text(
        textwrap.dedent(MINIMAL_SETTINGS.format(db=str(where / "db.sqlite3")))
    )
    (site / "urls.py").write_text(
        "from django.contrib import admin\nfrom django.urls import path\n\n"
        'urlpatterns = [path("admin/", admin.site.urls)]\n'
    )
    return where


def test_wheel_installs_and_works_in_a_fresh_project(dist: Path, tmp_path: Path) -> None:
    wheel = only(dist, "verilock_django-*.whl")
    venv = tmp_path / "venv"
    python = install_into_new_venv(venv, str(wheel))

    project = make_project(tmp_path / "project")
    # Run from the project with a clean path: the checkout must not shadow the install.
    env = {"DJANGO_SETTINGS_MODULE": "minimal_site.settings", "PYTHONPATH": str(project)}
    where = run(
        python, "-c", "import verilock_django; print(verilock_django.__file__)", cwd=project, **env
    )
    assert str(venv) in where, f"imported from {where}, not from the installed wheel"

    run(python, "-m", "django", "migrate", "--verbosity", "0", cwd=project, **env)
    tables = run(
        python,
        "-c",
        "import django; django.setup();"
        "from django.db import connection; print(sorted(connection.introspection.table_names()))",
        cwd=project,
        **env,
    )
    assert "verilock_django_session" in tables
    assert "verilock_django_stepresult" in tables
    assert "System check identified no issues" in run(
        python, "-m", "django", "check", cwd=project, **env
    )
    help_text = run(python, "-m", "django", "sync_verilock_sessions", "--help", cwd=project, **env)
    assert "--dry-run" in help_text
    assert "--limit" in help_text
    # The migrations shipped match the models: nothing left for the user to generate.
    run(python, "-m", "django", "makemigrations", "--check", "--dry-run", cwd=project, **env)


HOST_TEST = """
import pytest
from verilock_django.models import Session
from verilock_django.sync import sync_session


@pytest.mark.django_db
def test_an_approved_session_is_mirrored(verilock_api):
    remote = verilock_api.add_session(status="approved")
    sync_session(remote.id)
    assert Session.objects.get(pk=remote.id).status == "approved"
    assert verilock_api.requests_for(remote.id) == 1
"""


def test_the_test_extra_brings_the_plugin_and_no_database_driver(
    dist: Path, tmp_path: Path
) -> None:
    """A host project installs ``verilock-django[test]``: the plugin works with no API key,
    and neither a database driver nor the ``encryption`` extra comes with it."""
    wheel = only(dist, "verilock_django-*.whl")
    python = install_into_new_venv(tmp_path / "venv", f"{wheel}[test]")
    missing = run(
        python,
        "-c",
        "import importlib.util as u; "
        "print([m for m in ('psycopg', 'psycopg2', 'MySQLdb', 'environ', 'dj_database_url', "
        "'encrypted_fields') if u.find_spec(m)])",
    )
    assert missing.strip() == "[]"

    project = make_project(tmp_path / "project")
    settings = project / "minimal_site" / "settings.py"
    # The host has not configured a key yet: the plugin supplies a fake one.
    settings.write_text(settings.read_text().replace('VERILOCK_API_KEY = "qi_test_packaging"', ""))
    assert "VERILOCK_API_KEY" not in settings.read_text()
    (project / "test_kyc.py").write_text(HOST_TEST)
    output = run(
        python,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "test_kyc.py",
        cwd=project,
        DJANGO_SETTINGS_MODULE="minimal_site.settings",
        PYTHONPATH=str(project),
    )
    assert "1 passed" in output
