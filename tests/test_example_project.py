"""The example project runs the real command against an HTTP server on a loopback port."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from . import example_site
from .conftest import SEED_ID, SEED_PATH
from .loopback import serving

KEY = "qi_test_example"


class SeedHandler(BaseHTTPRequestHandler):
    """Answers the seed for its id when the key is right; counts requests."""

    requests_seen: list[str] = []

    def do_GET(self) -> None:
        type(self).requests_seen.append(self.path)
        if (
            self.headers.get("X-API-Key") != KEY
            and self.headers.get("Authorization") != f"Bearer {KEY}"
        ):
            self._send(
                401, {"error": "authentication_error", "message": "Invalid or missing API key."}
            )
        elif self.path == f"/api/v1/sessions/{SEED_ID}":
            self._send(200, json.loads(SEED_PATH.read_text()))
        else:
            self._send(
                404, {"error": "not_found", "message": "Session not found.", "details": None}
            )

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Request-Id", "req_example")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def seed_server() -> Iterator[str]:
    SeedHandler.requests_seen = []
    with serving(SeedHandler) as root:
        yield f"{root}/api/v1"


def manage(
    tmp_path: Path, api_url: str, *args: str, key: str = KEY
) -> subprocess.CompletedProcess[str]:
    env = example_site.project_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", api_url, key)
    return example_site.manage(env, *args)


def counts(tmp_path: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as db:
        sessions = db.execute("select count(*) from verilock_django_session").fetchone()[0]
        steps = db.execute("select count(*) from verilock_django_stepresult").fetchone()[0]
    return sessions, steps


def test_command_in_example_project_mirrors_the_seed(tmp_path: Path, seed_server: str) -> None:
    assert manage(tmp_path, seed_server, "migrate", "-v", "0").returncode == 0

    first = manage(tmp_path, seed_server, "sync_verilock_sessions", SEED_ID)
    assert first.returncode == 0, first.stderr
    assert "1 changed (1 new)" in first.stdout
    assert counts(tmp_path) == (1, 5)
    with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as db:
        row = db.execute(
            "select status, reference_id, applicant_last_name, applicant_nationality"
            " from verilock_django_session"
        ).fetchone()
        scores = db.execute(
            "select step, score from verilock_django_stepresult order by position"
        ).fetchall()
    assert row == ("approved", "usr_12345", "Dupont", "FR")
    assert scores == [
        ("document", None),
        ("selfie", None),
        ("face_match", 0.97),
        ("liveness", 0.99),
        ("aml", 0.02),
    ]

    second = manage(tmp_path, seed_server, "sync_verilock_sessions", SEED_ID)
    assert second.returncode == 0, second.stderr
    assert "0 changed" in second.stdout
    assert counts(tmp_path) == (1, 5)
    assert len(SeedHandler.requests_seen) == 2


def test_wrong_key_aborts_with_one_message(tmp_path: Path, seed_server: str) -> None:
    manage(tmp_path, seed_server, "migrate", "-v", "0")
    result = manage(
        tmp_path, seed_server, "sync_verilock_sessions", SEED_ID, "ses_other", key="wrong"
    )
    assert result.returncode != 0
    assert "refused the API key" in result.stderr
    assert "wrong" not in result.stderr + result.stdout
    assert len(SeedHandler.requests_seen) == 1
