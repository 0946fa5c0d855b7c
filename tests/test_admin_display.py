"""The admin's shared display helpers: badges, JSON blocks, permissions and admin links."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
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
