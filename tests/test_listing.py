"""Where a list walk ends: both walkers (refresh, discovery) request only the pages the
listing holds, whatever ``meta.last_page`` claims; a listing contradicting its own count is
unusable and nothing is inferred from it."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from verilock_django.client import VerilockClient
from verilock_django.discover import discover_sessions
from verilock_django.exceptions import PayloadError
from verilock_django.listing import Page, read_page
from verilock_django.models import Session
from verilock_django.refresh import refresh_unfinished
from verilock_django.store import store_session
from verilock_django.testing.responses_api import InProcessVerilock

pytestmark = pytest.mark.django_db

HUGE = 10**30
#: More list requests than any walk here needs: past it the walker is looping on a lie.
MAX_LIST_REQUESTS = 20


class EditingClient(VerilockClient):
    """A client that lets ``edit(page, body)`` rewrite each list page the fake answered."""

    def __init__(self, edit: Callable[[int, dict[str, Any]], None]) -> None:
        super().__init__()
        self.edit = edit
        self.pages: list[int] = []

    def list_sessions(self, *, page: int = 1, **kwargs: Any) -> dict[str, Any]:
        self.pages.append(page)
        assert len(self.pages) <= MAX_LIST_REQUESTS, "the walk does not stop"
        body = super().list_sessions(page=page, **kwargs)
        self.edit(page, body)
        return body


def claim_pages(last_page: int, *, drop_total: bool = False) -> Callable[..., None]:
    """An edit that makes every page claim ``last_page`` (and hides ``meta.total``)."""

    def edit(page: int, body: dict[str, Any]) -> None:
        body["meta"]["last_page"] = last_page
        if drop_total:
            del body["meta"]["total"]

    return edit


def empty_page(number: int) -> Callable[..., None]:
    """An edit that empties page ``number``, its meta kept as sent."""

    def edit(page: int, body: dict[str, Any]) -> None:
        if page == number:
            body["data"] = []

    return edit


def mirror(api: InProcessVerilock, count: int) -> list[str]:
    """``count`` processing sessions at the fake, stored locally as a past sync left them."""
    yesterday = timezone.now() - dt.timedelta(days=1)
    ids = [
        api.add_session(status="processing", created_at=yesterday + dt.timedelta(seconds=i)).id
        for i in range(count)
    ]
    for session_id in ids:
        store_session(api.payload(session_id), fetched_at=timezone.now())
    api.reset_counters()
    return ids


def by_id_requests(api: InProcessVerilock) -> int:
    return sum(1 for r in api.requests if r.session_id)


# -- the rule, page by page ------------------------------------------------------------


def body(items: int, **meta: object) -> dict[str, Any]:
    return {"data": [{"id": f"ses_{i}"} for i in range(items)], "meta": meta}


@pytest.mark.parametrize(
    ("page", "answer", "last_page", "total"),
    [
        # An overstated last_page is bounded by the count...
        (1, body(100, last_page=HUGE, per_page=100, total=250), 3, 250),
        (1, body(40, last_page=HUGE, per_page=100, total=40), 1, 40),
        (1, body(0, last_page=HUGE, per_page=100, total=0), 1, 0),
        # ...and by a short page, with or without a count.
        (3, body(50, last_page=HUGE), 3, None),
        (2, body(0, last_page=HUGE), 2, None),
        # A count above last_page does not lengthen the walk; on a short last page it is
        # outvoted by last_page and the items.
        (1, body(100, last_page=2, total=HUGE), 2, HUGE),
        pytest.param(1, body(100, last_page=2, total=10**400), 2, 10**400, id="1e400"),
        (2, body(50, last_page=2, total=HUGE), 2, None),
        # A count below the items the pages hold, or not a count, bounds nothing.
        (2, body(100, last_page=5, total=150), 5, None),
        (1, body(100, last_page=5, total="250"), 5, None),
        (1, body(100, last_page=5, total=-1), 5, None),
        # The served page size counts when it is at most what was asked.
        (1, body(15, last_page=HUGE, per_page=15, total=40), 3, 40),
        (1, body(100, last_page=HUGE, per_page=HUGE, total=250), 3, 250),
    ],
)
def test_the_last_page_is_what_the_listing_holds_not_what_it_claims(
    page: int, answer: dict[str, Any], last_page: int, total: int | None
) -> None:
    assert read_page(answer, page=page, per_page=100) == Page(answer["data"], last_page, total)


@pytest.mark.parametrize(
    ("meta", "last_page", "total", "size"),
    [
        # A float with an integral value is that whole number...
        ({"last_page": 5.0, "per_page": 100, "total": 450}, 5, 450, 100),
        ({"last_page": 5, "per_page": 15.0, "total": 40.0}, 3, 40, 15),
        # ...kept exact, however large: the bound is whole-number division of an int.
        ({"last_page": 1e300, "total": 1e300}, -(-int(1e300) // 100), int(1e300), 100),
        ({"last_page": 1e300}, int(1e300), None, 100),
        ({"last_page": 2, "total": 1e300}, 2, int(1e300), 100),
        # Not whole numbers: a count or a page size that is not one bounds nothing.
        ({"last_page": 5, "total": 450.5}, 5, None, 100),
        ({"last_page": 5, "total": float("nan")}, 5, None, 100),
        ({"last_page": 5, "total": float("inf")}, 5, None, 100),
        ({"last_page": 5, "total": True}, 5, None, 100),
        ({"last_page": 5, "total": "450"}, 5, None, 100),
        ({"last_page": 5, "per_page": 15.5, "total": 450}, 5, 450, 100),
        ({"last_page": 5, "per_page": "15", "total": 450}, 5, 450, 100),
    ],
    ids=[
        "last_page 5.0",
        "per_page and total as floats",
        "1e300 both",
        "last_page 1e300",
        "total 1e300",
        "total 450.5",
        "total NaN",
        "total inf",
        "total true",
        "total as a string",
        "per_page 15.5",
        "per_page as a string",
    ],
)
def test_meta_numbers_are_whole_numbers_integral_floats_included(
    meta: dict[str, Any], last_page: int, total: int | None, size: int
) -> None:
    page = read_page(body(size, **meta), page=1, per_page=100)
    assert (page.last_page, page.total, page.size) == (last_page, total, size)
    # Never a float (5.0 == 5): the walks count and divide in integers only.
    assert type(page.last_page) is int and type(page.size) is int
    assert total is None or type(page.total) is int


@pytest.mark.parametrize("last_page", [5.5, float("nan"), float("inf"), -0.0, True, "5", None])
def test_a_last_page_that_is_not_a_whole_number_of_at_least_1_is_unusable(
    last_page: object,
) -> None:
    with pytest.raises(PayloadError, match=r"meta\.last_page"):
        read_page(body(100, last_page=last_page, total=450), page=1, per_page=100)


@pytest.mark.parametrize(
    ("page", "answer"),
    [
        (2, body(0, last_page=3, per_page=100, total=250)),  # empty mid-walk
        (1, body(40, last_page=2, per_page=100, total=101)),  # short, both say more
    ],
)
def test_a_short_page_before_the_last_its_count_and_last_page_promise_is_unusable(
    page: int, answer: dict[str, Any]
) -> None:
    with pytest.raises(PayloadError, match=r"meta\.total"):
        read_page(answer, page=page, per_page=100)


# -- discovery ----------------------------------------------------------------------


@pytest.mark.parametrize("drop_total", [False, True], ids=["with total", "without total"])
def test_discovery_of_a_listing_claiming_huge_last_page_requests_only_its_pages(
    verilock_api: InProcessVerilock, caplog: pytest.LogCaptureFixture, drop_total: bool
) -> None:
    caplog.set_level(logging.INFO)
    verilock_api.seed(250)
    client = EditingClient(claim_pages(HUGE, drop_total=drop_total))

    report = discover_sessions(client=client)

    # Pages 1-3 (the third is short), then page 1 again, as for an honest listing.
    assert client.pages == [1, 2, 3, 1] and report.requests == verilock_api.total_requests
    assert report.ok and report.created == 250 == Session.objects.count()
    # Not a failure, but said: naming the field, never an item.
    warned = [r.getMessage() for r in caplog.records if "meta.last_page" in r.getMessage()]
    assert warned and not any(s.id in " ".join(warned) for s in verilock_api.sessions)


def test_discovery_stops_at_an_empty_page_its_count_contradicts_and_reports_it(
    verilock_api: InProcessVerilock,
) -> None:
    verilock_api.seed(250)
    client = EditingClient(empty_page(2))

    report = discover_sessions(client=client)

    assert client.pages == [1, 2]  # never page 3
    assert not report.ok and report.list_error is not None
    assert "meta.total" in report.summary()
    assert report.created == 100  # page 1's sessions are kept


def test_discovery_ends_at_an_empty_page_when_no_count_says_more(
    verilock_api: InProcessVerilock,
) -> None:
    verilock_api.seed(250)

    def edit(page: int, body: dict[str, Any]) -> None:
        claim_pages(HUGE, drop_total=True)(page, body)
        empty_page(2)(page, body)

    client = EditingClient(edit)
    report = discover_sessions(client=client)

    # The listing's items say it ends on page 2: nothing contradicts them.
    assert client.pages == [1, 2, 1] and report.ok and report.created == 100


@pytest.mark.parametrize("total", [5, HUGE], ids=["below the items", "above last_page"])
def test_discovery_with_a_count_inconsistent_with_last_page_reads_each_page_once(
    verilock_api: InProcessVerilock, total: int
) -> None:
    verilock_api.seed(250)

    def edit(page: int, body: dict[str, Any]) -> None:
        body["meta"]["total"] = total

    client = EditingClient(edit)
    report = discover_sessions(client=client)

    assert client.pages == [1, 2, 3, 1]
    assert report.created == 250 == Session.objects.count()


@pytest.mark.parametrize(
    "page_1_total",
    [300, 10**400, 1e300],
    ids=["a few more", "more than a float holds", "a float of 1e300"],
)
def test_discovery_ends_when_page_1_counts_more_than_the_pages_after_it(
    verilock_api: InProcessVerilock, page_1_total: int
) -> None:
    # A count read from a lagging replica on page 1 only: the drop on page 2 is not
    # sessions leaving again and again, so the walk steps back once, not forever.
    verilock_api.seed(250)

    def edit(page: int, body: dict[str, Any]) -> None:
        if page == 1:
            body["meta"]["total"] = page_1_total

    client = EditingClient(edit)
    report = discover_sessions(client=client)

    assert report.ok and report.created == 250 == Session.objects.count()
    assert client.pages[:4] == [1, 2, 1, 2] and len(client.pages) <= 7


def floats(page: int, body: dict[str, Any]) -> None:
    """An edit that sends every count of the meta as a float (``3.0``)."""
    for key in ("current_page", "last_page", "per_page", "total"):
        body["meta"][key] = float(body["meta"][key])


def test_discovery_of_a_listing_counting_in_floats_reads_each_page_once(
    verilock_api: InProcessVerilock,
) -> None:
    verilock_api.seed(250)
    client = EditingClient(floats)

    report = discover_sessions(client=client)

    assert client.pages == [1, 2, 3, 1]
    assert report.ok and report.created == 250 == Session.objects.count()


def test_refresh_of_a_listing_counting_in_floats_confirms_every_session(
    verilock_api: InProcessVerilock,
) -> None:
    mirror(verilock_api, 250)
    client = EditingClient(floats)

    report = refresh_unfinished(client=client)

    assert client.pages == [1, 2, 3] and by_id_requests(verilock_api) == 0
    assert report.ok and report.confirmed == 250


def test_refresh_of_a_listing_counting_more_than_a_float_holds_reads_its_pages(
    verilock_api: InProcessVerilock,
) -> None:
    mirror(verilock_api, 250)
    client = EditingClient(lambda page, body: body["meta"].update(total=10**400))
    report = refresh_unfinished(client=client)

    assert client.pages == [1, 2, 3] and by_id_requests(verilock_api) == 0
    assert report.ok and report.confirmed == 250


# -- the batch refresh ----------------------------------------------------------------


@pytest.mark.parametrize("drop_total", [False, True], ids=["with total", "without total"])
def test_refresh_of_a_listing_claiming_huge_last_page_requests_only_its_pages(
    verilock_api: InProcessVerilock, drop_total: bool
) -> None:
    mirror(verilock_api, 250)
    client = EditingClient(claim_pages(HUGE, drop_total=drop_total))

    report = refresh_unfinished(client=client)

    # Three pages confirm all 250: no page beyond, and no giving way to 150 by-id fetches.
    assert client.pages == [1, 2, 3] and by_id_requests(verilock_api) == 0
    assert report.ok and report.confirmed == 250
    assert verilock_api.total_requests == 3 == report.requests


def test_refresh_infers_nothing_from_an_empty_page_its_count_contradicts(
    verilock_api: InProcessVerilock,
) -> None:
    mirror(verilock_api, 250)
    client = EditingClient(empty_page(2))

    report = refresh_unfinished(client=client)

    # Page 1 confirms its sessions; the 150 the empty page hid are not taken as having
    # left the status (that would fetch each by id): the by-age phase is theirs.
    assert client.pages == [1, 2] and by_id_requests(verilock_api) == 0
    assert report.confirmed == 100
    assert report.list_error is not None and "meta.total" in report.list_error
    assert not report.ok


def test_refresh_with_a_count_below_the_items_walks_last_page_pages(
    verilock_api: InProcessVerilock,
) -> None:
    mirror(verilock_api, 250)

    def edit(page: int, body: dict[str, Any]) -> None:
        body["meta"]["total"] = 5

    client = EditingClient(edit)
    report = refresh_unfinished(client=client)

    assert client.pages == [1, 2, 3] and by_id_requests(verilock_api) == 0
    assert report.ok and report.confirmed == 250


def test_refresh_still_gives_way_when_the_count_backs_many_pages(
    verilock_api: InProcessVerilock,
) -> None:
    ours = mirror(verilock_api, 3)
    for _ in range(100):  # newer, listed first, not ours
        verilock_api.add_session(status="processing")
    verilock_api.reset_counters()
    client = EditingClient(lambda page, body: body["meta"].update(total=10**6, last_page=10**4))

    report = refresh_unfinished(client=client)

    # 9 999 pages left against 3 sessions unaccounted for: fetching those is cheaper.
    assert client.pages == [1]
    assert sorted(r.session_id for r in verilock_api.requests if r.session_id) == sorted(ours)
    assert report.ok


class DefaultPageSizeClient(EditingClient):
    """A provider that ignores ``per_page`` and serves its default 15 items a page, saying
    so in ``meta.per_page`` or not at all (``meta.total`` kept or dropped)."""

    def __init__(self, *, say_per_page: bool, drop_total: bool) -> None:
        def edit(page: int, body: dict[str, Any]) -> None:
            if not say_per_page:
                del body["meta"]["per_page"]
            if drop_total:
                del body["meta"]["total"]

        super().__init__(edit)

    def list_sessions(self, *, page: int = 1, **kwargs: Any) -> dict[str, Any]:
        return super().list_sessions(page=page, **{**kwargs, "per_page": 15})


PAGE_SIZE_IGNORED = pytest.mark.parametrize(
    ("say_per_page", "drop_total"),
    [(True, False), (False, False), (False, True)],
    ids=["meta.per_page said", "no meta.per_page", "no meta.per_page nor total"],
)


@PAGE_SIZE_IGNORED
def test_discovery_walks_every_page_of_a_provider_ignoring_per_page(
    verilock_api: InProcessVerilock, say_per_page: bool, drop_total: bool
) -> None:
    verilock_api.seed(40)  # pages of 15, 15 and 10
    client = DefaultPageSizeClient(say_per_page=say_per_page, drop_total=drop_total)

    report = discover_sessions(client=client)

    assert report.ok and report.created == 40 == Session.objects.count()
    assert client.pages[:3] == [1, 2, 3] and len(client.pages) <= 5


@PAGE_SIZE_IGNORED
def test_refresh_walks_every_page_of_a_provider_ignoring_per_page(
    verilock_api: InProcessVerilock, say_per_page: bool, drop_total: bool
) -> None:
    mirror(verilock_api, 40)
    client = DefaultPageSizeClient(say_per_page=say_per_page, drop_total=drop_total)

    report = refresh_unfinished(client=client)

    assert client.pages == [1, 2, 3] and by_id_requests(verilock_api) == 0
    assert report.ok and report.confirmed == 40
