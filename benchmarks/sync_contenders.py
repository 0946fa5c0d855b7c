"""The contenders of ``bench_sync.py``, each run in a subprocess of its own.

    python benchmarks/sync_contenders.py CONTENDER DATABASE API_URL

configures Django for ``DATABASE`` (a SQLite file or a ``postgres://`` URL) and the fake
API at ``API_URL``, runs the contender (``floor``, ``app``, ``naive`` or ``sdk``, see
``bench_sync.py``) with ``BENCH_CONCURRENCY`` requests in flight, and prints its figures
as one line of JSON: wall and CPU time, sessions written, statements and round trips (every
statement plus each transaction's ``BEGIN`` and ``COMMIT``, on every connection), peak RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from benchsetup import API_KEY, configure_django

ROOT = Path(__file__).resolve().parent.parent
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def configure(database: str, api_url: str = "http://127.0.0.1:9/api/v1") -> None:
    """Settings for a standalone contender process: the app and one database."""
    configure_django(database, VERILOCK_API_URL=api_url, VERILOCK_MAX_RETRIES=0)


# -- the contenders (run in a subprocess) ---------------------------------------------


def concurrency() -> int:
    return int(os.environ["BENCH_CONCURRENCY"])


def run_app() -> int:
    """The app's command; returns the number of sessions written."""
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("sync_verilock_sessions", stdout=out, concurrency=concurrency())
    summary = out.getvalue().strip()
    print(summary, file=sys.stderr)
    return int(summary.split(" changed")[0].rsplit(" ", 1)[-1])


def run_floor() -> int:
    """The app's requests through the app's client, nothing stored; returns answers got."""
    from django.db.models import Min

    from verilock_django.client import get_client
    from verilock_django.models import Session
    from verilock_django.refresh import LIST_PAGE_SIZE

    client = get_client()
    stored = dict(Session.objects.unfinished().values_list("id", "status"))
    oldest = Session.objects.unfinished().aggregate(oldest=Min("created_at"))["oldest"]
    created_from = oldest.astimezone(dt.timezone.utc).date().isoformat()
    answers = 0
    limit = concurrency()
    depth = 4 * limit  # the app's queue depth (SyncPipeline.queue_depth)
    with ThreadPoolExecutor(limit) as pool:
        in_flight: set[Any] = set()
        page, last_page = 1, 1
        while page <= last_page:
            body = client.list_sessions(
                page=page, per_page=LIST_PAGE_SIZE, created_from=created_from
            )
            last_page = body["meta"]["last_page"]
            for item in body["data"]:
                if item["id"] in stored and item["status"] != stored[item["id"]]:
                    while len(in_flight) >= depth:
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        answers += sum(1 for future in done if future.result())
                    in_flight.add(pool.submit(client.get_session, item["id"]))
            page += 1
        answers += sum(1 for future in in_flight if future.result())
    return answers


def run_naive() -> int:
    """One request, then ``store_session``, per unfinished session, in turn."""
    from verilock_django.client import get_client
    from verilock_django.models import Session
    from verilock_django.store import Outcome, store_session

    client = get_client()
    written = 0
    ids = list(Session.objects.unfinished().order_by("id").values_list("id", flat=True))
    limit = int(os.environ.get("BENCH_NAIVE_SESSIONS") or len(ids))
    for session_id in ids[:limit]:
        result = store_session(client.get_session(session_id), requested_id=session_id)
        written += result.outcome in (Outcome.CREATED, Outcome.UPDATED)
    return written


def run_sdk() -> int:
    """The official SDK, async with C requests in flight; a plain ORM write per answer."""
    from asgiref.sync import sync_to_async
    from django.conf import settings
    from verilock import AsyncVerilock

    from verilock_django.models import Session, StepResult

    ids = list(Session.objects.unfinished().values_list("id", flat=True))
    root = settings.VERILOCK_API_URL.removesuffix("/api/v1")

    def write(data: dict[str, Any]) -> bool:
        session = Session.objects.get(pk=data["id"])
        if session.status == data["status"]:
            return False
        session.status = data["status"]
        session.completed_at = data.get("completed_at")
        session.payload = data
        session.save()
        for step, result in (data.get("results") or {}).items():
            StepResult.objects.update_or_create(
                session=session,
                step=step,
                defaults={
                    "status": result.get("status", ""),
                    "score": result.get("score"),
                    "details": result.get("details") or {},
                    "payload": result,
                },
            )
        return True

    async def main() -> int:
        gate = asyncio.Semaphore(concurrency())
        store = sync_to_async(write, thread_sensitive=True)
        async with AsyncVerilock(api_key=API_KEY, base_url=root, max_retries=0) as sdk:

            async def one(session_id: str) -> bool:
                async with gate:
                    data = await sdk.sessions.retrieve(session_id)
                return await store(data)

            return sum(await asyncio.gather(*(one(session_id) for session_id in ids)))

    return asyncio.run(main())


CONTENDERS: dict[str, Callable[[], int]] = {
    "floor": run_floor,
    "app": run_app,
    "naive": run_naive,
    "sdk": run_sdk,
}


def child(contender: str, database: str, api_url: str) -> None:
    """Subprocess entry: run one contender and print its figures as JSON."""
    configure(database, api_url)
    from django.db import connection
    from django.db.backends.signals import connection_created

    counts = {"statements": 0, "commits": 0}

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if not sql.lstrip().upper().startswith(TRANSACTION_CONTROL):
            counts["statements"] += 1
        return execute(sql, params, many, context)

    def instrument(sender: Any, connection: Any, **kwargs: Any) -> None:
        """Count on every connection, whatever thread opens it (``sync_to_async``'s too)."""
        connection.execute_wrappers.append(count)
        real_commit = connection._commit

        def commit() -> None:
            counts["commits"] += 1
            real_commit()

        connection._commit = commit

    connection_created.connect(instrument)
    connection.ensure_connection()
    started = time.perf_counter()
    written = CONTENDERS[contender]()
    wall = time.perf_counter() - started
    statements, commits = counts["statements"], counts["commits"]
    print(
        json.dumps(
            {
                "wall": wall,
                "written": written,
                "statements": statements,
                # BEGIN and COMMIT of each transaction.
                "round_trips": statements + 2 * commits,
                "rss_kb": peak_rss_kb(),
                "cpu": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
            }
        )
    )


def peak_rss_kb() -> int:
    """This process's peak resident set size, in KiB.

    Not ``getrusage().ru_maxrss``: Linux carries it across ``execve``, so a subprocess
    would report the peak of the (large) parent it was forked from.
    """
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; other Unixes


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    child(*sys.argv[1:4])
