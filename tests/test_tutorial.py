"""``docs/tutorial.md`` works as written: its commands run in a fresh virtualenv.

The blocks marked in the Markdown are assembled, in order, into one bash script:
``<!-- tutorial: run -->`` runs the block; ``<!-- tutorial: append PATH -->`` appends the
block to a file; ``<!-- tutorial: background PORT -->`` starts the block in the background
(the tutorial's "second terminal") and waits until PORT accepts connections; the
``<!-- tutorial: install -->`` block is replaced by activating a virtualenv where this
checkout's wheel was installed (with uv, from its cache first, as the packaging test does).
The tutorial's ports are swapped for free ones. The script must succeed, and the admin it
leaves running must show the applicant approved to the superuser it created.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from .distribution import ROOT, SKIP_SLOW, install_into_new_venv, only
from .loopback import free_port

pytestmark = SKIP_SLOW

TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(
    r"<!-- tutorial: (?P<kind>\w+) ?(?P<arg>[^>]*?) -->\n```\w*\n(?P<body>.*?)```", re.S
)
TUTORIAL_PORTS = ("8765", "8000")

PRELUDE = """
wait_for_port() {
    python - "$1" <<'PY'
import socket, sys, time
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0:
            sys.exit(0)
    time.sleep(0.1)
sys.exit(f"nothing listens on port {sys.argv[1]}")
PY
}
"""


def blocks() -> list[tuple[str, str, str]]:
    """``(kind, argument, body)`` of every marked block, in document order."""
    return [(m["kind"], m["arg"].strip(), m["body"]) for m in BLOCK.finditer(TUTORIAL.read_text())]


def script(venv: Path, ports: dict[str, str]) -> str:
    """The tutorial as one bash script run from the project folder."""
    lines = ["set -euo pipefail", PRELUDE]
    for kind, argument, body in blocks():
        for theirs, ours in ports.items():
            body = body.replace(theirs, ours)
        if kind == "install":
            lines.append(f'. "{venv}/bin/activate"')
        elif kind == "run":
            lines.append(body)
        elif kind == "append":
            lines.append(f"cat >> {argument} <<'TUTORIAL_EOF'\n{body}TUTORIAL_EOF")
        elif kind == "background":
            lines += [f"( {body.strip()} ) > background-{argument}.log 2>&1 &", ""]
            lines.append(f"wait_for_port {ports[argument]}")
        else:
            raise AssertionError(f"unknown tutorial marker {kind!r}")
    return "\n".join(lines) + "\n"


def test_the_tutorial_has_every_step_marked() -> None:
    kinds = [kind for kind, _, _ in blocks()]
    assert kinds[0] == "install"
    assert kinds.count("append") == 1 and kinds.count("background") == 2
    assert kinds.count("run") >= 6
    # Every fenced block of commands or code in the tutorial is one the test runs.
    fences = TUTORIAL.read_text().count("```bash") + TUTORIAL.read_text().count("```python")
    assert fences == len(kinds)


def admin_page(port: str, path: str, username: str, password: str) -> str:
    """Log into the admin as a person would (login form, CSRF cookie) and fetch ``path``."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    base = f"http://127.0.0.1:{port}/admin/"
    login = opener.open(base + "login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login)
    assert token, login[:2000]
    form = {"csrfmiddlewaretoken": token[1], "username": username, "password": password,
            "next": f"/admin/{path}"}  # fmt: skip
    request = urllib.request.Request(  # noqa: S310 - loopback
        base + "login/",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Referer": base + "login/"},
    )
    return str(opener.open(request, timeout=30).read().decode())


def test_the_tutorial_ends_with_an_approved_applicant_in_the_admin(
    dist: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    install_into_new_venv(venv, str(only(dist, "verilock_django-*.whl")))
    project = tmp_path / "kyc-tutorial"
    project.mkdir()
    ports = {port: str(free_port()) for port in TUTORIAL_PORTS}
    (tmp_path / "tutorial.sh").write_text(script(venv, ports))
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",
           "PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL")}  # fmt: skip
    log = tmp_path / "tutorial.log"
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603
            ["bash", str(tmp_path / "tutorial.sh")],  # noqa: S607
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the background servers too: stopped as one group
        )
    try:
        assert process.wait(timeout=600) == 0, log.read_text()
        output = log.read_text()
        page = admin_page(ports["8000"], "verilock_django/session/", "admin", "tutorial-only")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)

    assert "1 fetched: 1 changed (1 new), 0 unchanged, 0 failed; 1 request in" in output
    assert "1 fetched: 1 changed (0 new), 0 unchanged, 0 failed; 2 requests in" in output
    assert "System check identified no issues" in output
    assert "ses_tutorial_ada" in page
    assert "Ada Lovelace" in page
    assert re.search(r">\s*[Aa]pproved\s*<", page), page[:3000]
