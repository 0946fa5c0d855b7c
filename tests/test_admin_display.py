"""The admin's shared display helpers: badges, JSON blocks, permissions and admin links."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import RequestFactory
from django.urls import reverse

from verilock_django.admin import display
from verilock_django.models import Session, StepResult, WebhookEvent


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("approved", '<span class="verilock-badge verilock-ok">Approved</span>'),
        ("review", '<span class="verilock-badge verilock-warn">In review</span>'),
        ("not_started", '<span class="verilock-badge verilock-pending">Not started</span>'),
        ("processed", '<span class="verilock-badge verilock-ok">Processed</span>'),
        ("failed", '<span class="verilock-badge verilock-bad">Failed</span>'),
        ("ignored", '<span class="verilock-badge verilock-muted">Ignored</span>'),
        ("manual_check", '<span class="verilock-badge verilock-other">manual_check</span>'),
    ],
)
def test_status_badge_follows_the_status_vocabulary(status: str, expected: str) -> None:
    assert display.status_badge(status) == expected


def test_badges_escape_their_text_and_title() -> None:
    assert display.status_badge("<b>x</b>") == (
        '<span class="verilock-badge verilock-other">&lt;b&gt;x&lt;/b&gt;</span>'
    )
    assert display.status_badge("", "not fetched yet") == (
        '<span class="verilock-badge verilock-other">not fetched yet</span>'
    )
    assert display.badge("bad", "⚠ failed", title='"><script>') == (
        '<span class="verilock-badge verilock-bad" title="&quot;&gt;&lt;script&gt;">'
        "⚠ failed</span>"
    )


def test_json_block_is_indented_and_escaped() -> None:
    html = display.json_block({"note": "<i>é</i>"})

    assert html.startswith('<pre class="verilock-json">{\n  &quot;note&quot;: ')
    assert "&lt;i&gt;é&lt;/i&gt;" in html  # escaped, not \\u-encoded
    assert "<i>" not in html
    assert html.endswith("}</pre>")


@pytest.mark.django_db
def test_has_model_permission_checks_the_named_action_on_the_model() -> None:
    user = User.objects.create_user("viewer", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="verilock_django",
            codename__in=("view_session", "change_webhookevent"),
        )
    )
    request = RequestFactory().get("/")
    request.user = User.objects.get(pk=user.pk)  # fresh permission cache

    assert display.has_model_permission(request, "view", Session)
    assert not display.has_model_permission(request, "change", Session)
    assert display.has_model_permission(request, "change", WebhookEvent)
    assert not display.has_model_permission(request, "view", WebhookEvent)


def test_change_url_points_to_the_admin_page_or_is_none_without_one() -> None:
    url = display.change_url(Session, "ses_a/b", admin_site="admin")

    assert url == reverse("admin:verilock_django_session_change", args=("ses_5Fa_2Fb",))
    assert display.change_url(StepResult, 1, admin_site="admin") is None  # no admin of its own


def make_sessions(count: int, **fields: str) -> None:
    Session.objects.bulk_create(Session(id=f"ses_{n:04d}", **fields) for n in range(count))


@pytest.mark.django_db
def test_paginator_counts_a_filtered_list_only_up_to_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(display.EstimatedCountPaginator, "count_limit", 5)
    make_sessions(8, status="declined")

    broad = display.EstimatedCountPaginator(Session.objects.filter(status="declined"), 2)
    narrow = display.EstimatedCountPaginator(Session.objects.filter(pk="ses_0001"), 2)

    assert (broad.count, broad.approximate) == (5, "more")
    assert (narrow.count, narrow.approximate) == (1, "")


@pytest.mark.django_db
def test_paginator_counts_an_unfiltered_small_table_exactly() -> None:
    make_sessions(3)

    paginator = display.EstimatedCountPaginator(Session.objects.all(), 2)

    assert (paginator.count, paginator.approximate) == (3, "")


@pytest.mark.django_db(transaction=True)  # ANALYZE sees committed rows only
def test_paginator_estimates_a_big_unfiltered_table_on_postgresql(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the estimate comes from pg_class.reltuples")
    monkeypatch.setattr(display.EstimatedCountPaginator, "estimate_above", 0)
    make_sessions(40)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE verilock_django_session")

    paginator = display.EstimatedCountPaginator(Session.objects.all(), 2)

    assert paginator.count == 40  # ANALYZE of a small table counts every row
    assert paginator.approximate == "about"


@pytest.mark.django_db
def test_changelist_says_when_its_count_is_a_lower_bound(
    admin_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(display.EstimatedCountPaginator, "count_limit", 5)
    make_sessions(8, status="declined")

    content = admin_client.get(
        reverse("admin:verilock_django_session_changelist"), {"status": "declined"}
    ).content.decode()

    assert "5+ results" in content
    assert "5+ Verilock sessions" in content


def test_step_letters_for_odd_step_names() -> None:
    from verilock_django.admin.display import step_letter

    assert step_letter("face_match") == "F"
    assert step_letter("proof_of_address") == "PO"
    assert step_letter("") == "?"
    assert step_letter("___") == "?"
