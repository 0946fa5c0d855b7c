"""`scripts/demo.py` (what `make demo` runs): exit status, final table, nothing left running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    not (ROOT / "example_project" / "manage.py").exists(), reason="no example project"
)
def test_demo_runs_end_to_end_and_stops_its_processes(tmp_path: Path) -> None:
    database = tmp_path / "demo.sqlite3"
    completed = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--sessions", "12", "--database",
         str(database)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr
    # Sessions are created through the app: the start flow for one user, the service for
    # the others; then walked to their outcomes; then three made elsewhere are discovered.
    assert "user001 opens /payouts/ -> 302 to /verify/?next=%2Fpayouts%2F" in output
    assert "clicks 'Start verification' -> 302 to https://verilock.io/verify/" in output
    assert "Created 12 sessions through the app (POST /sessions)" in output
    assert output.count("$ manage.py sync_verilock_sessions\n") == 2
    decided = output.split("== 4.")[1].split("== 5.")[0].split("What changed:")[1]
    assert "processing -> approved" in decided and "processing -> declined" in decided
    assert "created -> expired" in decided
    assert "Discovered 3 new session(s)" in output
    table = output.split("== 6.")[1]
    assert table.count("\nses_") == 15
    assert re.search(r"Verified users: \d+ of 12", table)
    # Each step is shown by its outcome, so every declined session, of either shape, shows
    # the step that failed it (shape B's raw "completed" said nothing).
    declined = [
        row for row in table.splitlines() if re.match(r"ses_\S+\s+[AB]\s.* declined ", row)
    ]
    assert {row.split()[1] for row in declined} == {"A", "B"}
    assert all("FAIL" in row for row in declined), declined
    assert "Stopped the fake Verilock API" in output
    assert output.rstrip().endswith("every process it started has been stopped.")
    assert database.exists()
    pid = int(re.search(r"Fake Verilock API \(pid (\d+)\)", output)[1])  # type: ignore[index]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_demo_admin_ends_its_start_up_output_with_the_url_and_credentials(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--admin", "--admin-port", "0",
         "--sessions", "4", "--database", str(tmp_path / "demo.sqlite3")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("   password: "):
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        url = re.fullmatch(r"== Admin: (http://127\.0\.0\.1:\d+/admin/)\n", lines[-3])
        assert url, lines[-3:]
        assert lines[-2] == "   username: admin\n"
        # The server is up before the credentials are printed, and its log went elsewhere.
        with urllib.request.urlopen(url[1] + "login/", timeout=10) as response:  # noqa: S310
            assert response.status == 200
        # The server writes its access line just after answering: give it a moment.
        log = tmp_path / "demo-admin.log"
        deadline = time.monotonic() + 20
        while "GET /admin/login/" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        rest, errors = process.communicate(timeout=60)
    assert "Performing system checks" not in "".join(lines) + rest + errors
    assert "GET /admin/login/" in (tmp_path / "demo-admin.log").read_text()
    assert rest.startswith("\nInterrupted") or rest.startswith("Stopped"), rest
