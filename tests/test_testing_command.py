"""The real ``sync_verilock_sessions`` command against the fake API on a loopback port."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from verilock_django.models import Session, StepResult
from verilock_django.testing.server import FakeVerilockServer

pytestmark = pytest.mark.django_db

KEY = "qi_test_command"


def sync(*args: str) -> str:
    out = StringIO()
    call_command("sync_verilock_sessions", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_command_syncs_pending_sessions_from_the_http_server_then_follows_changes() -> None:
    with (
        FakeVerilockServer(api_key=KEY, default_shape="mixed") as server,
        override_settings(VERILOCK_API_URL=server.url, VERILOCK_API_KEY=KEY),
    ):
        remote = [
            *server.state.seed(10),
            server.state.add_session(status="approved", shape="a"),
            server.state.add_session(status="declined", shape="b"),
        ]
        for session in remote:
            Session.objects.create(id=session.id)

        sync()
        stored = {s.id: s for s in Session.objects.all()}
        assert {sid: s.status for sid, s in stored.items()} == {s.id: s.status for s in remote}
        approved, declined_b = remote[-2:]
        assert StepResult.objects.filter(session_id=approved.id).count() == 5
        assert stored[approved.id].applicant_email == approved.applicant["email"]
        assert stored[declined_b.id].decision == "declined"
        assert stored[declined_b.id].applicant_email == declined_b.applicant["email"]

        unfinished = [s for s in remote if not s.is_finished]
        finished = [s for s in remote if s.is_finished]
        assert unfinished, "the seed plan always has unfinished sessions"
        server.state.reset_counters()
        moved = server.state.advance_many(ids=[s.id for s in unfinished])
        sync()
        for session in moved:
            assert Session.objects.get(id=session.id).status == session.status
        # The second run fetched each changed session at most once, and never a session
        # that was already finished (however it found out what changed: list or by id).
        assert all(server.state.requests_for(s.id) <= 1 for s in unfinished)
        assert [s.id for s in finished if server.state.requests_for(s.id)] == []
        assert all(r.status == 200 for r in server.state.requests)


def test_command_reports_a_wrong_key_from_the_http_server() -> None:
    with (
        FakeVerilockServer(api_key=KEY) as server,
        override_settings(VERILOCK_API_URL=server.url, VERILOCK_API_KEY="wrong"),
    ):
        session = server.state.add_session()
        Session.objects.create(id=session.id)
        with pytest.raises(CommandError, match="VERILOCK_API_KEY"):
            sync()
        assert server.state.requests[0].status == 401


def test_command_survives_a_server_error_for_one_session() -> None:
    with (
        FakeVerilockServer(api_key=KEY) as server,
        override_settings(
            VERILOCK_API_URL=server.url, VERILOCK_API_KEY=KEY, VERILOCK_MAX_RETRIES=0
        ),
    ):
        broken, fine = server.state.add_session(), server.state.add_session(status="approved")
        for session in (broken, fine):
            Session.objects.create(id=session.id)
        server.state.fail_next(broken.id, status=500, times=5)
        with pytest.raises(CommandError, match="1 session"):
            sync()
        assert Session.objects.get(id=fine.id).status == "approved"
        stored = Session.objects.get(id=broken.id)
        assert (stored.status, stored.payload) == ("", {})
        assert "500" in stored.last_sync_error or "server" in stored.last_sync_error.lower()
        assert server.state.requests_for(broken.id) == 1
