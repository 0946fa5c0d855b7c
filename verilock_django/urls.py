"""The webhook URL: include with ``path("verilock/", include("verilock_django.urls"))``.

The start flow for signed-in users has its own module, :mod:`verilock_django.urls_verify`.
"""

from __future__ import annotations

from django.urls import path

from . import webhooks

app_name = "verilock_django"

urlpatterns = [
    path("webhook/", webhooks.webhook, name="webhook"),
]
