"""The review desk in a real browser: Playwright driving the system's headless Chromium.

The example project is served by ``runserver`` on a loopback port against the fake Verilock
API (also on loopback), with sessions of both payload shapes mirrored by the sync command.
Skipped, saying why, when Playwright or ``/usr/bin/chromium`` is missing (Debian:
``apt-get install chromium``; never ``playwright install``). Saves the README's screenshots
into ``docs/screenshots/``.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.utils import quote

from verilock_django.masking import mask_email, mask_name
from verilock_django.testing.server import FakeVerilockServer

from .example_site import manage, project_env, runserver

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
KEY = "qi_test_browser"
WIDTH, HEIGHT = 1366, 900

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (the suite dependency group)"
)
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
    reason=f"{CHROMIUM} is missing: install Debian's chromium package to run the browser test",
)

SETUP_USERS = """
from django.contrib.auth.models import Permission, User
User.objects.create_superuser("admin", "admin@example.com", "pw")
reviewer = User.objects.create_user("reviewer", password="pw", is_staff=True)
reviewer.user_permissions.set(Permission.objects.filter(codename="view_session"))
"""


@pytest.fixture
def fake() -> Iterator[FakeVerilockServer]:
    with FakeVerilockServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def site(tmp_path: Path, fake: FakeVerilockServer) -> Iterator[dict[str, Any]]:
    """The example project with mirrored sessions, served on a loopback port."""
    env = project_env(
        f"sqlite:///{tmp_path / 'db.sqlite3'}", fake.url, KEY, ALLOWED_HOSTS="127.0.0.1"
    )
    state = fake.state
    now = dt.datetime.now(dt.timezone.utc)
    ids = {
        "gen_a_declined": state.add_session(
            status="declined", shape="a", declined_step="face_match", reference_id="ref_a_declined"
        ).id,
        "gen_b_declined": state.add_session(
            status="declined", shape="b", declined_step="aml", reference_id="ref_b_declined"
        ).id,
        "pending": state.add_session(
            status="processing", shape="a", outcome="approved", reference_id="ref_pending"
        ).id,
    }
    for number in range(24):
        status = ("approved", "approved", "declined", "approved", "expired", "processing")[
            number % 6
        ]
        state.add_session(
            status=status,
            shape="ab"[number % 2],  # type: ignore[arg-type]
            reference_id=f"usr_{number:05d}",
            declined_step=("liveness", "face_match", "document")[number % 3],
            created_at=now - dt.timedelta(days=number, hours=2),
        )
    for command in (
        ("migrate", "-v", "0"),
        ("sync_verilock_sessions", *(s.id for s in state.sessions)),
        ("shell", "-c", SETUP_USERS),
    ):
        done = manage(env, *command)
        assert done.returncode == 0, done.stderr
    # --insecure: serve the admin's static files although DEBUG is off.
    with runserver(env, tmp_path / "runserver.log", "--insecure") as port:
        yield {"url": f"http://127.0.0.1:{port}", "ids": ids, "fake": fake}


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
            ],
        )
        try:
            yield instance
        finally:
            instance.close()


def log_in(browser: Any, base: str, username: str) -> Any:
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    return page


def shown_references(page: Any) -> set[str]:
    return set(page.locator("#result_list td.field-reference_id").all_inner_texts())


def on_first_screen(page: Any, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["y"] + box["height"] <= HEIGHT


def test_review_desk_in_a_browser(browser: Any, site: dict[str, Any]) -> None:
    base, ids = site["url"], site["ids"]
    sessions = f"{base}/admin/verilock_django/session/"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = log_in(browser, base, "admin")

    # The list: every column fits a 1,366 px screen.
    page.goto(sessions)
    assert page.locator("#result_list tbody tr").count() == 27
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    results = page.locator("#changelist .results")
    assert results.evaluate("e => e.scrollWidth <= e.clientWidth"), "the list scrolls sideways"
    page.screenshot(path=str(SCREENSHOTS / "changelist.png"))

    # Filter by status, then by failed step, by clicking the filters.
    with page.expect_navigation():
        page.locator(
            "#changelist-filter details[data-filter-title='status'] a", has_text="Declined"
        ).click()
    declined = shown_references(page)
    assert {"ref_a_declined", "ref_b_declined"} <= declined
    page.goto(sessions)
    with page.expect_navigation():
        page.locator(
            "#changelist-filter details[data-filter-title='failed step'] a", has_text="aml"
        ).click()
    assert shown_references(page) == {"ref_b_declined"}

    # Search by reference.
    page.goto(sessions)
    page.fill("#searchbar", "ref_pending")
    with page.expect_navigation():
        page.press("#searchbar", "Enter")
    assert shown_references(page) == {"ref_pending"}

    # A declined session of each shape: failed step and reason on the first screen.
    for key, reason, step in (
        ("gen_a_declined", "failed: face_match", "face_match"),
        ("gen_b_declined", "aml_match", "aml"),
    ):
        page.goto(f"{sessions}{quote(ids[key])}/change/")
        assert reason in page.inner_text("[data-testid=decline-reason]")
        assert on_first_screen(page, "[data-testid=decline-reason]")
        failed = page.locator(f"tr.verilock-failed[data-step='{step}']")
        assert "Failed" in failed.inner_text()
        assert on_first_screen(page, f"tr.verilock-failed[data-step='{step}']")
        if key == "gen_b_declined":
            page.screenshot(path=str(SCREENSHOTS / "declined.png"))

    # "Refresh from Verilock" against the fake: the new status and a history row.
    site["fake"].state.complete(ids["pending"], "approved")
    page.goto(f"{sessions}{quote(ids['pending'])}/change/")
    assert "Processing" in page.inner_text(".verilock-card-outcome")
    with page.expect_navigation():
        page.click("text=Refresh from Verilock")
    page.wait_for_selector(".messagelist")
    assert "Refreshed 1 session" in page.inner_text(".messagelist")
    assert "Approved" in page.inner_text(".verilock-card-outcome")
    history = page.inner_text(".verilock-history")
    assert "admin:admin" in history and "processing" in history and "approved" in history

    # The overview renders its chart.
    page.goto(f"{sessions}overview/")
    assert page.locator("svg.verilock-chart rect.verilock-seg").count() > 10
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)
    page.close()

    # A reviewer without the personal-data permission sees masked values only.
    reviewer = log_in(browser, base, "reviewer")
    reviewer.goto(sessions)
    listing = reviewer.inner_text("#result_list")
    reviewer.goto(f"{sessions}{quote(ids['gen_a_declined'])}/change/")
    content = reviewer.content()
    applicant = site["fake"].state.get(ids["gen_a_declined"]).payload()["applicant"]
    name = f"{applicant['first_name']} {applicant['last_name']}"
    for value in (name, applicant["email"]):
        assert value not in listing
        assert value not in content
    assert mask_name(name) in listing
    assert mask_email(applicant["email"]) in content
    raw_json = reviewer.locator("pre.verilock-json").text_content()
    assert f'"email": "{mask_email(applicant["email"])}"' in raw_json
    assert applicant["email"] not in raw_json
    reviewer.close()
