"""The overview page: 30 days per day, rankings, median, sync health; constant queries."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from verilock_django.models import Session
from verilock_django.store import store_session
from verilock_django.testing.factories import Shape, format_timestamp, session_payload

pytestmark = pytest.mark.django_db
OVERVIEW = reverse("admin:verilock_django_session_overview")


def add(
    number: int, status: str, *, days_ago: int, shape: Shape = "b", step: str = "face_match"
) -> None:
    # Within the calendar day `days_ago` days back, whatever the time of day the test runs
    # (an hour back from just after midnight would land on the day before).
    now = timezone.now()
    since_midnight = now - timezone.localtime(now).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    created = now - dt.timedelta(days=days_ago) - min(dt.timedelta(hours=1), since_midnight / 2)
    store_session(
        session_payload(
            shape,
            id=f"ses_{number:04d}",
            status=status,
            declined_step=step if status == "declined" else None,
            created_at=format_timestamp(created),
            completed_at=format_timestamp(created + dt.timedelta(minutes=10 + number))
            if status in ("approved", "declined")
            else None,
        )
    )


def test_overview_counts_ranks_and_links(admin_client: Client) -> None:
    add(1, "approved", days_ago=0)
    add(2, "declined", days_ago=0)
    add(3, "declined", days_ago=2, step="liveness")
    add(4, "declined", days_ago=3)
    add(5, "processing", days_ago=1)
    add(6, "approved", days_ago=40)  # outside the window
    Session.objects.filter(pk="ses_0005").update(last_sync_error="boom (HTTP 503)")

    response = admin_client.get(OVERVIEW)

    assert response.status_code == 200
    context = response.context
    assert context["totals"] == {"started": 5, "approved": 1, "declined": 3, "expired": 0}
    assert [(r["decline_reason"], r["count"]) for r in context["reasons"]] == [
        ("face_mismatch", 2),
        ("liveness_failed", 1),
    ]
    assert [(r["step"], r["count"]) for r in context["failed_steps"]] == [
        ("face_match", 2),
        ("liveness", 1),
    ]
    assert context["median_to_completion"] == "13 min"
    assert context["health"]["failing"] == 1
    assert context["health"]["unfinished"] == 1
    content = response.content.decode()
    assert "<svg" in content and 'class="verilock-seg verilock-seg-declined"' in content
    assert "?failed_step=face_match" in content


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[str]:
    """A USE_TZ = False project in Europe/Paris, whose process clock is in that zone too
    (Django sets TZ from TIME_ZONE at start-up)."""
    zone = "Europe/Paris"
    settings.USE_TZ, settings.TIME_ZONE = False, zone
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    yield zone
    monkeypatch.undo()
    time.tzset()


def test_overview_in_a_project_without_use_tz(admin_client: Client, local_zone: str) -> None:
    # Without USE_TZ, Django's now is naive: timezone.localtime() refused it (a 500).
    now = dt.datetime.now(dt.timezone.utc)
    local = dt.datetime.now()
    since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
    for number, days_ago in ((1, 0), (2, 1)):
        created = (
            now - dt.timedelta(days=days_ago) - min(dt.timedelta(hours=1), since_midnight / 2)
        )
        store_session(
            session_payload(
                id=f"ses_{number}", status="approved", created_at=format_timestamp(created)
            )
        )

    response = admin_client.get(OVERVIEW)

    assert response.status_code == 200
    assert response.context["totals"]["started"] == 2
    today = response.context["days"][-1]
    assert today["day"] == local.date() and today["approved"] == 1
    assert admin_client.get(today["url"]).context["cl"].result_count == 1


def test_drill_down_links_filter_the_list(admin_client: Client) -> None:
    add(1, "declined", days_ago=0)
    add(2, "approved", days_ago=0)
    changelist = reverse("admin:verilock_django_session_changelist")
    context = admin_client.get(OVERVIEW).context

    by_reason = admin_client.get(context["reasons"][0]["url"])
    by_day = admin_client.get(context["days"][-1]["url"])

    assert context["reasons"][0]["url"].startswith(changelist)
    assert [s.pk for s in by_reason.context["cl"].result_list] == ["ses_0001"]
    assert {s.pk for s in by_day.context["cl"].result_list} == {"ses_0001", "ses_0002"}


def test_overview_is_linked_from_the_app_index_and_the_list(admin_client: Client) -> None:
    app_index = admin_client.get(reverse("admin:app_list", args=("verilock_django",)))
    listing = admin_client.get(reverse("admin:verilock_django_session_changelist"))

    assert OVERVIEW in app_index.content.decode()
    assert OVERVIEW in listing.content.decode()


def test_overview_needs_the_view_permission(client: Client) -> None:
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)

    assert client.get(OVERVIEW).status_code == 403


def test_overview_queries_do_not_grow_with_sessions(admin_client: Client) -> None:
    add(0, "declined", days_ago=0)
    admin_client.get(OVERVIEW)  # warm caches
    with CaptureQueriesContext(connection) as one:
        admin_client.get(OVERVIEW)
    for number in range(1, 100):
        add(number, ("approved", "declined", "processing")[number % 3], days_ago=number % 30)
    with CaptureQueriesContext(connection) as hundred:
        response = admin_client.get(OVERVIEW)

    assert response.context["totals"]["started"] == 100
    assert len(hundred) == len(one), [q["sql"] for q in hundred.captured_queries]
