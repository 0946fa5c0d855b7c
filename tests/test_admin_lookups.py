"""Change list queries no database can run are refused as invalid lookups, and actions on a
forged selection as an unusable selection, never a 500; a page of a session id no database
can look up is Django's "does not exist"."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.db import OperationalError, connection
from django.db.models import QuerySet
from django.test import Client

from verilock_django.models import Session

pytestmark = pytest.mark.django_db

SESSIONS = "/admin/verilock_django/session/"
EVENTS = "/admin/verilock_django/webhookevent/"


@pytest.fixture(autouse=True)
def a_session() -> None:
    """One row, so that every lookup is applied to something (SQLite skips a function
    call on an empty table)."""
    Session.objects.create(id="ses_1", status="processing")


def assert_invalid_lookup(admin_client: Client, query: str) -> None:
    response = admin_client.get(query)

    # Django's answer to a lookup it cannot apply: the plain list, flagged ?e=1.
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")
    # The request's transaction is still usable (the test runs inside one).
    assert admin_client.get(response["Location"]).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        # The app's own filters, Django's field filters and raw lookups, and the search.
        f"{SESSIONS}?status=%00",
        f"{SESSIONS}?decision=%00",
        f"{SESSIONS}?type=%00",
        f"{SESSIONS}?step=%00",
        f"{SESSIONS}?step=document&step_outcome=%00",
        f"{SESSIONS}?failed_step=%00",
        f"{SESSIONS}?q=ses_%00",
        f"{EVENTS}?event_type__exact=%00",
        f"{EVENTS}?event_type=%00",
        f"{EVENTS}?status__exact=%00",
        f"{EVENTS}?q=%00",
    ],
)
def test_a_parameter_holding_nul_is_an_invalid_lookup(admin_client: Client, query: str) -> None:
    assert_invalid_lookup(admin_client, query)


@pytest.mark.parametrize(
    "query",
    [
        # Years no date holds: refused while the query is built.
        f"{SESSIONS}?created_at__year=10000",
        f"{SESSIONS}?created_at__year=99999999999",
        f"{EVENTS}?received_at__year=99999999999",
    ],
)
def test_a_lookup_no_date_can_hold_is_an_invalid_lookup(admin_client: Client, query: str) -> None:
    assert_invalid_lookup(admin_client, query)


@pytest.mark.parametrize(
    "query",
    [
        # A range of one value: Django's lookup reads a second one that is not there.
        f"{SESSIONS}?id__range=a",
        f"{SESSIONS}?created_at__range=",
        f"{EVENTS}?id__range=1",
    ],
)
def test_a_lookup_value_the_lookup_cannot_use_is_an_invalid_lookup(
    admin_client: Client, query: str
) -> None:
    assert_invalid_lookup(admin_client, query)


@pytest.mark.parametrize(
    "query", [f"{SESSIONS}?q={'a' * 60_000}", f"{SESSIONS}?status__contains={'a' * 60_000}"]
)
def test_a_pattern_longer_than_sqlite_takes_is_an_invalid_lookup_there(
    admin_client: Client, query: str
) -> None:
    # SQLite refuses LIKE patterns over 50,000 bytes ("pattern too complex"); the others
    # search for it.
    if connection.vendor == "sqlite":
        assert_invalid_lookup(admin_client, query)
    else:
        assert admin_client.get(query).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        f"{SESSIONS}?status__regex=[",
        f"{SESSIONS}?id__iregex=(",
        f"{SESSIONS}?id__regex=%5C",
        pytest.param(
            f"{SESSIONS}?status__iregex=a(%3Fi)b",
            marks=pytest.mark.skipif(
                connection.vendor == "mysql", reason="PCRE takes flags anywhere in a pattern"
            ),
        ),
        f"{EVENTS}?event_type__regex=[",
    ],
)
def test_a_lookup_the_database_refuses_is_an_invalid_lookup(
    admin_client: Client, query: str
) -> None:
    assert_invalid_lookup(admin_client, query)


def test_ordinary_filters_still_apply(admin_client: Client) -> None:
    assert admin_client.get(f"{SESSIONS}?status=approved").status_code == 200
    assert admin_client.get(f"{SESSIONS}?created_at__year=2024").status_code == 200
    assert admin_client.get(f"{SESSIONS}?status__regex=^pro").status_code == 200
    assert admin_client.get(f"{EVENTS}?event_type__exact=session.completed").status_code == 200


@pytest.mark.parametrize("page", ["change", "history", "delete"])
def test_the_page_of_an_id_holding_nul_does_not_exist(admin_client: Client, page: str) -> None:
    response = admin_client.get(f"{SESSIONS}ses_%00/{page}/")

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert admin_client.get(f"{SESSIONS}ses_1/{page}/").status_code == 200


def test_refreshing_an_id_holding_nul_finds_no_session(admin_client: Client) -> None:
    assert admin_client.post(f"{SESSIONS}ses_%00/sync/").status_code == 404


def test_an_operational_error_that_is_not_a_pattern_stays_an_error(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lock wait or a lost connection is not the user's lookup: it must not be hidden as
    # "invalid lookup" on any database.
    def locked(*args: object, **kwargs: object) -> None:
        raise OperationalError(1205, "Lock wait timeout exceeded")

    monkeypatch.setattr(QuerySet, "count", locked)

    with pytest.raises(OperationalError):
        admin_client.get(f"{SESSIONS}?status__regex=^pro")


@pytest.mark.parametrize(
    ("changelist", "action", "selected"),
    [
        (SESSIONS, "sync_from_verilock", "ses_1\x00"),
        (SESSIONS, "erase_applicants", "ses_1\x00"),
        (SESSIONS, "delete_selected", "\x00"),
        (EVENTS, "reprocess", "ses_1"),
        (EVENTS, "reprocess", "1\x00"),
        (EVENTS, "delete_selected", "1.5"),
    ],
)
def test_an_action_on_a_forged_selection_is_refused(
    admin_client: Client, changelist: str, action: str, selected: str
) -> None:
    # The list only posts the ids it showed; a selection no id can be is refused as a
    # whole, like an empty one, and touches nothing.
    response = admin_client.post(
        changelist, {"action": action, "_selected_action": ["ses_1", "1", selected], "index": 0}
    )

    assert response.status_code == 302
    assert response["Location"] == changelist
    messages = [str(message) for message in get_messages(response.wsgi_request)]
    assert messages == ["The selected items are not ids of this list."]
    assert Session.objects.filter(id="ses_1", status="processing").exists()


@pytest.mark.parametrize(
    ("changelist", "action", "selected"),
    [
        # Numbers no key can be (beyond 64 bits: SQLite's OverflowError), an id longer
        # than the column holds.
        (EVENTS, "reprocess", "99999999999999999999999"),
        (EVENTS, "delete_selected", "-9223372036854775809"),
        (SESSIONS, "sync_from_verilock", "s" * 129),
    ],
)
def test_an_action_on_a_selection_outside_the_keys_range_is_refused(
    admin_client: Client, changelist: str, action: str, selected: str
) -> None:
    response = admin_client.post(
        changelist, {"action": action, "_selected_action": [selected], "index": 0}
    )

    assert response.status_code == 302
    messages = [str(message) for message in get_messages(response.wsgi_request)]
    assert messages == ["The selected items are not ids of this list."]


def test_an_action_on_real_ids_still_runs(admin_client: Client) -> None:
    response = admin_client.post(
        SESSIONS, {"action": "delete_selected", "_selected_action": ["ses_1"], "index": 0}
    )

    # Django's confirmation page: the selection was taken.
    assert response.status_code == 200
    assert "ses_1" in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        # A range of three values: SQLite's and MySQLdb's binding errors (ProgrammingError).
        f"{SESSIONS}?id__range=a,b,c",
        f"{EVENTS}?received_at__range=2024-01-01,2024-01-02,2024-01-03",
        # A float that is no number MySQL holds (its driver's ProgrammingError).
        f"{SESSIONS}?risk_score=nan",
        f"{SESSIONS}?risk_score__gt=inf",
        f"{SESSIONS}?risk_score__in=1,1e400",
    ],
)
def test_a_lookup_no_driver_binds_is_an_invalid_lookup(admin_client: Client, query: str) -> None:
    assert_invalid_lookup(admin_client, query)


@pytest.mark.parametrize("query", ["steps__contains=1", "steps__contained_by=%5B%5D"])
def test_a_lookup_the_backend_lacks_is_an_invalid_lookup(admin_client: Client, query: str) -> None:
    if connection.vendor == "sqlite":  # SQLite's JSON has no containment (NotSupportedError)
        assert_invalid_lookup(admin_client, f"{SESSIONS}?{query}")
    else:
        assert admin_client.get(f"{SESSIONS}?{query}").status_code == 200


def test_a_text_lookup_may_say_nan(admin_client: Client) -> None:
    assert admin_client.get(f"{SESSIONS}?status=nan&risk_score__isnull=nan").status_code == 200
