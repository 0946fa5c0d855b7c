# Django 6.x needs Python >= 3.12: prefer a pyenv-installed 3.12, then whatever python3.12 is on PATH.
PYTHON ?= $(shell ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12.*/bin/python 2>/dev/null | tail -n 1 | grep . || command -v python3.12 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint install clean demo demo-admin

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build dist *.egg-info

# The demo needs no network once the virtualenv exists: install only when it cannot import.
DEMO_READY = $(BIN)/python -c "import django, environ, requests, verilock_django" 2>/dev/null || $(MAKE) install

demo: $(BIN)/python
	@$(DEMO_READY)
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

demo-admin: $(BIN)/python
	@$(DEMO_READY)
	$(BIN)/python scripts/demo.py --admin $(DEMO_ARGS)
