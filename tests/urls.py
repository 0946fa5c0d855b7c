from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("verilock/", include("verilock_django.urls")),
    path("verify/", include("verilock_django.urls_verify")),
]
