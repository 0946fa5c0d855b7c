"""Django app configuration."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VerilockConfig(AppConfig):
    """Registers the system checks."""

    name = "verilock_django"
    verbose_name = _("Verilock")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, work  # noqa: F401  (registers the checks)
