"""One-command demo: the example project verifying its users against a local fake Verilock API.

``make demo`` runs ``python scripts/demo.py``; ``make demo-admin`` adds ``--admin``.
No network and no credentials are needed. Steps:

1. start the fake Verilock API (``python -m verilock_django.testing.server``) on a free
   loopback port, with no session at all; migrate a fresh SQLite database of the example
   project (``example_project/demo.sqlite3``);
2. sign up a few dozen users and start their verification *through the app*: the first one
   clicks through the start flow (``/payouts/`` → ``/verify/`` → Verilock's hosted page), the
   others get a session from ``create_session`` (``POST /sessions``, both request shapes);
3. walk the sessions to their outcomes on the fake server (through its control API: the
   applicants send their documents, Verilock approves, declines or lets a link expire) and run
   ``manage.py sync_verilock_sessions`` after each move; print what changed;
4. create a few sessions on the fake directly (a back office, "elsewhere") and import them
   with ``manage.py sync_verilock_sessions --discover``;
5. print a table of sessions with their step outcomes, and who is verified;
6. with ``--admin``: create a superuser, print its credentials and serve the admin on
   127.0.0.1 (the fake keeps running, advances sessions every minute and sends signed
   webhooks to the example project) until Ctrl-C.

Every process started here is stopped on exit, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
MANAGE = EXAMPLE / "manage.py"
DEMO_DB = EXAMPLE / "demo.sqlite3"
API_KEY = "qi_test_demo_key"
WEBHOOK_SECRET = "whsec_demo_" + "0123456789abcdef"
PROFILE_ID = "5f2b9c1e-3d4a-4b6c-8e7f-0a1b2c3d4e5f"
READY_LINE = re.compile(r"Fake Verilock API listening on (?P<url>http://127\.0\.0\.1:\d+/api/v1)")
# The stored outcome of each step (StepResult.outcome), the same verdict the admin shows: both
# shapes read alike, though shape B (the SDK read model) sends no per-step verdict of its own.
STEP_MARKS = {
    "passed": "ok",
    "failed": "FAIL",
    "needs_review": "review",
    "pending": "...",
    "not_started": "-",
    "other": "?",
}
NAMES = (
    ("Jean", "Dupont"), ("Amelia", "Clarke"), ("Lukas", "Schmidt"), ("Sofia", "Rossi"),
    ("Mateo", "Garcia"), ("Emma", "Jansen"), ("Noah", "Peeters"), ("Maja", "Nowak"),
)  # fmt: skip
STEPS = ("document", "selfie", "face_match", "liveness", "aml")


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which."""


def say(text: str = "") -> None:
    """Print one line of the demo's narration, flushed (subprocess output interleaves)."""
    print(text, flush=True)


def free_port() -> int:
    """Ask the OS for a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_process(process: subprocess.Popen[Any], name: str) -> None:
    """Terminate a child politely, then forcefully; never leave it running."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    say(f"Stopped {name} (pid {process.pid}).")


@contextmanager
def fake_api(*, admin_port: int | None) -> Iterator[str]:
    """Run the fake API in a child process; yield its base URL."""
    command = [
        sys.executable,
        "-m",
        "verilock_django.testing.server",
        "--port",
        "0",
        "--api-key",
        API_KEY,
        "--seed",
        "0",
        "--shape",
        "mixed",
        "--rate-limit-per-minute",
        "600",
    ]
    if admin_port is not None:
        # While a person clicks around, sessions keep moving and push signed webhooks.
        command += [
            "--auto-advance-seconds",
            "60",
            "--webhook-url",
            f"http://127.0.0.1:{admin_port}/verilock/webhook/",
            "--webhook-secret",
            WEBHOOK_SECRET,
        ]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = READY_LINE.search(line)
        if not match:
            errors = process.stderr.read() if process.stderr and process.poll() else ""
            raise DemoError(f"The fake API did not start: {line.strip()} {errors.strip()}")
        say(f"Fake Verilock API (pid {process.pid}) at {match['url']}")
        yield match["url"]
    finally:
        stop_process(process, "the fake Verilock API")


