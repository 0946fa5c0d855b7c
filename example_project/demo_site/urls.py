"""URLs of the example host project: the admin and Verilock's webhook endpoint."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("verilock/", include("verilock_django.urls")),
]
