"""Minimise at ingest, erasure on request with tombstones, and webhook freshness."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from io import StringIO
from typing import Any, Literal

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from verilock_django import processing
from verilock_django.checks import check_privacy_settings
from verilock_django.exceptions import (
    ErasedSessionError,
    ErasureRefused,
    VerilockConfigurationError,
)
from verilock_django.models import Session, StepResult, Tombstone, WebhookEvent
from verilock_django.privacy import (
    erase_applicant,
    erase_sessions,
    is_erased,
    lift_tombstone,
    minimise_payload,
    minimise_webhook_body,
    session_hash,
)
from verilock_django.signals import applicant_erased, erasure_requested
from verilock_django.store import Outcome, store_session
from verilock_django.sync import sync_session
from verilock_django.testing.factories import session_payload
from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.testing.webhooks import signed_webhook, webhook_payload

SECRET = "whsec_privacy"
URL = "/verilock/webhook/"
APPLICANT_VALUES = ("Jean", "Dupont", "jean.dupont@example.com", "1990-05-15", "12AB34567")
ONE_TIME = "tok_onetime_abc"


def scrub_email(data: dict[str, Any]) -> dict[str, Any]:
    """A host scrubber: masks the applicant's email wherever the payload has one."""
    text = json.dumps(data).replace("jean.dupont@example.com", "***@example.com")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def drop_nationality(data: dict[str, Any]) -> dict[str, Any]:
    """A host scrubber that edits the payload in place."""
    data["applicant"].pop("nationality")
    return data


def not_a_dict(data: dict[str, Any]) -> list[Any]:
    return [data]


def add_unstorable(data: dict[str, Any]) -> dict[str, Any]:
    """A host scrubber that adds what no JSON column holds (a NaN, a NUL, a huge integer)."""
    data["metadata"] = {"quality": math.nan, "note": "a\x00b", "counter": 2**70}
    return data


@pytest.fixture(autouse=True)
def webhook_settings(settings: Any) -> Iterator[None]:
    settings.VERILOCK_WEBHOOK_SECRETS = [SECRET]
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    yield
    processing.shutdown()


def deliver(client: Client, payload: dict[str, Any]) -> Any:
    body, headers = signed_webhook(payload, SECRET)
    return client.post(URL, data=body, content_type="application/json", headers=headers)


