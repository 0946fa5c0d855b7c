"""The example project (``example_project/``) as the suite runs it: ``manage.py`` in child
processes of this interpreter, configured through the environment its settings read."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .loopback import free_port

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "example_project" / "manage.py"


def project_env(database_url: str, api_url: str, key: str, **variables: str) -> dict[str, str]:
    """This process's environment with the example project's settings module (pytest-django
    exported the suite's own), ``DATABASE_URL``, the API's URL and key, and ``variables``."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo_site.settings",
        "DATABASE_URL": database_url,
        "VERILOCK_API_KEY": key,
        "VERILOCK_API_URL": api_url,
        **variables,
    }


def manage(
    env: Mapping[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``manage.py`` with ``args`` run to its end (at most ``timeout`` seconds), its output
    captured as text; the exit status is the caller's to check."""
    return subprocess.run(  # noqa: S603 (our own interpreter and manage.py)
        [sys.executable, str(MANAGE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextmanager
def runserver(env: Mapping[str, str], log: Path, *options: str) -> Iterator[int]:
    """``manage.py runserver`` (no reloader, plus ``options``) on a free loopback port inside
    the block, its output in the file ``log``; yields the port once it accepts connections.

    Raises ``AssertionError`` with the log when the server exits or does not listen within
    30 s. On the way out the server is terminated (killed after 10 s).
    """
    port = free_port()
    with log.open("w") as output:
        server = subprocess.Popen(  # noqa: S603 (our own interpreter and manage.py)
            [
                sys.executable,
                str(MANAGE),
                "runserver",
                f"127.0.0.1:{port}",
                "--noreload",
                *options,
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while server.poll() is None and not _accepts_connections(port):
                assert time.monotonic() < deadline, f"runserver did not listen:\n{log.read_text()}"
                time.sleep(0.05)
            assert server.poll() is None, log.read_text()
            yield port
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
