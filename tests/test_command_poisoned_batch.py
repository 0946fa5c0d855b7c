"""The real cron command over a batch with one poisoned answer of each kind among good ones.

Runs ``example_project/manage.py sync_verilock_sessions`` as a subprocess against a loopback
server that answers each session id with the bytes chosen here, on PostgreSQL when the
suite runs there (a database of its own) and on a SQLite file otherwise. Every good session
must be stored; each poisoned one is either stored so that it reads back, or failed with a
message free of payload values; the run ends with its summary and exit 1, no traceback, no
lease left behind — also when SIGTERM stops it midway.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from .conftest import SEED_PATH
from .example_site import MANAGE, project_env
from .loopback import serving

KEY = "qi_test_poisoned"
#: A value that must never appear in any stored error, output or log line.
SECRET_EMAIL = "jean.dupont.secret@example.com"


def seed(session_id: str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(SEED_PATH.read_text())
    payload["id"] = session_id
    payload["status"] = "processing"
    payload["applicant"]["email"] = SECRET_EMAIL
    payload.update(changes)
    return payload


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def poisoned_answers() -> dict[str, tuple[int, bytes]]:
    """Session id → (HTTP status, body): one of each kind the issue names, plus transport-ish."""
    nested: str = '{"a":' * 5000 + "1" + "}" * 5000
    nul = seed("ses_p_nul")
    nul["applicant"]["last_name"] = "Marchet\u0000ti"
    country = seed("ses_p_country")
    country["applicant"]["nationality"] = "United Kingdom of Great Britain"
    surrogate = body(seed("ses_p_surrogate", steps=["document", "x"])).replace(
        b'"steps": ["document", "x"]', b'"steps": ["document", "\\ud800"]'
    )
    big_score = body(seed("ses_p_bigscore")).replace(b'"score": 0.97', b'"score": ' + b"9" * 400)
    return {
        "ses_p_nul": (200, body(nul)),
        "ses_p_country": (200, body(country)),
        "ses_p_nan": (
            200,
            body(seed("ses_p_nan")).replace(
                b'"type": "kyc"', b'"type": "kyc", "metadata": {"image_quality": NaN}'
            ),
        ),
        "ses_p_bigscore": (200, big_score),
        "ses_p_surrogate": (200, surrogate),
        "ses_p_y10k": (200, body(seed("ses_p_y10k", completed_at="9999-12-31T23:59:59-14:00"))),
        "ses_p_7digits": (
            200,
            body(seed("ses_p_7digits", completed_at="2026-03-15T10:45:22.1234567Z")),
        ),
        "ses_p_deep": (
            200,
            body(seed("ses_p_deep"))[:-1] + b', "details": ' + nested.encode() + b"}",
        ),
        "ses_p_html": (
            502,
            b"<html><body>Bad gateway " + SECRET_EMAIL.encode() + b"</body></html>",
        ),
        "ses_p_truncated": (200, body(seed("ses_p_truncated"))[:60]),
        "ses_p_other_id": (200, body(seed("ses_p_someone_else"))),
        "ses_p_missing": (404, b'{"error": "not_found", "message": "Session not found."}'),
        "ses_p_list": (200, b"[1, 2, 3]"),
    }


GOOD = [f"ses_good_{n}" for n in range(6)]


class Handler(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, bytes]] = {}
    delay = 0.0
    seen: list[str] = []

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        type(self).seen.append(path)
        if path == "/api/v1/sessions":  # an empty listing: every row is checked by id
            self._send(200, b'{"data": [], "meta": {"current_page": 1, "last_page": 1}}')
            return
        session_id = path.rsplit("/", 1)[-1]
        time.sleep(self.delay)
        if session_id in GOOD:
            self._send(200, body(seed(session_id)))
        else:
            self._send(*self.answers.get(session_id, (404, b"{}")))

    def _send(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    Handler.answers = poisoned_answers()
    Handler.delay = 0.0
    Handler.seen = []
    with serving(Handler) as root:
        yield f"{root}/api/v1"


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A database of this test's own: PostgreSQL when the suite runs there, else SQLite."""
    suite_url = os.environ.get("DATABASE_URL", "")
    if not suite_url.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"
        return
    import psycopg

    server, _, _ = suite_url.rpartition("/")
    name = f"verilock_poisoned_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(database_url: str, api_url: str, *args: str) -> subprocess.Popen[str]:
    env = project_env(database_url, api_url, KEY, VERILOCK_LOG_LEVEL="DEBUG")
    return subprocess.Popen(  # noqa: S603 (our own interpreter and manage.py)
        [sys.executable, str(MANAGE), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(database_url: str, api_url: str, *args: str) -> tuple[int, str, str]:
    process = manage(database_url, api_url, *args)
    out, err = process.communicate(timeout=180)
    return process.returncode, out, err


def shell(database_url: str, api_url: str, code: str) -> str:
    code_, out, err = run(database_url, api_url, "shell", "-c", code)
    assert code_ == 0, err
    return out


REGISTER = (
    "from verilock_django.models import Session; "
    "Session.objects.bulk_create([Session(id=i) for i in {ids!r}])"
)
REPORT = (
    "import json; from verilock_django.models import Session; "
    "rows = list(Session.objects.all()); "  # every row loads back through the ORM
    "print(json.dumps({s.id: [s.status, s.last_sync_error, s.lease_expires_at is not None, "
    "s.results.count()] for s in rows}))"
)


def test_one_poisoned_answer_of_each_kind_never_stops_the_batch(
    database_url: str, api: str
) -> None:
    assert run(database_url, api, "migrate", "-v", "0")[0] == 0
    poisoned = sorted(Handler.answers)
    shell(database_url, api, REGISTER.format(ids=GOOD + poisoned))

    code, out, err = run(database_url, api, "sync_verilock_sessions", "--concurrency", "4")

    assert code == 1, err
    assert "Traceback" not in err + out, err[-3000:]
    assert SECRET_EMAIL not in err + out  # neither printed nor logged
    assert "fetched" in out  # the summary line
    rows = json.loads(shell(database_url, api, REPORT).splitlines()[-1])
    for session_id in GOOD:
        assert rows[session_id] == ["processing", "", False, 5], session_id
    failed = [sid for sid in poisoned if rows[sid][1]]
    for session_id in poisoned:
        status, error, leased, _ = rows[session_id]
        assert not leased, session_id
        assert SECRET_EMAIL not in error and "Marchet" not in error, session_id
        assert error or status, f"{session_id}: neither stored nor failed"
    # These can never be stored: each is a failure of its own, with a reason.
    for session_id in ("ses_p_deep", "ses_p_html", "ses_p_truncated", "ses_p_other_id"):
        assert session_id in failed, rows[session_id]
    assert f"{len(failed)} session(s) failed" in err


def test_sigterm_midway_leaves_no_lease_behind(database_url: str, api: str) -> None:
    assert run(database_url, api, "migrate", "-v", "0")[0] == 0
    ids = [f"ses_slow_{n:03}" for n in range(60)]
    GOOD.extend(ids)
    try:
        shell(database_url, api, REGISTER.format(ids=ids))
        Handler.delay = 0.2
        process = manage(database_url, api, "sync_verilock_sessions", "--concurrency", "2")
        deadline = time.monotonic() + 60
        while len(Handler.seen) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        del GOOD[-len(ids) :]

    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert "Interrupted by SIGTERM" in err
    rows = json.loads(shell(database_url, api, REPORT).splitlines()[-1])
    assert not [sid for sid, row in rows.items() if row[2]], "a lease was left behind"
    stored = [sid for sid, row in rows.items() if row[0]]
    assert 0 < len(stored) < len(ids)  # it really stopped midway, keeping what it stored
