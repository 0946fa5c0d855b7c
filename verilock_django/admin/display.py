"""What the app's admin pages share: badges, JSON blocks, permissions, links, the paginator.

Every helper returning HTML builds it with ``format_html``, so provider text (statuses,
errors, payloads) is always escaped. The badge classes come from :data:`STYLESHEET`.
No model admin is defined or registered here.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.paginator import Paginator
from django.db import (
    DataError,
    NotSupportedError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db.models import FloatField, Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.functional import cached_property, lazy
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from ..conf import verilock_settings
from ..models import Session
from ..outcomes import as_percent
from ..statuses import OUTCOME_MARKS, OUTCOME_TONES, StepOutcome, status_label, status_tone

#: The permission that shows applicants' personal data unmasked.
PII_PERMISSION = "view_applicant_pii"
#: The admin pages' stylesheet (badges, step marks, JSON blocks, the refresh button).
STYLESHEET = "verilock_django/admin.css"
#: MySQL's and MariaDB's error numbers for a regular expression their engine refuses:
#: MariaDB's (and MySQL 5.7's) ER_REGEXP_ERROR, MySQL 8's ICU ones from
#: ER_REGEXP_BUFFER_OVERFLOW to ER_REGEXP_PATTERN_TOO_BIG, ER_REGEXP_INVALID_CAPTURE_GROUP_NAME
#: and ER_REGEXP_INVALID_FLAG. Other errors of the same class (a lost connection, a lock wait)
#: stay errors.
MYSQL_REGEXP_ERRORS = frozenset({1139, *range(3684, 3701), 3887, 3900})
#: SQLite's message for a LIKE pattern longer than SQLITE_MAX_LIKE_PATTERN_LENGTH (50,000
#: bytes by default): an error of the lookup, not of the database.
SQLITE_PATTERN_ERROR = "LIKE or GLOB pattern too complex"


def badge(tone: str, label: str, *, title: str = "") -> SafeString:
    """An escaped badge in ``tone`` (ok, bad, warn, muted, pending, other), with a hover title."""
    if title:
        return format_html(
            '<span class="verilock-badge verilock-{}" title="{}">{}</span>', tone, title, label
        )
    return format_html('<span class="verilock-badge verilock-{}">{}</span>', tone, label)


def status_badge(status: str, label: str | None = None) -> SafeString:
    """The badge of a session, step or webhook event status (unknown ones shown as they come)."""
    return badge(status_tone(status), status_label(status) if label is None else label)


def json_block(value: Any) -> SafeString:
    """``value`` as indented JSON inside an escaped ``<pre class="verilock-json">``."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return format_html('<pre class="verilock-json">{}</pre>', text)


def has_model_permission(request: HttpRequest, action: str, model: type[Model]) -> bool:
    """Whether the user holds the ``action`` permission (view, change, …) on ``model``."""
    opts = model._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


def change_url(model: type[Model], pk: Any, *, admin_site: str) -> str | None:
    """The admin change page of ``model`` ``pk`` on ``admin_site``; None when not registered."""
    opts = model._meta
    try:
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change",
            args=(quote(pk),),
            current_app=admin_site,
        )
    except NoReverseMatch:  # the host unregistered that admin
        return None


@contextmanager
def refused_lookups(request: HttpRequest, model: type[Model]) -> Iterator[None]:
    """Around building a change list of ``model``: a query its database refuses is an
    invalid lookup, never a 500. Every filter, Django's and the app's, and the search read
    the request's parameters, and Django lets any lookup on a local field through, so some
    fail only when the list counts its rows: a NUL (PostgreSQL text cannot hold one,
    ``?status=%00``; refused up front on every database), a malformed regular expression
    (``?status__regex=[``; on MySQL and MariaDB the server's regular-expression errors,
    :data:`MYSQL_REGEXP_ERRORS`), a year beyond what a date holds
    (``?created_at__year=10000``), a range of one value (``?id__range=a``: the lookup reads
    a second one; more than two are refused up front, SQLite and MySQLdb fail to bind them),
    a float that is not finite (``?risk_score=nan``: MySQL cannot bind it; refused up front
    on every database), a lookup the backend lacks (``?steps__contains=1`` on SQLite's
    JSON), a pattern longer than SQLite's LIKE takes (:data:`SQLITE_PATTERN_ERROR`, a
    search of 50,000 characters).
    Checked here, once, for both lists. The query runs in a savepoint, so a statement the
    database refused leaves the request's transaction usable (``ATOMIC_REQUESTS``).

    :raises IncorrectLookupParameters: the admin then shows the unfiltered list with its
        "invalid lookup" note (``?e=1``), as for any lookup it cannot apply.
    """
    for values in request.GET.lists():
        if any("\x00" in value for value in values[1]):
            raise IncorrectLookupParameters("a query parameter holds a NUL character")
    _refuse_unbindable_values(request, model)
    alias = router.db_for_read(model)
    if connections[alias].vendor == "sqlite":
        _refuse_python_patterns(request)
    try:
        with transaction.atomic(using=alias):
            yield
    except (DataError, IndexError, NotSupportedError, OverflowError, ValueError) as exc:
        raise IncorrectLookupParameters("the database refused a lookup") from exc
    except OperationalError as exc:
        if _is_refused_pattern(connections[alias].vendor, exc):
            raise IncorrectLookupParameters("the database refused a pattern") from exc
        raise


