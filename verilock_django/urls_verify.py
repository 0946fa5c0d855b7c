"""The start flow's URLs: include with ``path("verify/", include("verilock_django.urls_verify"))``.

A module of its own, apart from :mod:`verilock_django.urls` (the webhook): the start flow is
for signed-in users and may live under another prefix than the endpoint Verilock calls.
Names (namespace ``verilock_verify``): ``start`` (GET page, POST starts), ``return`` (the
``redirect_url`` Verilock sends the user back to), ``status``.
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "verilock_verify"

urlpatterns = [
    path("", views.start, name="start"),
    path("return/", views.return_from_verilock, name="return"),
    path("status/", views.status, name="status"),
]
