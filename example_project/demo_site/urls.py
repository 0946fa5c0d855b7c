"""URLs of the example host project: the admin, Verilock's webhook, the start flow, and one
page only verified users may open."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from verilock_django.users import verification_required


@verification_required
def payouts(request: HttpRequest) -> HttpResponse:
    """A page for verified users only."""
    return HttpResponse("Payouts: only verified users get here.")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("verilock/", include("verilock_django.urls")),
    path("verify/", include("verilock_django.urls_verify")),
    path("payouts/", payouts),
]
