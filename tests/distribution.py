"""Building this checkout's distributions and installing them into fresh virtualenvs.

Shared by the packaging test and the tutorial test (the ``dist`` fixture in ``conftest.py``
builds once per session). Both are slow: ``VERILOCK_SKIP_PACKAGING_TEST=1`` skips them
locally; CI always runs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SKIP_SLOW = pytest.mark.skipif(
    os.environ.get("VERILOCK_SKIP_PACKAGING_TEST") == "1",
    reason="VERILOCK_SKIP_PACKAGING_TEST=1 (the packaging test is slow; CI runs it)",
)


def run(*args: str | Path, cwd: Path | None = None, **env: str) -> str:
    """Run a command; fail the test with its output if it fails."""
    result = subprocess.run(  # noqa: S603 (our own interpreters and tools)
        [str(a) for a in args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout


def build_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding exactly one wheel and one sdist of this checkout."""
    given = os.environ.get("VERILOCK_DIST_DIR")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("dist")
    # No isolated build environment: setuptools comes with the dev tools, so no network.
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    return out


def only(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {dist}, found {found}"
    return found[0]


def install_into_new_venv(where: Path, requirement: str) -> Path:
    """A fresh virtualenv at ``where`` with ``requirement`` installed; returns its python.

    Dependencies come from uv's cache when it holds them (no network needed once the suite
    ran online), else from the package index.
    """
    run(sys.executable, "-m", "venv", "--without-pip", where)  # uv installs, not pip
    python = where / "bin" / "python"
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    install = [uv, "pip", "install", "--quiet", "--python", str(python), requirement]
    offline = subprocess.run([*install, "--offline"], capture_output=True, check=False)  # noqa: S603
    if offline.returncode != 0:
        run(*install)
    return python
