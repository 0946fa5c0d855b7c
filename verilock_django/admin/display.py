"""What the app's admin pages share: badges, JSON blocks, the permission test, admin links.

Every helper returning HTML builds it with ``format_html``, so provider text (statuses,
errors, payloads) is always escaped. The badge classes come from :data:`STYLESHEET`.
No model admin is defined or registered here.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.admin.utils import quote
from django.contrib.auth import get_permission_codename
from django.db.models import Model
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..statuses import status_label, status_tone

#: The admin pages' stylesheet (badges, step marks, JSON blocks, the refresh button).
STYLESHEET = "verilock_django/admin.css"


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
