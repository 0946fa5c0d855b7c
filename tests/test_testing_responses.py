"""The in-process fake (``responses``) and the pytest fixtures, against the app's client."""

from __future__ import annotations

from io import StringIO

import pytest
import requests
from django.conf import settings
from django.core.management import call_command

from verilock_django.client import VerilockClient
from verilock_django.exceptions import (
    AuthenticationError,
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from verilock_django.models import Session, StepResult
from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.testing.server import FakeVerilockServer


def test_fixture_reads_url_and_key_from_django_settings(verilock_api: InProcessVerilock) -> None:
    assert verilock_api.url == "https://verilock.test/api/v1"
    assert verilock_api.api_key == "test-key"


@pytest.mark.parametrize("style", ["bearer", "x-api-key", "both"])
def test_the_apps_client_reads_a_fake_session_with_each_auth_style(
    verilock_api: InProcessVerilock, style: str
) -> None:
    session = verilock_api.add_session(status="approved")
    body = VerilockClient(auth_header=style).get_session(session.id)
    assert body == verilock_api.payload(session.id)
    assert verilock_api.requests[-1].auth_style in ("bearer", "x-api-key")


def test_wrong_key_maps_to_the_apps_authentication_error(verilock_api: InProcessVerilock) -> None:
    with pytest.raises(AuthenticationError):
        VerilockClient(api_key="wrong").get_session("ses_x")


@pytest.mark.parametrize(
    ("arrange", "error"),
    [
        (lambda api, sid: api.fail_next(sid, status=503), ServerError),
        (lambda api, sid: api.fail_next(sid, status=429), RateLimitedError),
        (lambda api, sid: api.timeout_next(sid), TransportError),
        (lambda api, sid: api.reset_next(sid), TransportError),
        (lambda api, sid: api.malformed_next(sid), InvalidResponseError),
        (lambda api, sid: api.html_error_next(sid, status=502), ServerError),
        (lambda api, sid: None, None),
    ],
    ids=["503", "429", "timeout", "reset", "malformed", "html", "control"],
)
def test_fault_kinds_reach_the_client_as_its_typed_errors(
    verilock_api: InProcessVerilock, arrange: object, error: type[Exception] | None
) -> None:
    session = verilock_api.add_session()
    arrange(verilock_api, session.id)  # type: ignore[operator]
    client = VerilockClient(max_retries=0)
    if error is None:
        assert client.get_session(session.id)["id"] == session.id
    else:
        with pytest.raises(error):
            client.get_session(session.id)
    assert verilock_api.requests_for(session.id) == 1


def test_unknown_session_is_not_found(verilock_api: InProcessVerilock) -> None:
    with pytest.raises(NotFoundError):
        VerilockClient().get_session("ses_missing")


def test_requests_outside_the_fake_fail_loudly(verilock_api: InProcessVerilock) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get("https://example.com/", timeout=1)


def test_the_mock_is_gone_after_stop() -> None:
    api = InProcessVerilock(base_url="https://verilock.test/api/v1").start()
    api.stop()
    with pytest.raises(RuntimeError, match="not started"):
        api.mock  # noqa: B018 - the property raises


@pytest.mark.verilock(shape="b", rate_limit_per_minute=1)
def test_marker_configures_the_fixture(verilock_api: InProcessVerilock) -> None:
    session = verilock_api.add_session(status="declined")
    client = VerilockClient(max_retries=0)
    assert client.get_session(session.id)["decision"] == "declined"
    assert client.announced_limit == 1
    # A second request now would wait a minute for the client's window; the fake says 429.
    response = requests.get(
        f"{verilock_api.url}/sessions/{session.id}",
        headers={"Authorization": f"Bearer {settings.VERILOCK_API_KEY}"},
        timeout=5,
    )
    assert response.status_code == 429


@pytest.mark.django_db
def test_sync_command_follows_a_session_through_the_in_process_fake(
    verilock_api: InProcessVerilock,
) -> None:
    session = verilock_api.add_session(status="processing")
    Session.objects.create(id=session.id)
    call_command("sync_verilock_sessions", stdout=StringIO())
    assert Session.objects.get(id=session.id).status == "processing"

    verilock_api.complete(session.id, "declined", declined_step="liveness")
    call_command("sync_verilock_sessions", stdout=StringIO())
    stored = Session.objects.get(id=session.id)
    assert stored.status == "declined"
    assert StepResult.objects.get(session=stored, step="liveness").status == "declined"
    assert verilock_api.requests_for(session.id) == 2

    # Finished sessions are not fetched again by a plain sync.
    call_command("sync_verilock_sessions", stdout=StringIO())
    assert verilock_api.requests_for(session.id) == 2


def test_verilock_server_fixture_points_settings_at_itself(
    verilock_server: FakeVerilockServer, settings: object
) -> None:
    assert verilock_server.url == settings.VERILOCK_API_URL  # type: ignore[attr-defined]
    session = verilock_server.state.add_session(status="approved")
    assert VerilockClient().get_session(session.id)["status"] == "approved"
    assert verilock_server.state.requests_for(session.id) == 1
