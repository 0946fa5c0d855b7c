"""Helpers of the end-to-end tests that start real worker processes on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from verilock_django.models import Session
from verilock_django.testing.server import FakeVerilockServer

ROOT = Path(__file__).resolve().parent.parent
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def require_postgresql() -> None:
    """Skip unless the suite runs on PostgreSQL (the coordination point of many workers)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): workers in several processes share it")


def require_redis() -> None:
    """Skip unless Redis answers on 127.0.0.1:6379."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1):
            pass
    except OSError:
        pytest.skip("needs Redis on 127.0.0.1:6379")


def worker_env(server: FakeVerilockServer, api_key: str, **extra: str) -> dict[str, str]:
    """The environment of a worker process: this test run's database, the fake API."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.worker_settings",
        PYTHONPATH=str(ROOT),
        VERILOCK_E2E_DATABASE_NAME=str(connection.settings_dict["NAME"]),
        VERILOCK_E2E_API_URL=server.url,
        VERILOCK_E2E_API_KEY=api_key,
        **extra,
    )
    return env


@contextmanager
def processes(
    commands: Sequence[Sequence[str]], env: dict[str, str]
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start ``commands`` as process groups; kill what is left of them on the way out."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        for command in commands:
            started.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                    list(command),
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            )
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            if process.stderr is not None:
                process.stderr.close()


def python(*args: str) -> list[str]:
    """A command line running this interpreter."""
    return [sys.executable, *args]


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.25 s; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def synced() -> int:
    """Sessions stored from a fetch at least once."""
    return Session.objects.filter(first_synced_at__isnull=False).count()


def unique_name(prefix: str) -> str:
    """A name no parallel run on this machine uses (queues, API keys)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
