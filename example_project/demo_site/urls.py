"""URLs of the example host project: the admin, and Verilock's webhook endpoint when present."""

from importlib.util import find_spec

from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/", admin.site.urls)]

if find_spec("verilock_django.urls") is not None:
    urlpatterns.append(path("verilock/", include("verilock_django.urls")))