def _refuse_unbindable_values(request: HttpRequest, model: type[Model]) -> None:
    """Refuse parameters no database driver can bind, checked before the query since the
    driver's error (a ``ProgrammingError``) is also what a broken query raises: a
    ``__range`` of other than two comma-separated values (Django passes them all to a
    two-placeholder ``BETWEEN``), and on a float field a value that is not a finite number
    (``nan``, ``inf``, ``1e400``), which MySQL cannot hold and no stored score is.

    :raises IncorrectLookupParameters: such a parameter.
    """
    for key, values in request.GET.lists():
        parts = key.split("__")
        if parts[-1] == "range" and any(len(value.split(",")) != 2 for value in values):
            raise IncorrectLookupParameters("a range takes two values")
        try:
            field = model._meta.get_field(parts[0])
        except FieldDoesNotExist:
            continue
        if not isinstance(field, FloatField) or parts[-1] == "isnull":
            continue
        for item in (item for value in values for item in value.split(",")):
            try:
                number = float(item)
            except ValueError:
                continue  # the field's own check makes it an invalid lookup
            if not math.isfinite(number):
                raise IncorrectLookupParameters("a float lookup is not a finite number")


def _is_refused_pattern(vendor: str, exc: OperationalError) -> bool:
    """Whether ``exc`` is the database refusing a lookup's pattern (not a lock wait or a
    lost connection, which stay errors)."""
    if vendor == "mysql":
        return bool(exc.args) and exc.args[0] in MYSQL_REGEXP_ERRORS
    return vendor == "sqlite" and str(exc) == SQLITE_PATTERN_ERROR


def _refuse_python_patterns(request: HttpRequest) -> None:
    """Refuse a ``__regex``/``__iregex`` parameter Python's ``re`` cannot compile: SQLite's
    REGEXP is Django's Python function (``iregex`` prefixes ``(?i)``), whose error reaches
    the list as an ``OperationalError``, which a locked database raises too, so it is
    checked before the query rather than caught after it.

    :raises IncorrectLookupParameters: a pattern does not compile.
    """
    for key, values in request.GET.lists():
        lookup = key.rpartition("__")[2]
        if lookup not in ("regex", "iregex"):
            continue
        prefix = "(?i)" if lookup == "iregex" else ""
        for value in values:
            try:
                with warnings.catch_warnings():
                    # Python 3.10 only warns of what 3.11 refuses (global flags not at
                    # the start, ``a(?i)b``): refused here on every Python alike.
                    warnings.simplefilter("error", DeprecationWarning)
                    re.compile(prefix + value)
            except (re.error, DeprecationWarning, OverflowError, RecursionError) as exc:
                raise IncorrectLookupParameters("a regular expression does not compile") from exc


def forged_selection(request: HttpRequest, model: type[Model]) -> bool:
    """Whether a posted action's selection (``_selected_action``) holds a value no primary
    key of ``model`` can be: a NUL, or one the key's field refuses (a word for a number, a
    number beyond the column's range, which SQLite cannot even bind; an id longer than the
    column). The list only posts the ids it showed, so such a form was forged or corrupted."""
    field = model._meta.pk
    assert field is not None
    for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
        if "\x00" in value:
            return True
        try:
            # The field's validators bound its values (an integer's range on this
            # database, a text's max_length).
            field.run_validators(field.to_python(value))
        except ValidationError:
            return True
    return False


if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:  # the admin classes are not subscriptable at runtime
    _ModelAdmin = object


