"""`scripts/demo.py` (what `make demo` runs): exit status, final table, nothing left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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
    assert "Registered 12 sessions locally as pending" in output
    assert output.count("$ manage.py sync_verilock_sessions") == 2
    changes = output.split("What changed:")[1].split("The fake API served")[0]
    assert "-> approved" in changes or "-> declined" in changes
    table = output.split("== 5.")[1]
    assert table.count("\nses_") == 12
    assert "Stopped the fake Verilock API" in output
    assert output.rstrip().endswith("every process it started has been stopped.")
    assert database.exists()
    pid = int(re.search(r"Fake Verilock API \(pid (\d+)\)", output)[1])  # type: ignore[index]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
