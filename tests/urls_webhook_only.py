"""A URLconf with the webhook and without the start flow (for the system checks' tests)."""

from django.urls import include, path

urlpatterns = [path("verilock/", include("verilock_django.urls"))]