class RefusesUnusableInput(_ModelAdmin):
    """The app's admins' guard for what a request may put into their queries: a list
    filter or search the database refuses (:func:`refused_lookups`) and an action's forged
    selection (:func:`forged_selection`) are answered as Django answers a lookup or a
    selection it cannot use, never with a 500."""

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        with refused_lookups(request, self.model):
            return super().get_changelist_instance(request)

    def response_action(  # Django 6 adds action_location, passed on as it comes
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        if forged_selection(request, self.model):
            self.message_user(
                request, gettext("The selected items are not ids of this list."), messages.WARNING
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset, *args, **kwargs)


def local_time(value: dt.datetime) -> dt.datetime:
    """A stored time in the current time zone for display; a naive one (a ``USE_TZ = False``
    project stores local times) as it is (``timezone.localtime`` refuses it)."""
    return timezone.localtime(value) if timezone.is_aware(value) else value


def can_view_pii(request: HttpRequest) -> bool:
    """Whether the user may see applicants' personal data unmasked (superusers always)."""
    return request.user.has_perm(f"{Session._meta.app_label}.{PII_PERMISSION}")


def outcome_badge(outcome: str, *, title: str = "") -> SafeString:
    """A step outcome's badge: its mark and label (shape and text, not colour alone)."""
    known = outcome in StepOutcome.values
    label = f"{OUTCOME_MARKS[outcome]} {StepOutcome(outcome).label}" if known else outcome
    return badge(OUTCOME_TONES.get(outcome, "other"), label, title=title)


def percent(score: float | None, scale: int | None) -> str:
    """A score on its scale (1 or 100) as a percentage (``31 %``); ``""`` without one."""
    value = as_percent(score, scale)
    if value is None or score is None:
        return ""
    return f"{value:.0f} %"


def short_id(session_id: str, length: int = 12) -> str:
    """The start of a long session id, with an ellipsis when cut."""
    return session_id if len(session_id) <= length + 1 else f"{session_id[:length]}…"


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """A paginator that, on PostgreSQL, takes an unfiltered big table's size from statistics.

    ``COUNT(*)`` reads every row; ``pg_class.reltuples`` (kept by autovacuum/ANALYZE) costs
    one catalogue lookup. Used only when the query has no filter and the estimate is above
    :attr:`estimate_above` rows; otherwise (and on other databases) the exact count. A
    filtered list is counted up to :attr:`count_limit` matches. Either way
    :attr:`approximate` tells the templates to say "about" or "+".
    """

    estimate_above = 10_000
    #: A filtered list counts its matches up to this many, then shows "1000+".
    count_limit = 1000
    #: ``"about"`` when :attr:`count` is an estimate, ``"more"`` when a lower bound.
    approximate = ""

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if not isinstance(object_list, QuerySet):
            return int(super().count)
        if not object_list.query.where:
            total, estimated = table_count(object_list.model, object_list.db, self.estimate_above)
            if total is not None:
                self.approximate = "about" if estimated else ""
                return total
            return int(super().count)
        # Counting every match of a broad filter reads every matching row: stop early.
        bounded = object_list.order_by()[: self.count_limit + 1].count()
        if bounded > self.count_limit:
            self.approximate = "more"
            return self.count_limit
        return bounded


def table_count(model: type[Model], using: str, estimate_above: int) -> tuple[int | None, bool]:
    """On PostgreSQL, one query: the table's estimated size when above ``estimate_above``,
    else its exact ``COUNT(*)``; returns ``(count, estimated)``. ``(None, False)`` elsewhere.

    The estimate is ``pg_class.reltuples`` (kept by autovacuum and ``ANALYZE``; -1 for a
    table never analysed, which is then counted). ``CASE`` evaluates only the branch taken,
    so a big table is never read.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None, False
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        # The table name is the model's own, quoted: no outside input reaches the SQL.
        cursor.execute(
            "SELECT CASE WHEN c.reltuples > %s THEN c.reltuples::bigint "  # noqa: S608
            f"ELSE (SELECT COUNT(*) FROM {table}) END, c.reltuples > %s "
            "FROM pg_class c WHERE c.oid = to_regclass(%s)",
            [estimate_above, estimate_above, model._meta.db_table],
        )
        row = cursor.fetchone()
    if row is None:
        return None, False
    return int(row[0]), bool(row[1])


def outcome_label(outcome: str) -> str:
    """The readable label of a step outcome, or the value as stored."""
    return str(StepOutcome(outcome).label) if outcome in StepOutcome.values else outcome


def step_letter(step: str) -> str:
    """A step's one- or two-letter tag for the list (``face_match`` → ``F``)."""
    parts = [part for part in step.split("_") if part]
    if not parts:
        return "?"
    return (
        parts[0][:1] + (parts[1][:1] if len(parts) > 1 and step != "face_match" else "")
    ).upper() or "?"


# -- encrypted columns -------------------------------------------------------------------

#: List columns ordered by an applicant column: ciphertext sorts at random.
APPLICANT_ORDERED = frozenset({"applicant", "applicant_masked"})


def personal_data_encrypted() -> bool:
    """Whether ``VERILOCK_ENCRYPT_FIELDS`` is on: the applicant columns and payloads are
    stored encrypted, so search, ordering and lookups on them are off."""
    return verilock_settings.encrypt_fields


def sortable_columns(columns: Sequence[Any]) -> list[Any]:
    """``columns`` without those ordered by an encrypted applicant column."""
    if not personal_data_encrypted():
        return list(columns)
    return [name for name in columns if name not in APPLICANT_ORDERED]


def _session_search_help() -> str:
    if personal_data_encrypted():
        return gettext(
            "Search by the start of a Verilock id or reference. Search by applicant name or "
            "email is off: those columns are encrypted (VERILOCK_ENCRYPT_FIELDS)."
        )
    return gettext(
        "Search by the start of a Verilock id or reference; by applicant name or email "
        "with the personal-data permission."
    )


#: The sessions' search help, worded for the current ``VERILOCK_ENCRYPT_FIELDS`` each time
#: it is shown.
SESSION_SEARCH_HELP = lazy(_session_search_help, str)()
