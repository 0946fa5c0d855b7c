"""The fake API's request log and counters."""

from __future__ import annotations

from verilock_django.testing import FakeVerilock

from .fakes import get


def test_reset_counters(fake: FakeVerilock) -> None:
    session = fake.add_session()
    get(fake, f"/sessions/{session.id}")
    fake.reset_counters()
    assert (fake.total_requests, fake.requests_for(session.id), fake.requests) == (0, 0, [])
