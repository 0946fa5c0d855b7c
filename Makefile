# Django 6.x needs Python >= 3.12: prefer a pyenv-installed 3.12, then whatever python3.12 is on PATH.
PYTHON ?= $(shell ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12.*/bin/python 2>/dev/null | tail -n 1 | grep . || command -v python3.12 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint install clean demo demo-admin typecheck coverage coverage-report build matrix matrix-ci

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs only when the environment is new or pyproject.toml changed since the last install,
# so a second `make test` needs no network and starts at once. (`--group` needs pip 25.1.)
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet 'pip>=25.1'
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $@

install: $(VENV)/.installed

# `make test COVERAGE=1` runs the suite under branch coverage (data files merged by
# `make coverage-report`). Exit status 5 (no test selected, e.g. by a -k filter) is not a failure.
PYTEST = $(BIN)/python -m $(if $(COVERAGE),coverage run --parallel-mode -m )pytest
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/verilock

test: install
	$(PYTEST) $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# Branch coverage of the suite on SQLite and PostgreSQL together; fails under 95 %.
coverage: install
	$(BIN)/coverage erase
	VERILOCK_SKIP_PACKAGING_TEST=1 $(MAKE) test COVERAGE=1
	VERILOCK_SKIP_PACKAGING_TEST=1 DATABASE_URL=$(POSTGRES_URL) $(MAKE) test COVERAGE=1
	$(MAKE) coverage-report

coverage-report: install
	$(BIN)/coverage combine
	$(BIN)/coverage report

# Wheel + sdist in dist/, checked by twine.
build: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist
	$(BIN)/twine check --strict dist/*

# Every Python x Django x database cell (`make matrix-ci`: the subset CI runs).
matrix: install
	$(BIN)/nox -s tests $(NOX_ARGS)

matrix-ci: install
	$(BIN)/nox -t ci $(NOX_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .nox .coverage .coverage.*

# The demo runs the app from this checkout (example_project/manage.py puts it on sys.path), so
# on a fresh clone it installs only the app's dependencies and the `demo` group
# (django-environ), read from pyproject.toml, without byte-compiling them ahead: no dev
# toolchain, no pip upgrade, no build. Once they import, it installs nothing (no network).
DEMO_REQUIREMENTS = $(BIN)/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); print(*p["project"]["dependencies"], *p["dependency-groups"]["demo"])'
DEMO_READY = $(BIN)/python -c "import django, environ, requests" 2>/dev/null \
	|| $(BIN)/python -m pip install --quiet --no-compile $$($(DEMO_REQUIREMENTS))

demo: $(BIN)/python
	@$(DEMO_READY)
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

demo-admin: $(BIN)/python
	@$(DEMO_READY)
	$(BIN)/python scripts/demo.py --admin $(DEMO_ARGS)
