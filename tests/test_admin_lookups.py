"""Change list queries no database can run are refused as invalid lookups, never a 500."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

SESSIONS = "/admin/verilock_django/session/"
EVENTS = "/admin/verilock_django/webhookevent/"


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
    response = admin_client.get(query)

    # Django's answer to a lookup it cannot apply: the plain list, flagged ?e=1.
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")
    assert admin_client.get(response["Location"]).status_code == 200


def test_ordinary_filters_still_apply(admin_client: Client) -> None:
    assert admin_client.get(f"{SESSIONS}?status=approved").status_code == 200
    assert admin_client.get(f"{EVENTS}?event_type__exact=session.completed").status_code == 200
