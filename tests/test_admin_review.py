"""The session page for deciding: summary card and steps first, history, both shapes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from verilock_django.history import recorded_as
from verilock_django.models import Session, SessionChange, StepResult
from verilock_django.statuses import StepOutcome
from verilock_django.store import store_session
from verilock_django.testing.factories import Shape, session_payload

pytestmark = pytest.mark.django_db


def change_url(session_id: str) -> str:
    return reverse("admin:verilock_django_session_change", args=(quote(session_id),))


@pytest.mark.parametrize(
    ("shape", "reason"),
    [("a", "failed: face_match"), ("b", "face_mismatch")],
)
def test_a_declined_session_shows_its_failed_step_and_reason_in_the_card(
    admin_client: Client, shape: Shape, reason: str
) -> None:
    payload = session_payload(
        shape, id="ses_declined", status="declined", declined_step="face_match"
    )
    store_session(payload)

    response = admin_client.get(change_url("ses_declined"))

    content = response.content.decode()
    card = response.context["verilock_card"]
    assert card["reason"] == reason
    failed = [step["step"] for step in card["steps"] if step["failed"]]
    assert failed == ["face_match"]
    assert 'class="verilock-failed" data-step="face_match"' in content
    assert "31 %" in content  # 0.31 on its 0-1 scale
    # First screen: the card (reason, steps) comes before every fieldset.
    assert content.index(reason) < content.index("Change history")


def test_card_links_the_hosted_page_and_shows_risk_with_its_scale(admin_client: Client) -> None:
    store_session(session_payload("b", id="ses_b", status="declined"))
    # Only a session the app created keeps its hosted link, and only while it is open; the
    # card shows whatever link is stored.
    Session.objects.filter(pk="ses_b").update(hosted_url="https://verilock.io/verify/tok_1")

    content = admin_client.get(change_url("ses_b")).content.decode()

    assert '<a href="https://verilock.io/verify/tok_1" rel="noopener noreferrer"' in content
    assert "81 / 100 (critical)" in content


def test_details_are_a_key_value_list_with_aml_matches(admin_client: Client) -> None:
    store_session(session_payload("b", id="ses_aml", status="declined", declined_step="aml"))

    content = admin_client.get(change_url("ses_aml")).content.decode()

    # (PostgreSQL's jsonb orders an object's keys its own way.)
    assert "<dt>matches 1</dt><dd>" in content
    assert "matched name: Sanctioned Person" in content
    assert "<dt>matches found</dt><dd>1</dd>" in content


def test_store_records_each_change_with_its_trigger(seed: dict[str, Any]) -> None:
    before = copy.deepcopy(seed)
    before.update(status="processing")
    before["results"]["face_match"]["status"] = "pending"
    store_session(before, trigger="command")
    changed = copy.deepcopy(seed)
    changed.update(status="declined")
    changed["results"]["face_match"]["status"] = "declined"
    changed["applicant"]["email"] = "new@example.com"

    with recorded_as("admin:alice"):
        store_session(changed)

    latest = {
        c.field: (c.old_value, c.new_value, c.trigger)
        for c in SessionChange.objects.filter(trigger="admin:alice")
    }
    assert latest == {
        "status": ("processing", "declined", "admin:alice"),
        "decision": ("", "declined", "admin:alice"),
        "step:face_match": (StepOutcome.PENDING, StepOutcome.FAILED, "admin:alice"),
        "applicant_email": ("", "", "admin:alice"),  # which field, never the values
    }
    created = set(SessionChange.objects.filter(trigger="command").values_list("field", flat=True))
    assert {"status", "step:face_match", "applicant_email"} <= created
    assert StepResult.objects.get(step="face_match").outcome == StepOutcome.FAILED


def test_an_unchanged_store_writes_no_history(seed: dict[str, Any]) -> None:
    store_session(seed)
    count = SessionChange.objects.count()

    store_session(copy.deepcopy(seed))

    assert SessionChange.objects.count() == count


def test_a_new_decision_rewrites_step_outcomes_even_when_steps_are_the_same() -> None:
    review = session_payload("b", id="ses_r", status="declined", declined_step="aml")
    review.update(status="processing", decision="review", decline_reason=None)
    store_session(review)
    assert StepResult.objects.get(step="aml").outcome == StepOutcome.NEEDS_REVIEW

    store_session(session_payload("b", id="ses_r", status="declined", declined_step="aml"))

    assert StepResult.objects.get(step="aml").outcome == StepOutcome.FAILED


def test_history_on_the_page_and_in_djangos_history_view(
    admin_client: Client, seed: dict[str, Any]
) -> None:
    processing = copy.deepcopy(seed)
    processing["status"] = "processing"
    store_session(processing)
    store_session(seed, trigger="webhook:wh_42")
    history_url = reverse("admin:verilock_django_session_history", args=(quote(seed["id"]),))

    page = admin_client.get(change_url(seed["id"])).content.decode()
    history = admin_client.get(history_url).content.decode()

    for content in (page, history):
        assert "webhook:wh_42" in content
        assert "<td>processing</td><td>approved</td>" in content
    assert "Changes stored from Verilock" in history


def test_change_page_queries_do_not_grow_with_steps_events_or_history(
    admin_client: Client, seed: dict[str, Any]
) -> None:
    store_session(seed)
    admin_client.get(change_url(seed["id"]))  # warm caches

    with CaptureQueriesContext(connection) as small:
        admin_client.get(change_url(seed["id"]))
    changed = copy.deepcopy(seed)
    for number in range(100):
        changed["results"][f"extra_{number}"] = {"status": "approved", "score": 0.5}
        changed["status"] = "review" if number % 2 else "approved"
        store_session(changed)
    with CaptureQueriesContext(connection) as large:
        response = admin_client.get(change_url(seed["id"]))

    assert len(response.context["verilock_card"]["steps"]) > 100
    assert len(large) == len(small), [q["sql"] for q in large.captured_queries]


def test_a_long_trigger_is_cut_to_the_column(seed: dict[str, Any]) -> None:
    store_session(seed, trigger="command:sync_verilock_sessions " + "ses_x " * 100)

    triggers = set(SessionChange.objects.values_list("trigger", flat=True))

    assert len(triggers) == 1
    assert len(triggers.pop()) == 255
