"""The overview page: the last 30 days at a glance, in a fixed number of queries.

:func:`build` returns the template context: per-day sessions started and how many of them
were approved, declined or expired (an inline SVG bar chart, with the same figures as a
table), decline reasons and failed steps ranked, the median time from creation to
completion, and sync health (last sync, sessions failing, oldest unfinished). Eight queries
whatever the number of sessions; every figure links to the filtered sessions list.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..models import Session, StepResult
from ..statuses import SessionStatus, StepOutcome
from .display import local_time

#: Days shown by the chart and counted by the rankings.
DAYS = 30
#: Rows in each ranking.
TOP = 8
#: The chart's drawing box (SVG user units).
CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 720, 180, 12
#: Stacked series, bottom first: (key, label, status); "open" is what is left of "started".
SERIES: tuple[tuple[str, str, str], ...] = (
    ("approved", "approved", SessionStatus.APPROVED),
    ("declined", "declined", SessionStatus.DECLINED),
    ("expired", "expired", SessionStatus.EXPIRED),
)


def build(changelist_url: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The overview's context; ``changelist_url`` is where drill-down links point."""
    now = local_time(now or timezone.now())
    # Days in the current time zone; None in a USE_TZ = False project (naive local times).
    zone = now.tzinfo
    first_day = now.date() - dt.timedelta(days=DAYS - 1)
    since = _midnight(first_day, zone)
    window = Session.objects.filter(created_at__gte=since)

    def link(**params: Any) -> str:
        return f"{changelist_url}?{urlencode(params)}"

    per_day = {
        row["day"]: row
        for row in window.annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(
            started=Count("pk"),
            **{key: Count("pk", filter=Q(status=status)) for key, _label, status in SERIES},
        )
        .order_by()
    }
    days = []
    for offset in range(DAYS):
        day = first_day + dt.timedelta(days=offset)
        row: dict[str, Any] = dict(per_day.get(day, {}))
        start = _midnight(day, zone)
        params = {
            "created_at__gte": start.isoformat(),
            "created_at__lt": (start + dt.timedelta(days=1)).isoformat(),
        }
        days.append(
            {
                "day": day,
                "started": row.get("started", 0),
                **{key: row.get(key, 0) for key, _label, _status in SERIES},
                "url": link(**params),
            }
        )

    reasons = [
        {**row, "url": link(decline_reason=row["decline_reason"])}
        for row in window.exclude(decline_reason="")
        .values("decline_reason")
        .annotate(count=Count("pk"))
        .order_by("-count", "decline_reason")[:TOP]
    ]
    failed_steps = [
        {**row, "url": link(failed_step=row["step"])}
        for row in StepResult.objects.filter(
            outcome=StepOutcome.FAILED, session__created_at__gte=since
        )
        .values("step")
        .annotate(count=Count("pk"))
        .order_by("-count", "step")[:TOP]
    ]
    # Three small queries instead of one that reads every row: each has an index
    # (last_synced_at; partial indexes on PostgreSQL for failing and unfinished rows).
    unfinished = Session.objects.unfinished()
    health = {
        **Session.objects.aggregate(last_sync=Max("last_synced_at")),
        "failing": Session.objects.exclude(last_sync_error="").count(),
        **unfinished.aggregate(unfinished=Count("pk"), oldest_unfinished=Min("created_at")),
    }
    return {
        "days": days,
        "chart": chart(days),
        "totals": {
            "started": sum(d["started"] for d in days),
            **{key: sum(d[key] for d in days) for key, _label, _status in SERIES},
        },
        "reasons": reasons,
        "failed_steps": failed_steps,
        "median_to_completion": readable_duration(median_to_completion(window)),
        "health": health,
        "links": {
            "failing": link(sync="failed"),
            "declined": link(status=SessionStatus.DECLINED),
            "window": link(**{"created_at__gte": since.isoformat()}),
        },
        "since": since,
    }


def median_to_completion(sessions: Any) -> dt.timedelta | None:
    """The median time from creation to completion of ``sessions`` (two queries)."""
    completed = sessions.filter(completed_at__isnull=False, created_at__isnull=False)
    count = completed.count()
    if not count:
        return None
    took = ExpressionWrapper(F("completed_at") - F("created_at"), output_field=DurationField())
    middle = completed.annotate(took=took).order_by("took").values_list("took", flat=True)
    value = middle[count // 2]
    return value if isinstance(value, dt.timedelta) else None


def readable_duration(value: dt.timedelta | None) -> str:
    """``1 d 3 h``, ``3 h 5 min``, ``15 min``, ``40 s``; ``""`` for None."""
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def chart(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Bar geometry for the inline SVG: one stacked bar per day, heights in user units."""
    peak = max([d["started"] for d in days] + [1])
    slot = CHART_WIDTH / len(days)
    scale = (CHART_HEIGHT - CHART_TOP) / peak
    bars = []
    for index, day in enumerate(days):
        x = round(index * slot + slot * 0.15, 1)
        width = round(slot * 0.7, 1)
        bottom = float(CHART_HEIGHT)
        segments = []
        for key, label, _status in SERIES:
            height = day[key] * scale
            bottom -= height
            segments.append(
                {"key": key, "label": label, "y": round(bottom, 1), "height": round(height, 1)}
            )
        open_count = max(0, day["started"] - sum(day[key] for key, _l, _s in SERIES))
        height = open_count * scale
        segments.append(
            {
                "key": "open",
                "label": "open",
                "y": round(bottom - height, 1),
                "height": round(height, 1),
            }
        )
        bars.append(
            {
                "x": x,
                "width": width,
                "segments": [s for s in segments if s["height"] > 0],
                "day": day,
                "open": open_count,
                "label_x": round(x + width / 2, 1)
                if 0 < index < len(days) - 1
                else (round(x, 1) if index == 0 else round(x + width, 1)),
                "show_label": index % 5 == 0 or index == len(days) - 1,
                # The end labels stay inside the box.
                "anchor": "start" if index == 0 else "end" if index == len(days) - 1 else "middle",
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT + 22,
        "baseline": CHART_HEIGHT,
        "peak": peak,
        "bars": bars,
    }


def _midnight(day: dt.date, zone: dt.tzinfo | None) -> dt.datetime:
    """The start of ``day`` in ``zone`` (naive, as such a project stores it, without one)."""
    start = dt.datetime.combine(day, dt.time.min)
    return start if zone is None else timezone.make_aware(start, zone)
