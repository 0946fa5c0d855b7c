"""URLs of the app: include with ``path("verilock/", include("verilock_django.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import webhooks

app_name = "verilock_django"

urlpatterns = [
    path("webhook/", webhooks.webhook, name="webhook"),
]