def control(root_url: str, path: str, data: Mapping[str, Any] | None = None) -> Any:
    """Call the fake's control API (``/_fake/...``; POST when ``data`` is given)."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{root_url}/_fake{path}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.load(response)


def manage(env: Mapping[str, str], *args: str, check: bool = True) -> int:
    """Run ``example_project/manage.py`` with the demo environment."""
    say(f"$ manage.py {' '.join(args)}")
    completed = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, str(MANAGE), *args], cwd=EXAMPLE, env=dict(env), check=False
    )
    if check and completed.returncode != 0:
        raise DemoError(f"manage.py {args[0]} exited with status {completed.returncode}")
    return completed.returncode


def setup_django(env: Mapping[str, str]) -> None:
    """Configure Django in this process for the example project (ORM for rows and table)."""
    os.environ.update(env)
    sys.path[:0] = [str(EXAMPLE), str(ROOT)]
    import django

    django.setup()


def snapshot() -> dict[str, str]:
    """Map session id to its stored status ('' for a pending row)."""
    from verilock_django.models import Session

    return dict(Session.objects.values_list("id", "status"))


def print_table(out: IO[str] = sys.stdout) -> None:
    """Print every stored session with its per-step outcome."""
    from verilock_django.models import Session

    header = (
        f"{'session':<14} {'shape':<5} {'applicant':<18} {'status':<11} {'decision':<9}"
        + "".join(f" {step:<10}" for step in STEPS)
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for session in Session.objects.prefetch_related("results").order_by("status", "id"):
        outcomes = {result.step: result.outcome for result in session.results.all()}
        marks = "".join(f" {STEP_MARKS.get(outcomes.get(step, ''), ''):<10}" for step in STEPS)
        name = f"{session.applicant_first_name} {session.applicant_last_name}".strip()
        shape = "A" if "results" in session.payload else "B" if session.payload else ""
        print(
            f"{session.id[:13]:<14} {shape:<5} {name[:18]:<18} {session.status or 'pending':<11} "
            f"{session.decision or '':<9}{marks}",
            file=out,
        )
    legend = ", ".join(f"{mark} = {outcome}" for outcome, mark in STEP_MARKS.items())
    print(
        f"\nStep columns: the step's outcome ({legend}; blank = no such step), read from"
        " Verilock's statuses, decision and decline reason as the admin reads them.",
        file=out,
    )


def print_changes(before: Mapping[str, str], after: Mapping[str, str]) -> int:
    """Print the sessions whose status changed; return how many."""
    changed = sorted(sid for sid in after if before.get(sid) != after[sid])
    for sid in changed:
        say(f"  {sid}: {before.get(sid) or 'pending'} -> {after[sid] or 'pending'}")
    if not changed:
        say("  (nothing changed)")
    return len(changed)


def sign_up_and_start(count: int) -> list[str]:
    """Create ``count`` users and start their verification through the app; return the ids."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from verilock_django.create import create_session
    from verilock_django.models import Session

    users = [
        get_user_model().objects.create_user(
            f"user{number:03d}",
            email=f"user{number:03d}@example.com",
            first_name=first,
            last_name=last,
        )
        for number, (first, last) in enumerate(
            (NAMES[i % len(NAMES)] for i in range(count)), start=1
        )
    ]
    # The first user clicks through the start flow, as in a browser.
    browser = Client()
    browser.force_login(users[0])
    guarded = browser.get("/payouts/")
    say(f"user001 opens /payouts/ -> {guarded.status_code} to {guarded['Location']}")
    started = browser.post("/verify/", {"next": "/payouts/"})
    say(f"user001 clicks 'Start verification' -> {started.status_code} to {started['Location']}")
    # The others get a session from the service; every other one in the older request shape.
    for index, user in enumerate(users[1:], start=1):
        create_session(
            user=user,
            redirect_url="http://127.0.0.1:8000/verify/return/",
            shape="a" if index % 2 else "b",
        )
    ids = list(Session.objects.order_by("user__username").values_list("id", flat=True))
    say(f"Created {len(ids)} sessions through the app (POST /sessions), each linked to its user.")
    return ids


def walk_to_outcomes(root_url: str, ids: list[str], env: Mapping[str, str]) -> None:
    """Move the sessions on the fake server step by step, syncing after each move."""
    say("\n== 3. Applicants send their documents (created -> processing); one never does")
    idle, active = ids[-1], ids[:-1]
    control(root_url, "/advance", {"ids": active})
    before = snapshot()
    manage(env, "sync_verilock_sessions")
    say("What changed:")
    print_changes(before, snapshot())

    say("\n== 4. Verilock decides")
    declined = active[2::5]
    for session_id in declined:
        control(root_url, f"/sessions/{session_id}/complete", {"status": "declined"})
    control(root_url, "/advance", {"ids": [sid for sid in active if sid not in declined]})
    control(root_url, f"/sessions/{idle}/expire", {})
    say(f"Declined {len(declined)}, approved the others, expired {idle} (never finished).")
    # One transient 503 on the way: the client retries it and the sync still succeeds.
    control(root_url, "/faults", {"kind": "status", "status": 503, "session_id": active[0]})
    say(f"Injected one 503 for {active[0]} (the client retries it).")
    before = snapshot()
    manage(env, "sync_verilock_sessions")
    say("What changed:")
    print_changes(before, snapshot())


