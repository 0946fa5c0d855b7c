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

**Where a walk ends.** Both walkers (:mod:`verilock_django.refresh`,
:mod:`verilock_django.discover`) read their pages through :func:`read_page`, which decides
the last page a walk may request; a walk never asks for more pages than the listing itself
shows to exist, whatever ``meta.last_page`` claims. For page *p* asked with ``per_page`` *n*,
the page size *s* is ``meta.per_page`` when it is a whole number from 1 to *n*; without one,
it is what page 1 held when that page is short of *n* while its meta says more pages follow
(``meta.last_page`` above 1 or ``meta.total`` above its items): a provider that ignores
``per_page`` serves its own page size, and its later pages are read with that size (the
walkers pass :attr:`Page.size` on); otherwise *s* is *n*.

* a page holding fewer than *s* items (an empty one included) is the last page;
* otherwise the last page is ``meta.last_page``, bounded by ``ceil(meta.total / s)``
  (at least 1) when ``meta.total`` is a whole number not below the items the pages up to
  this one hold (``(p - 1) * s + len(data)``); a smaller or garbled ``total`` is ignored,
  and so is a larger one on a short page that ``meta.last_page`` also calls the last.

A ``last_page`` beyond that bound (``10**30``, or just more pages than the items justify)
is the provider overstating its listing: the walk ends at the bound and says so in one log
line naming ``meta.last_page`` (page numbers only, never an item). That is not a failure:
the walk is complete and the refresh infers from it as usual. Two answers are unusable
(:class:`~verilock_django.exceptions.PayloadError`; the walkers treat them like a failed
request, so nothing is inferred and no by-id storm follows): a ``last_page`` that is not a
whole number of at least 1, and a short page before the last that ``meta.last_page``
claims while ``meta.total`` counts more items after it (both counts contradict the items:
what the listing left out cannot be known, so the refresh infers nothing from it).

**Whole numbers.** ``meta.last_page``, ``meta.per_page`` and ``meta.total`` are read as
whole numbers: a JSON integer, or a float with an integral value (``5.0``, as a provider
computing pages with a float division sends them; payloads are loosely typed), taken as
that integer. Anything else is not a whole number: a boolean, ``5.5``, NaN, infinity
(which is also how a JSON number beyond a float's range, ``1e400``, decodes) and a string,
even ``"5"``: the fields are numbers in the documented meta and in the SDK, a string there
is a different answer rather than a looser number, and reading one would mean choosing
among ``" 5"``, ``"5.0"``, ``"1e3"`` and non-ASCII digits; a count not read only bounds
less (the items still end the walk). Counts are kept as exact integers, whatever their size
(10**400), and bounds use whole-number division, never a float.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from django.db.models import CharField, F, Min, Q, Value
from django.db.models.expressions import Case, When

from .exceptions import PayloadError
from .models import Session, SessionQuerySet
from .payloads import COMPLETED_LIFECYCLE_STATUS, parse_session

logger = logging.getLogger(__name__)

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
    """One ``GET /sessions`` page as sent: its raw items, the last page the walk may request
    (1 or more, bounded as the module docstring says) and ``meta.total`` (``None`` when
    missing, not a count, or below the items the pages hold)."""

    data: list[Any]
    last_page: int
    total: int | None
    #: Items a full page holds (``per_page``, or the provider's own size, see the module
    #: docstring): passed to the next :func:`read_page` of the walk.
    size: int = field(default=LIST_PAGE_SIZE, compare=False)


def _whole(value: object) -> int | None:
    """``value`` as a whole number (an ``int``), else ``None``: see the module docstring.

    A float with an integral value becomes that integer, never a float bound: ``1e300``
    becomes an exact ``int``, so the bounds computed from it (whole-number division) cannot
    overflow or round.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def read_page(body: object, *, page: int, per_page: int, size: int | None = None) -> Page:
    """Check that ``body``, page ``page`` of a listing asked with ``per_page``, is a list page
    and read where the listing ends (see the module docstring); the items stay raw. ``size``
    is the page size an earlier page of the walk showed (:attr:`Page.size`), if any.

    Raises :class:`~verilock_django.exceptions.PayloadError` when it is not a usable page: no
    ``data`` list, no ``meta`` object, a ``meta.last_page`` that is not a whole number of at
    least 1 (a listing has a page 1 even when empty), or a short page before the claimed
    last one whose ``meta.total`` counts more items after it. The walks treat that like a
    failed request: such a page cannot say where the listing ends, so nothing is inferred.
    """
    data = body.get("data") if isinstance(body, dict) else None
    meta = body.get("meta") if isinstance(body, dict) else None
    if not isinstance(data, list) or not isinstance(meta, dict):
        raise PayloadError("(list body)", "expected 'data' (a list) and 'meta' (an object)")
    claimed = _whole(meta.get("last_page"))
    if claimed is None:
        raise PayloadError("meta.last_page", "expected a whole number")
    if claimed < 1:
        raise PayloadError("meta.last_page", "expected a page number of at least 1")
    served = _whole(meta.get("per_page"))
    total = _whole(meta.get("total"))
    if served is not None and 1 <= served <= per_page:
        size = served
    elif size is None:
        size = per_page
        more = claimed > 1 or (total is not None and total > len(data))
        if page == 1 and 0 < len(data) < per_page and more:
            size = len(data)  # the provider ignores per_page and serves its own page size
    held = (page - 1) * size + len(data)  # items on the pages up to this one
    short = len(data) < size
    if total is not None and (total < held or (short and total > held and page >= claimed)):
        total = None  # below what the pages hold, or outvoted by last_page and the items
    if short:
        if total is not None and total > held:
            raise PayloadError(
                "meta.total",
                f"counts more sessions than the pages hold: page {page} ended the listing early",
            )
        last_page = page
    else:
        # Whole-number division: a count may be beyond what a float holds (10**400).
        bound = claimed if total is None else max(1, -(-total // size))
        last_page = min(claimed, bound)
    if last_page == page < claimed:  # once per walk: on the page where it ends
        logger.warning(
            "meta.last_page claims more pages than the listing holds; ignored: page %d is "
            "its last, as its items and meta.total show.",
            page,
        )
    return Page(data, last_page, total, size)


def page_items(body: object, *, page: int, size: int | None = None) -> tuple[list[Item], Page]:
    """Page ``page``'s readable items (asked with :data:`LIST_PAGE_SIZE` per page) and the
    page as read (:class:`Page`: the last page the walk may request, ``meta.total``, the
    page size to pass as ``size`` for the walk's next page).

    Raises :class:`~verilock_django.exceptions.PayloadError` when the body is not a usable
    page (see :func:`read_page`). Unreadable items are skipped: if one is ours, the run
    treats it as not listed.
    """
    answer = read_page(body, page=page, per_page=LIST_PAGE_SIZE, size=size)
    items = []
    for raw in answer.data:
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
    return items, answer
