"""The README's "Verify your users" example, copied verbatim from the README and run.

The code blocks come out of README.md at test time (each follows a
``<!-- readme-example: NAME -->`` marker), so the README cannot drift from what works.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.testing.webhooks import signed_webhook

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = re.compile(r"<!-- readme-example: (?P<name>\w+) -->\n```python\n(?P<code>.*?)\n```", re.S)


def readme_examples() -> dict[str, str]:
    """Each marked code block of the README, by marker name."""
    found = {m["name"]: m["code"] for m in MARKER.finditer(README.read_text(encoding="utf-8"))}
    assert set(found) == {"settings", "urls", "views"}, "the README's example blocks moved"
    return found


def test_the_examples_are_under_the_verify_your_users_heading() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Verify your users\n", 1)[1].split("\n## ", 1)[0]
    assert section.count("<!-- readme-example:") == 3


@pytest.fixture
def readme_project(
    verilock_api: InProcessVerilock, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The README's settings applied, its views module importable, its urls as the URLconf."""
    examples = readme_examples()
    environment = {
        "VERILOCK_API_KEY": settings.VERILOCK_API_KEY,  # what the fake accepts
        "VERILOCK_PROFILE_ID": "7d0a5f3e-2c4b-4f6a-8e9d-1b2c3d4e5f60",
        "VERILOCK_WEBHOOK_SECRET": "whsec_readme",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    configured: dict[str, Any] = {}
    exec(examples["settings"], configured)  # noqa: S102 - our own README
    package = types.ModuleType("payments")
    views = types.ModuleType("payments.views")
    exec(examples["views"], views.__dict__)  # noqa: S102
    package.views = views  # type: ignore[attr-defined]
    urls = types.ModuleType("readme_urls")
    saved = {name: sys.modules.get(name) for name in ("payments", "payments.views", "readme_urls")}
    sys.modules.update({"payments": package, "payments.views": views})
    exec(examples["urls"], urls.__dict__)  # noqa: S102
    sys.modules["readme_urls"] = urls
    overrides = {name: value for name, value in configured.items() if name.isupper()}
    try:
        with override_settings(
            ROOT_URLCONF="readme_urls", VERILOCK_WEBHOOK_PROCESSOR="sync", **overrides
        ):
            yield environment
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@pytest.mark.django_db
def test_the_readme_example_verifies_a_user_end_to_end(
    readme_project: dict[str, str],
    verilock_api: InProcessVerilock,
    django_capture_on_commit_callbacks: Any,
) -> None:
    user = get_user_model().objects.create_user("ana")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)

    response = browser.get("/payouts/")
    assert (response.status_code, response["Location"]) == (302, "/verify/?next=%2Fpayouts%2F")
    page = browser.get(response["Location"])
    form = {"csrfmiddlewaretoken": str(page.context["csrf_token"]), "next": "/payouts/"}
    to_verilock = browser.post("/verify/", form)
    (remote,) = verilock_api.sessions
    assert to_verilock["Location"].startswith("https://verilock.io/verify/")

    verilock_api.complete(remote.id, "approved")
    body, headers = signed_webhook(
        verilock_api.webhook_events[-1], readme_project["VERILOCK_WEBHOOK_SECRET"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        delivered = Client().post(
            "/verilock/webhook/", body, content_type="application/json", headers=headers
        )
    assert delivered.status_code == 200

    response = browser.get("/payouts/")
    assert (response.status_code, response.content) == (200, b"Only verified users get here.")
    assert b'<a href="/payouts/">Continue</a>' in browser.get("/verify/status/").content