def print_verified() -> None:
    """Print how many users are verified, as the app's helper answers it."""
    from django.contrib.auth import get_user_model

    from verilock_django.users import is_verified

    users = list(get_user_model().objects.order_by("username"))
    verified = [user.username for user in users if is_verified(user)]
    say(f"Verified users: {len(verified)} of {len(users)} (verilock_django.users.is_verified).")


def run_demo(args: argparse.Namespace) -> None:
    """Run the whole demo; raise DemoError if a step fails."""
    admin_port = (args.admin_port or free_port()) if args.admin else None
    with fake_api(admin_port=admin_port) as api_url:
        root_url = api_url.removesuffix("/api/v1")
        database: Path = args.database
        database.unlink(missing_ok=True)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "demo_site.settings",
            "DATABASE_URL": f"sqlite:///{database.resolve()}",
            "VERILOCK_API_URL": api_url,
            "VERILOCK_API_KEY": API_KEY,
            "VERILOCK_WEBHOOK_SECRETS": WEBHOOK_SECRET,
            "VERILOCK_PROFILE_ID": PROFILE_ID,
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "PYTHONUNBUFFERED": "1",
        }
        say(f"\n== 1. Fresh example database: {database}")
        manage(env, "migrate", "--verbosity", "0")
        setup_django(env)

        say("\n== 2. Users sign up and start their verification through the app")
        ids = sign_up_and_start(args.sessions)

        walk_to_outcomes(root_url, ids, env)

        say("\n== 5. Sessions created elsewhere (a back office) are discovered")
        made = control(root_url, "/sessions", {"count": 3, "status": "approved"})
        say(f"Created {len(made['ids'])} sessions directly at Verilock.")
        manage(env, "sync_verilock_sessions", "--discover")
        stats = control(root_url, "/stats")
        say(f"The fake API served {stats['total_requests']} requests in total.")

        say("\n== 6. Sessions and step outcomes")
        print_table()
        print_verified()

        if args.admin:
            serve_admin(env, admin_port or free_port(), database.parent / "demo-admin.log")


def serve_admin(env: Mapping[str, str], port: int, log_path: Path) -> None:
    """Create a superuser, serve the admin until Ctrl-C; the URL and credentials come last.

    The server's banner and request log go to ``log_path``, so nothing scrolls the
    credentials away.
    """
    from django.contrib.auth import get_user_model

    username, password = "admin", secrets.token_urlsafe(9)
    user_model = get_user_model()
    user_model.objects.filter(username=username).delete()
    user_model.objects.create_superuser(username, "admin@example.com", password)
    admin_env = {**env, "DEBUG": "1", "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
            [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=EXAMPLE,
            env=admin_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process, log_path)
        say(f"\nThe admin server logs to {log_path}.")
        say("Sessions still in progress advance every minute; press Ctrl-C to stop.")
        say(f"\n== Admin: http://127.0.0.1:{port}/admin/")
        say(f"   username: {username}")
        say(f"   password: {password}")
        while process.poll() is None:
            time.sleep(0.5)
        raise DemoError(
            f"The admin server exited with status {process.returncode} (see {log_path})"
        )
    finally:
        stop_process(process, "the admin server")


def wait_for_port(
    port: int, process: subprocess.Popen[Any], log_path: Path, timeout: float = 30.0
) -> None:
    """Return once ``port`` accepts connections; raise DemoError if the server died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(
                f"The admin server exited with status {process.returncode} (see {log_path})"
            )
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise DemoError(f"The admin server did not start within {timeout:.0f}s (see {log_path})")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 on success, 130 on Ctrl-C)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sessions", type=int, default=36, help="users who start a verification (at least 3)"
    )
    parser.add_argument("--admin", action="store_true", help="then serve the admin")
    parser.add_argument("--admin-port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument(
        "--database", type=Path, default=DEMO_DB, help="SQLite file (recreated on each run)"
    )
    args = parser.parse_args(argv)
    if args.sessions < 3:
        parser.error("--sessions must be at least 3")
    if args.admin and args.admin_port and not _port_free(args.admin_port):
        say(f"Port {args.admin_port} is busy; picking a free one.")
        args.admin_port = 0
    # Explicit handlers: a shell may start us with SIGINT ignored (background jobs).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_demo(args)
    except KeyboardInterrupt:
        say("\nInterrupted; everything started by the demo was stopped.")
        return 0 if args.admin else 130
    except DemoError as exc:
        say(f"\nDemo failed: {exc}")
        return 1
    say("\nDemo finished; every process it started has been stopped.")
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM behaves like Ctrl-C, so the `finally` blocks stop the children either way.
    raise KeyboardInterrupt


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
