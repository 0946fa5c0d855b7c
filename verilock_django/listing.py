"""The batch refresh's list walks: which filtered listings cover the stored unfinished sessions.

``GET /sessions`` filters by ``status`` (one value per request) and by creation day
(``from``). A refresh walks one listing per status its stored unfinished sessions hold,
each from the day the oldest of them was created, so a walk costs what the *unfinished*
sessions need (``ceil(n/100)`` pages for n sessions in a status), not the account's whole
history. :func:`plan_walks` plans those walks from the database (one query);
:func:`page_items` reads one page.

The value sent as ``status`` is the provider's own word: a Gen B session that the API
reports ``completed`` with a ``decision`` is stored with its decision as status (see
:mod:`verilock_django.payloads`), so such rows are listed under ``completed``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import CharField, F, Min, Q, Value
from django.db.models.expressions import Case, When

from .exceptions import PayloadError
from .models import Session, SessionQuerySet
from .payloads import COMPLETED_LIFECYCLE_STATUS, parse_session

#: Items per list page: the API's maximum.
LIST_PAGE_SIZE = 100


@dataclass(frozen=True)
class Walk:
    """One filtered listing: ``status=`` value and ``from=`` day (``YYYY-MM-DD``)."""

    status: str
    created_from: str


@dataclass(frozen=True)
class Item:
    """One readable list item: its id, status and decision as the store would keep them
    (``status`` and ``decision`` are ``None`` when the item carries none: such an item
    confirms nothing), and the status word as listed."""

    id: str
    status: str | None
    decision: str | None
    listed_status: str


def list_status() -> Case:
    """The ``status`` word the API lists a stored session under (an SQL expression)."""
    completed = Q(status=F("decision")) & ~Q(decision="")
    return Case(
        When(completed, then=Value(COMPLETED_LIFECYCLE_STATUS)),
        default=F("status"),
        output_field=CharField(),
    )


def listed_as(queryset: SessionQuerySet, statuses: list[str]) -> SessionQuerySet:
    """``queryset``'s listable rows (with a ``created_at``) listed under ``statuses``."""
    return (
        queryset.filter(created_at__isnull=False)
        .annotate(list_status=list_status())
        .filter(list_status__in=statuses)
    )


def plan_walks() -> list[Walk]:
    """The listings covering every listable unfinished session, oldest ``from`` day first.

    One query (``GROUP BY`` the listed status). Rows never fetched have no ``created_at``
    and are not listable: the by-age phase fetches them.
    """
    rows = (
        Session.objects.unfinished()
        .filter(missing_since__isnull=True, created_at__isnull=False)
        .annotate(list_status=list_status())
        .order_by()
        .values("list_status")
        .annotate(oldest=Min("created_at"))
    )
    walks = []
    for row in sorted(rows, key=lambda r: (r["oldest"], r["list_status"])):
        oldest: dt.datetime = row["oldest"]
        if oldest.tzinfo is not None:
            oldest = oldest.astimezone(dt.timezone.utc)
        walks.append(Walk(row["list_status"], oldest.date().isoformat()))
    return walks


@dataclass(frozen=True)
class Page:
    """One ``GET /sessions`` page as sent: its raw items, ``meta.last_page`` (1 or more) and
    ``meta.total`` (0 when missing or not a count)."""

    data: list[Any]
    last_page: int
    total: int


def read_page(body: object) -> Page:
    """Check that ``body`` is a list page and read its pagination; the items stay raw.

    Raises :class:`~verilock_django.exceptions.PayloadError` when it is not a usable page: no
    ``data`` list, no ``meta`` object, or a ``meta.last_page`` that is not a whole number of
    at least 1 (a listing has a page 1 even when empty). The walks treat that like a failed
    request: such a page cannot say where the listing ends, so nothing is inferred from it.
    """
    data = body.get("data") if isinstance(body, dict) else None
    meta = body.get("meta") if isinstance(body, dict) else None
    if not isinstance(data, list) or not isinstance(meta, dict):
        raise PayloadError("(list body)", "expected 'data' (a list) and 'meta' (an object)")
    last_page, total = meta.get("last_page"), meta.get("total", 0)
    if isinstance(last_page, bool) or not isinstance(last_page, int):
        raise PayloadError("meta.last_page", "expected a number")
    if last_page < 1:
        raise PayloadError("meta.last_page", "expected a page number of at least 1")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        total = 0
    return Page(data, last_page, total)


def page_items(body: object) -> tuple[list[Item], int]:
    """A list page's readable items and its last page number.

    Raises :class:`~verilock_django.exceptions.PayloadError` when the body is not a usable
    page (see :func:`read_page`). Unreadable items are skipped: if one is ours, the run
    treats it as not listed.
    """
    page = read_page(body)
    data, last_page = page.data, page.last_page
    items = []
    for raw in data:
        try:
            parsed = parse_session(raw)
        except PayloadError:
            continue
        listed = raw.get("status")
        decision = raw.get("decision")
        items.append(
            Item(
                parsed.id,
                parsed.status,
                parsed.decision if isinstance(decision, str) and decision else None,
                listed if isinstance(listed, str) else "",
            )
        )
    return items, last_page