def with_secrets(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload carrying one-time secrets, as a create response or a video result would."""
    payload["session_token"] = ONE_TIME
    payload["session_url"] = f"https://verilock.io/verify/{ONE_TIME}"
    payload["results"]["liveness"]["video_url"] = "https://cdn.test/v.mp4?X-Amz-Signature=abc"
    payload["results"]["liveness"]["upload_token"] = ONE_TIME
    return payload


# -- minimise at ingest ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["full", "without_applicant", "decision_only"])
def test_one_time_secrets_are_never_stored(settings: Any, seed: dict[str, Any], mode: str) -> None:
    settings.VERILOCK_STORED_DATA = mode
    store_session(with_secrets(seed))

    session = Session.objects.get()
    stored = json.dumps(session.payload) + json.dumps(
        list(StepResult.objects.values_list("payload", "details"))
    )
    assert ONE_TIME not in stored
    assert "X-Amz-Signature" not in stored and "/verify/" not in stored
    assert session.hosted_url == ""


def test_secrets_are_found_at_any_depth_and_other_urls_are_kept() -> None:
    payload = {
        "id": "ses_1",
        "files": ["https://cdn.test/a.png?sig=1", "https://verilock.io/docs", "plain"],
        "nested": {"refresh_token": "x", "deeper": [{"hosted_url": "https://h.test/"}]},
        "redirect_url": "https://host.test/done",
    }

    assert minimise_payload(payload) == {
        "id": "ses_1",
        "files": ["https://verilock.io/docs", "plain"],
        "nested": {"deeper": [{}]},
        "redirect_url": "https://host.test/done",
    }
    assert minimise_payload(["not", "an", "object"]) == ["not", "an", "object"]


@pytest.mark.django_db
def test_full_mode_keeps_the_rest_of_the_payload(seed: dict[str, Any]) -> None:
    store_session(with_secrets(seed))

    session = Session.objects.get()
    assert session.applicant_email == "jean.dupont@example.com"
    assert session.payload["applicant"] == seed["applicant"]
    assert session.results.get(step="document").details["document_number"] == "12AB34567"


@pytest.mark.django_db
@pytest.mark.parametrize("shape", ["a", "b"])
@pytest.mark.parametrize("mode", ["without_applicant", "decision_only"])
def test_reduced_modes_store_no_applicant_data_and_keep_the_decision(
    settings: Any, mode: str, shape: Literal["a", "b"]
) -> None:
    settings.VERILOCK_STORED_DATA = mode
    payload = session_payload(shape, status="declined", declined_step="aml")

    store_session(payload)

    session = Session.objects.get()
    everything = json.dumps(list(Session.objects.values()), default=str) + json.dumps(
        list(StepResult.objects.values()), default=str
    )
    assert not any(value in everything for value in APPLICANT_VALUES)
    assert (session.status, session.reference_id) == ("declined", "usr_12345")
    assert session.applicant_name == "" and session.applicant_date_of_birth is None
    scores = dict(session.results.values_list("step", "score"))
    assert scores and any(score is not None for score in scores.values())
    assert "declined" in set(session.results.values_list("status", flat=True)) or shape == "b"


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["full", "without_applicant", "decision_only"])
def test_every_mode_recognises_an_unchanged_payload_and_a_change(
    settings: Any, seed: dict[str, Any], mode: str
) -> None:
    settings.VERILOCK_STORED_DATA = mode
    processing_payload = {**seed, "status": "processing", "completed_at": None}
    assert store_session(processing_payload).outcome is Outcome.CREATED
    assert store_session(processing_payload).outcome is Outcome.UNCHANGED
    assert store_session(seed).outcome is Outcome.UPDATED
    assert Session.objects.get().status == "approved"


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["full", "without_applicant", "decision_only"])
def test_the_admin_works_in_every_mode(
    settings: Any, seed: dict[str, Any], admin_client: Client, mode: str
) -> None:
    settings.VERILOCK_STORED_DATA = mode
    store_session(seed)

    change = reverse("admin:verilock_django_session_change", args=(quote(seed["id"]),))
    assert admin_client.get(change).status_code == 200
    assert admin_client.get(reverse("admin:verilock_django_session_changelist")).status_code == 200


@pytest.mark.django_db
def test_the_scrubber_sees_every_session_payload_and_webhook_body(
    settings: Any, seed: dict[str, Any], client: Client
) -> None:
    settings.VERILOCK_PAYLOAD_SCRUBBER = "tests.test_privacy.scrub_email"
    store_session(seed)
    body = webhook_payload(session_id="ses_other")
    body["data"]["applicant_email"] = "jean.dupont@example.com"
    assert deliver(client, body).status_code == 200

    assert Session.objects.get().applicant_email == "***@example.com"
    assert "jean.dupont" not in json.dumps(Session.objects.get().payload)
    assert WebhookEvent.objects.get().payload["data"]["applicant_email"] == "***@example.com"


@pytest.mark.django_db
def test_a_scrubber_editing_in_place_never_changes_the_callers_payload(
    settings: Any, seed: dict[str, Any]
) -> None:
    settings.VERILOCK_PAYLOAD_SCRUBBER = "tests.test_privacy.drop_nationality"
    store_session(seed)

    assert seed["applicant"]["nationality"] == "FR"
    assert Session.objects.get().applicant_nationality == ""


@pytest.mark.django_db
def test_what_a_scrubber_adds_is_made_storable_like_the_payload(
    settings: Any, seed: dict[str, Any]
) -> None:
    settings.VERILOCK_PAYLOAD_SCRUBBER = "tests.test_privacy.add_unstorable"
    store_session(seed)
    stored = Session.objects.get().payload["metadata"]
    assert stored == {"quality": "NaN", "note": "ab", "counter": str(2**70)}


@pytest.mark.django_db
def test_a_scrubber_that_returns_no_dict_is_a_configuration_error(
    settings: Any, seed: dict[str, Any]
) -> None:
    settings.VERILOCK_PAYLOAD_SCRUBBER = "tests.test_privacy.not_a_dict"
    with pytest.raises(VerilockConfigurationError, match=r"^VERILOCK_PAYLOAD_SCRUBBER returned"):
        store_session(seed)
    assert not Session.objects.exists()


@pytest.mark.django_db
def test_decision_only_webhook_bodies_keep_the_envelope_only(
    settings: Any, client: Client
) -> None:
    settings.VERILOCK_STORED_DATA = "decision_only"
    body = webhook_payload(session_id="ses_1", webhook_id="wh_evt_1")
    body["data"]["applicant_name"] = "Jean Dupont"

    assert deliver(client, body).status_code == 200

    stored = WebhookEvent.objects.get().payload
    assert stored["webhook_id"] == "wh_evt_1" and stored["data"]["session_id"] == "ses_1"
    assert "applicant_name" not in stored["data"]


def mark_seen(data: dict[str, Any]) -> dict[str, Any]:
    """A host scrubber that edits nested objects in place."""
    data["data"]["seen"] = True
    data["data"]["links"].append("added")
    return data


@pytest.mark.parametrize("mode", ["full", "without_applicant", "decision_only"])
@pytest.mark.parametrize("scrubber", [None, "tests.test_privacy.mark_seen"])
def test_a_webhook_body_known_storable_is_minimised_alike_into_a_new_object(
    settings: Any, mode: str, scrubber: str | None
) -> None:
    settings.VERILOCK_STORED_DATA = mode
    settings.VERILOCK_PAYLOAD_SCRUBBER = scrubber
    body = webhook_payload(session_id="ses_1")
    body["data"].update(
        applicant={"name": "Jean Dupont"}, links=["https://example.com/verify/abc"], token="t"
    )
    sent = json.loads(json.dumps(body))

    minimised = minimise_webhook_body(body, storable=True)

    assert minimised == minimise_webhook_body(body)
    assert body == sent  # the caller's payload is never changed
    if mode != "decision_only":
        assert minimised["data"] is not body["data"]
        assert "token" not in minimised["data"]


# -- erasure and tombstones ------------------------------------------------------------


def store_applicant(reference: str, count: int) -> list[str]:
    ids = []
    for index in range(count):
        payload = session_payload(id=f"ses_{reference}_{index}", reference_id=reference)
        store_session(payload)
        ids.append(str(payload["id"]))
        WebhookEvent.objects.create(
            webhook_id=f"wh_{reference}_{index}",
            event_type="session.completed",
            session_id=payload["id"],
            payload={"data": {"session_id": payload["id"]}},
        )
    return ids


def log_about(obj: Any) -> None:
    user = User.objects.get_or_create(username="reviewer")[0]
    LogEntry.objects.create(
        user=user,
        content_type=ContentType.objects.get_for_model(type(obj)),
        object_id=str(obj.pk),
        object_repr=str(obj),
        action_flag=CHANGE,
        change_message="Refreshed from Verilock.",
    )


@pytest.mark.django_db
def test_erasure_removes_everything_about_one_applicant_and_leaves_tombstones() -> None:
    erased = store_applicant("usr_erase", 2)
    kept = store_applicant("usr_keep", 1)
    for session_id in (*erased, *kept):
        session = Session.objects.get(pk=session_id)
        log_about(session)
        log_about(session.results.first())
        log_about(WebhookEvent.objects.get(session_id=session_id))

    report = erase_applicant("usr_erase")

    assert report.session_ids == erased
    assert (report.step_results, report.webhook_events, report.log_entries) == (10, 2, 6)
    assert list(Session.objects.values_list("pk", flat=True)) == kept
    assert not StepResult.objects.filter(session_id__in=erased).exists()
    assert not WebhookEvent.objects.filter(session_id__in=erased).exists()
    assert LogEntry.objects.count() == 3
    assert not any("usr_erase" in entry.object_repr for entry in LogEntry.objects.all())
    tombstones = list(Tombstone.objects.values())
    assert {row["session_hash"] for row in tombstones} == {session_hash(s) for s in erased}
    assert set(tombstones[0]) == {"session_hash", "erased_at"}  # nothing about the person
    assert not any("usr_erase" in str(row) or "ses_" in str(row) for row in tombstones)


@pytest.mark.django_db
def test_an_erased_session_is_not_stored_again_unless_the_host_lifts_its_tombstone(
    verilock_api: InProcessVerilock,
) -> None:
    session = verilock_api.add_session(status="approved", reference_id="usr_gone")
    sync_session(session.id)
    erase_applicant("usr_gone")

    with pytest.raises(ErasedSessionError, match=f"Session {session.id} was erased"):
        sync_session(session.id)
    with pytest.raises(ErasedSessionError):
        store_session(verilock_api.payload(session.id))
    assert not Session.objects.exists()

    assert lift_tombstone(session.id) is True
    assert sync_session(session.id).outcome is Outcome.CREATED
    assert lift_tombstone(session.id) is False


@pytest.mark.django_db
def test_the_tombstone_is_looked_up_once_and_only_for_a_session_not_stored_yet(
    seed: dict[str, Any],
) -> None:
    def tombstone_queries(payload: dict[str, Any]) -> int:
        with CaptureQueriesContext(connection) as queries:
            store_session(payload)
        return sum(Tombstone._meta.db_table in query["sql"] for query in queries)

    assert tombstone_queries(seed) == 1
    assert tombstone_queries({**seed, "risk_score": 0.5}) == 0


@pytest.mark.django_db
def test_ids_not_stored_here_can_be_tombstoned_too() -> None:
    report = erase_sessions([" ses_unknown "])
    assert report.session_ids == ["ses_unknown"]
    assert is_erased("ses_unknown")


@pytest.mark.django_db
def test_a_receiver_can_veto_an_erasure_and_another_is_told_after_commit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    ids = store_applicant("usr_aml", 1)
    told: list[dict[str, Any]] = []

    def veto(**kwargs: Any) -> None:
        raise ErasureRefused("AML retention until 2031")

    def record(**kwargs: Any) -> None:
        told.append(kwargs)

    erasure_requested.connect(veto)
    try:
        with pytest.raises(ErasureRefused, match="AML retention"):
            erase_applicant("usr_aml")
    finally:
        erasure_requested.disconnect(veto)
    assert Session.objects.filter(pk__in=ids).count() == 1
    assert not Tombstone.objects.exists()

    applicant_erased.connect(record)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            erase_applicant("usr_aml")
    finally:
        applicant_erased.disconnect(record)
    assert [(call["reference_id"], call["session_ids"]) for call in told] == [("usr_aml", ids)]


@pytest.mark.django_db
def test_erase_command(capsys: Any) -> None:
    ids = store_applicant("usr_cmd", 1)
    out = StringIO()
    call_command("erase_verilock_applicant", "usr_cmd", "--dry-run", stdout=out)
    assert out.getvalue().startswith("Would erase 1 session(s), 5 step result(s), 1 webhook")
    assert Session.objects.count() == 1

    out = StringIO()
    call_command("erase_verilock_applicant", "usr_cmd", stdout=out)
    assert out.getvalue().splitlines()[1] == f"Sessions: {ids[0]}"
    assert not Session.objects.exists()

    out = StringIO()
    call_command("erase_verilock_applicant", "usr_cmd", stdout=out)
    assert out.getvalue() == "No session has that reference; nothing erased.\n"
    with pytest.raises(CommandError, match="empty reference"):
        call_command("erase_verilock_applicant", " ")


@pytest.mark.django_db
def test_the_erase_command_reports_a_veto() -> None:
    store_applicant("usr_veto", 1)

    def veto(**kwargs: Any) -> None:
        raise ErasureRefused("under investigation")

    erasure_requested.connect(veto)
    try:
        with pytest.raises(CommandError, match=r"^Erasure refused: under investigation$"):
            call_command("erase_verilock_applicant", "usr_veto")
    finally:
        erasure_requested.disconnect(veto)


@pytest.mark.django_db
def test_the_admin_action_erases_for_superusers_only(admin_client: Client, client: Client) -> None:
    ids = store_applicant("usr_admin", 2)
    Session.objects.create(id="ses_noref")
    changelist = reverse("admin:verilock_django_session_changelist")
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(*ContentType.objects.get_for_model(Session).permission_set.all())
    client.force_login(staff)
    form = {"action": "erase_applicants", "_selected_action": [ids[0], "ses_noref"]}

    client.post(changelist, form)
    assert Session.objects.count() == 3  # the action is not offered to staff

    response = admin_client.post(changelist, form, follow=True)

    assert response.status_code == 200
    assert not Session.objects.exists()  # both sessions of usr_admin, and the unreferenced one
    assert is_erased(ids[1]) and is_erased("ses_noref")
    assert "Erased 2 session(s)" in response.content.decode()


# -- webhook intake: tombstones and freshness -----------------------------------------


@pytest.mark.django_db
def test_deliveries_for_an_erased_session_are_acknowledged_and_not_stored(
    client: Client,
) -> None:
    erase_sessions(["ses_gone"])

    response = deliver(client, webhook_payload(session_id="ses_gone"))

    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("offset", "status"),
    [
        (dt.timedelta(seconds=-70), 200),  # the provider's second retry
        (dt.timedelta(days=-2, hours=-23), 200),
        (dt.timedelta(days=-3, minutes=-1), 400),
        (dt.timedelta(days=3, minutes=1), 400),  # from the future: never fresh later either
    ],
)
def test_deliveries_outside_the_freshness_window_are_refused(
    client: Client, offset: dt.timedelta, status: int
) -> None:
    response = deliver(client, webhook_payload(timestamp=timezone.now() + offset))

    assert response.status_code == status
    assert WebhookEvent.objects.count() == (1 if status == 200 else 0)
    if status == 400:
        assert response.json() == {"status": "timestamp outside the accepted window"}


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Los_Angeles"])
@pytest.mark.parametrize(
    ("offset", "status"), [(dt.timedelta(minutes=-1), 200), (dt.timedelta(days=-4), 400)]
)
def test_the_window_holds_in_a_project_without_use_tz(
    client: Client, settings: Any, zone: str, offset: dt.timedelta, status: int
) -> None:
    # Without USE_TZ, Django's "now" is naive (local time) while a delivery's timestamp is
    # a moment: subtracting one from the other was a TypeError, a 500 for every delivery.
    settings.USE_TZ, settings.TIME_ZONE = False, zone
    moment = dt.datetime.now(dt.timezone.utc) + offset

    response = deliver(client, webhook_payload(timestamp=moment))

    assert response.status_code == status
    if status == 200:
        # Stored as the project keeps datetimes: naive, in its time zone.
        stored = WebhookEvent.objects.get().occurred_at
        assert stored is not None
        assert abs(stored - timezone.make_naive(moment)) < dt.timedelta(seconds=1)


@pytest.mark.django_db
def test_the_window_is_configurable_and_can_be_turned_off(client: Client, settings: Any) -> None:
    old = webhook_payload(timestamp=timezone.now() - dt.timedelta(minutes=10))
    settings.VERILOCK_WEBHOOK_MAX_AGE = 300
    assert deliver(client, old).status_code == 400
    settings.VERILOCK_WEBHOOK_MAX_AGE = None
    assert deliver(client, old).status_code == 200


@pytest.mark.django_db
def test_a_delivery_without_a_timestamp_is_accepted(client: Client) -> None:
    payload = webhook_payload()
    del payload["timestamp"]
    assert deliver(client, payload).status_code == 200


def test_webhook_retention_shorter_than_the_window_is_warned_about(settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_RETENTION_DAYS = 2
    assert [m.id for m in check_privacy_settings()] == ["verilock_django.W040"]
    settings.VERILOCK_WEBHOOK_MAX_AGE = 86_400
    assert check_privacy_settings() == []
    settings.VERILOCK_WEBHOOK_MAX_AGE = None
    assert [m.id for m in check_privacy_settings()] == ["verilock_django.W040"]
    settings.VERILOCK_WEBHOOK_RETENTION_DAYS = None
    assert check_privacy_settings() == []
