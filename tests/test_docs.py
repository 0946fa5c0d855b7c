"""The README and the guides say what the code does: snippets run as shown, figures match."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from django.test import override_settings
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util.retry import Retry

from verilock_django.client import VerilockClient

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
LINK = re.compile(r"\]\(([^)#:]+)(#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_snippets_define_what_they_use(page: Path) -> None:
    for block in PYTHON_BLOCK.findall(page.read_text()):
        # django-environ's ``env`` must be introduced where it is used.
        if re.search(r"(?<![\w.])env\(", block):
            assert re.search(r"^\s*env = ", block, re.M), block


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_at_files_in_the_repository(page: Path) -> None:
    for target, _anchor in LINK.findall(page.read_text()):
        assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_no_install_line_names_an_unpublished_package_without_saying_so() -> None:
    readme = (ROOT / "README.md").read_text()
    install = readme.split("## Install", 1)[1].split("## Settings", 1)[0]
    assert "not on PyPI yet" in install
    assert "pip install verilock-django` will do" in install  # after the first release


def backoff_waits(jitter_draw: float, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's waits before retries 1..3 with the default settings, jitter fixed."""
    monkeypatch.setattr(random, "random", lambda: jitter_draw)  # urllib3's jitter draw
    with override_settings(VERILOCK_MAX_RETRIES=3, VERILOCK_RETRY_BACKOFF=1.0):
        adapter = VerilockClient()._http().get_adapter("https://verilock.test/")
    assert isinstance(adapter, HTTPAdapter)
    retry = adapter.max_retries
    assert isinstance(retry, Retry)
    waits = []
    for _ in range(3):
        retry = retry.increment(method="GET", url="/sessions", error=ConnectTimeoutError())
        waits.append(retry.get_backoff_time())
    return waits


def test_the_readme_backoff_figures_are_what_the_client_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    least = backoff_waits(0.0, monkeypatch)
    most = backoff_waits(0.999999, monkeypatch)
    assert least == [0.0, 2.0, 4.0]
    assert [round(w, 2) for w in most] == [0.0, 2.5, 4.5]
    readme = (ROOT / "README.md").read_text()
    assert "with the defaults the waits are 0, 2 to 2.5 and 4 to 4.5 s" in readme


def test_documented_imports_work() -> None:
    statements = {
        line.strip().strip("`")
        for page in PAGES
        for line in re.findall(r"from verilock_django[\w.]* import [\w, ]+", page.read_text())
    }
    assert "from verilock_django.testing import FakeVerilock, FakeVerilockServer" in statements
    for statement in statements:
        exec(compile(statement, "<docs>", "exec"), {})  # noqa: S102 - our own docs


APP_COMMANDS = [
    "sync_verilock_sessions",
    "process_verilock_webhooks",
    "send_verilock_test_webhook",
    "apply_verilock_retention",
    "erase_verilock_applicant",
    "encrypt_verilock_data",
]
#: Options every Django command has; the synopses leave them out (``-v 2`` aside).
DJANGO_OPTIONS = {
    "--help",
    "--version",
    "--verbosity",
    "--settings",
    "--pythonpath",
    "--traceback",
    "--no-color",
    "--force-color",
    "--skip-checks",
}


def readme_synopsis_options(command: str) -> set[str]:
    """The ``--options`` the README's synopsis lines (code blocks starting ``manage.py
    <command>``, with their indented continuation lines) give ``command``."""
    options: set[str] = set()
    in_code = False
    current = None
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            in_code, current = not in_code, None
        elif in_code and line.startswith("manage.py "):
            current = line.split()[1]
        elif not line.startswith(" "):
            current = None
        if current == command:
            options |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))
    return options


@pytest.mark.parametrize("command", APP_COMMANDS)
def test_the_readme_synopsis_of_a_command_lists_exactly_its_options(command: str) -> None:
    from django.core.management import load_command_class

    parser = load_command_class("verilock_django", command).create_parser("manage.py", command)
    real = {o for action in parser._actions for o in action.option_strings if o.startswith("--")}
    documented = readme_synopsis_options(command)
    assert documented, command
    assert documented - real == set(), f"{command}: documented but not accepted"
    assert real - DJANGO_OPTIONS - documented == set(), f"{command}: accepted but not documented"
