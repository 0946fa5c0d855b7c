"""Django's technical 500 page (and the error reports built like it) never shows the API key
or a webhook secret, whatever failed below the client or the webhook view.

With ``DEBUG = True`` Django shows every local variable of every frame of the traceback (its
filter is off by design), so the key and the secrets must not be locals of any frame an error
passes through. With ``DEBUG = False`` (error e-mails, ``AdminEmailHandler``) the functions
holding them are marked with ``sensitive_variables``, which also hides the libraries' frames
below them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
import responses
from django.http import HttpRequest
from django.test import RequestFactory, override_settings
from django.views.debug import technical_500_response

from verilock_django import webhooks
from verilock_django.client import VerilockClient
from verilock_django.exceptions import TransportError
from verilock_django.signatures import sign_webhook

from .conftest import API_URL, SEED_ID

KEY = "qi_live_debugpage_key_123"
SECRET = "whsec_debugpage_secret_456"
OLD_SECRET = "whsec_debugpage_old_789"
BODY = b'{"event": "session.completed", "webhook_id": "wh_1", "data": {"id": "ses_1"}}'


class Interrupted(BaseException):
    """Not an ``Exception``: nothing in the client turns it into a ``VerilockError``."""


def debug_page(request: HttpRequest, call: Callable[[], object]) -> str:
    """The technical 500 page for whatever ``call`` raises, as text."""
    try:
        call()
    except BaseException:
        exc_type, exc_value, tb = sys.exc_info()
        assert exc_type is not None
        return technical_500_response(request, exc_type, exc_value, tb).content.decode()
    raise AssertionError("the call did not raise")


def client_page(failure: BaseException) -> str:
    """The debug page for a ``get_session`` call during which ``failure`` is raised below."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.get(f"{API_URL}/sessions/{SEED_ID}", body=failure)
        return debug_page(
            RequestFactory().get("/"), lambda: VerilockClient(api_key=KEY).get_session(SEED_ID)
        )


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG", "production"])
@pytest.mark.parametrize(
    "failure",
    [RuntimeError("a bug below"), ConnectionResetError(104, "reset")],
    ids=["bug-below", "transport"],
)
def test_the_client_never_shows_the_key_on_the_debug_page(debug: bool, failure: Exception) -> None:
    with override_settings(DEBUG=debug):
        page = client_page(failure)
    assert "get_session" in page  # the page is the traceback through the client
    assert KEY not in page


def test_error_reports_hide_the_key_in_the_libraries_frames_too() -> None:
    # Not an Exception, so it passes through requests' and urllib3's frames (whose locals
    # hold the headers) untouched; with DEBUG = False the report hides every local there.
    with override_settings(DEBUG=False):
        page = client_page(Interrupted("in flight"))
    assert "Interrupted" in page and "requests" in page
    assert KEY not in page


def test_the_client_raises_its_own_error_from_the_request_frame_only() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.get(f"{API_URL}/sessions/{SEED_ID}", body=RuntimeError("a bug below"))
        with pytest.raises(TransportError) as caught:
            VerilockClient(api_key=KEY).get_session(SEED_ID)
    frames = [entry.frame for entry in caught.traceback]
    assert all(KEY not in repr(frame.f_locals) for frame in frames)


def signed_request(signature: str | None = None) -> HttpRequest:
    return RequestFactory().post(
        "/verilock/webhook/",
        data=BODY,
        content_type="application/json",
        HTTP_X_VERILOCK_SIGNATURE=signature or sign_webhook(BODY, SECRET),
    )


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG", "production"])
def test_the_webhook_view_never_shows_the_secrets_when_storing_fails(
    debug: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_store(envelope: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(webhooks, "store_delivery", broken_store)
    request = signed_request()
    with override_settings(DEBUG=debug, VERILOCK_WEBHOOK_SECRETS=[SECRET, OLD_SECRET]):
        page = debug_page(request, lambda: webhooks.webhook(request))
    assert "broken_store" in page
    assert SECRET not in page and OLD_SECRET not in page


def test_the_verifier_hides_the_secrets_and_digests_in_error_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A failure inside the signature check: its frames hold the secrets and the expected
    # digest (a valid signature for a forged body). Error reports (DEBUG = False) hide both.
    def broken_compare(expected: str, given: str) -> bool:
        raise RuntimeError("comparison failed")

    monkeypatch.setattr("verilock_django.signatures.hmac.compare_digest", broken_compare)
    forged = signed_request(signature="0" * 64)
    with override_settings(DEBUG=False, VERILOCK_WEBHOOK_SECRETS=[SECRET]):
        page = debug_page(forged, lambda: webhooks.webhook(forged))
    assert "broken_compare" in page
    assert SECRET not in page
    assert sign_webhook(BODY, SECRET) not in page
