"""The test matrix and release checks: ``nox -l`` lists every session.

* ``tests(python='3.12', django='6.1', db='postgresql')`` — the suite on one cell of
  Python 3.10-3.13 x Django 5.2/6.0/6.1 (only the pairs Django supports) x SQLite,
  PostgreSQL and MariaDB. ``nox -t ci`` runs the subset CI runs; ``nox -s tests`` all cells.
* ``lint``, ``typecheck``, ``coverage``, ``package`` — ruff, mypy strict, branch coverage
  and the wheel/sdist checks.

Interpreters come from pyenv (``$PYENV_ROOT/versions/3.X.Y``) or from ``PATH``. The
databases are the local services: PostgreSQL on 127.0.0.1:5432 (user ``postgres``, trust
auth) and MariaDB on 127.0.0.1:3306 (``root``, empty password); override with
``NOX_POSTGRES_URL`` / ``NOX_MARIADB_URL`` (a server URL without a database name). Each cell
uses its own database name, so cells can run at the same time without colliding.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

PYTHONS = ("3.10", "3.11", "3.12", "3.13")
DJANGOS = ("5.2", "6.0", "6.1")
DATABASES = ("sqlite", "postgresql", "mariadb")
NEWEST_PYTHON = PYTHONS[-1]

#: The cells ``.ci/run`` runs (``nox -t ci``): oldest and newest Python on the LTS, newest
#: Python on the newest Django, each on SQLite and PostgreSQL, plus the MySQL-family
#: upsert path on MariaDB.
CI_CELLS = {
    ("3.10", "5.2", "sqlite"),
    ("3.10", "5.2", "postgresql"),
    ("3.13", "5.2", "sqlite"),
    ("3.13", "5.2", "postgresql"),
    ("3.13", "6.1", "sqlite"),
    ("3.13", "6.1", "postgresql"),
    ("3.13", "6.1", "mariadb"),
}

POSTGRES_URL = os.environ.get("NOX_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
MARIADB_URL = os.environ.get("NOX_MARIADB_URL", "mysql://root@127.0.0.1:3306")

PYPROJECT = nox.project.load_toml("pyproject.toml")
#: The repository's dependency groups (pyproject.toml): the suite's, and every tool's.
SUITE = nox.project.dependency_groups(PYPROJECT, "suite")
DEV = nox.project.dependency_groups(PYPROJECT, "dev")

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
# A bare `nox` runs what CI runs, not all the cells.
nox.options.tags = ["ci"]


def _add_pyenv_interpreters_to_path() -> None:
    """Put the newest pyenv build of each supported minor version on PATH, for nox to find."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found: list[str] = []
    for minor in PYTHONS:
        # Highest patch release first; "3.1" must not match "3.10".
        candidates = sorted(
            root.glob(f"{minor}.*/bin"),
            key=lambda p: tuple(int(x) for x in p.parent.name.split(".") if x.isdigit()),
        )
        if candidates:
            found.append(str(candidates[-1]))
    os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_add_pyenv_interpreters_to_path()


def django_supports(python: str, django: str) -> bool:
    """Django 6.x requires Python 3.12 or newer; 5.2 supports 3.10-3.13."""
    return not (django.startswith("6.") and python in ("3.10", "3.11"))


def _cells() -> list[nox.param]:
    return [
        nox.param(
            python,
            django,
            db,
            id=f"python='{python}', django='{django}', db='{db}'",
            tags=["ci"] if (python, django, db) in CI_CELLS else [],
        )
        for python in PYTHONS
        for django in DJANGOS
        for db in DATABASES
        if django_supports(python, django)
    ]


def database_url(db: str, python: str, django: str) -> str | None:
    """The cell's own database, so that parallel cells never share one."""
    name = f"verilock_nox_py{python.replace('.', '')}_dj{django.replace('.', '')}"
    if db == "postgresql":
        return f"{POSTGRES_URL}/{name}"
    if db == "mariadb":
        return f"{MARIADB_URL}/{name}"
    return None


@nox.session
@nox.parametrize(("python", "django", "db"), _cells())
def tests(session: nox.Session, django: str, db: str) -> None:
    """Run the suite on one Python x Django x database cell."""
    packages = [".", *SUITE, f"django~={django}.0"]
    if db == "mariadb":
        # mysqlclient compiles against libmariadb-dev and finds it with pkg-config.
        packages.append(".[mariadb]")
    session.install(*packages)
    env = {
        # The wheel build and install test runs once, in the `package` session.
        "VERILOCK_SKIP_PACKAGING_TEST": "1",
    }
    url = database_url(db, str(session.python), django)
    if url:
        env["DATABASE_URL"] = url
    session.run("python", "-m", "django", "--version")
    # Exit status 5: a -k/posargs filter selected no test in this cell, not a failure.
    session.run("python", "-m", "pytest", *session.posargs, env=env, success_codes=[0, 5])


@nox.session(python=NEWEST_PYTHON, tags=["checks"])
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.12", tags=["checks"])
def typecheck(session: nox.Session) -> None:
    """mypy --strict with django-stubs over the package and the tests."""
    session.install("-e", ".", *DEV)
    session.run("mypy", *session.posargs)


@nox.session(python="3.12", tags=["checks"])
def coverage(session: nox.Session) -> None:
    """Branch coverage of the suite on SQLite and PostgreSQL together; fails under 95 %."""
    session.install("-e", ".", *DEV)
    session.run("coverage", "erase")
    env = {"VERILOCK_SKIP_PACKAGING_TEST": "1"}
    session.run("coverage", "run", "--parallel-mode", "-m", "pytest", "-q", env=env)
    pg = {**env, "DATABASE_URL": f"{POSTGRES_URL}/verilock_nox_coverage"}
    session.run("coverage", "run", "--parallel-mode", "-m", "pytest", "-q", env=pg)
    session.run("coverage", "combine")
    session.run("coverage", "report")


@nox.session(python="3.12", tags=["checks"])
def package(session: nox.Session) -> None:
    """Build wheel and sdist, twine check them, then install the wheel in a fresh venv."""
    session.install("-e", ".", *DEV)
    dist = Path(session.create_tmp()) / "dist"
    session.run("python", "-m", "build", "--outdir", str(dist))
    session.run("python", "-m", "twine", "check", "--strict", *map(str, dist.iterdir()))
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/test_packaging.py",
        "-p",
        "no:cacheprovider",
        env={"VERILOCK_DIST_DIR": str(dist)},
    )
