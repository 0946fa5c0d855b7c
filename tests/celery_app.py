"""The Celery app of the end-to-end tests: the broker from Django settings, the app's tasks.

Workers start with ``celery -A tests.celery_app worker`` and ``DJANGO_SETTINGS_MODULE``
set; the test process imports it to send tasks.
"""

from __future__ import annotations

import django
from celery import Celery
from django.conf import settings

django.setup()

app = Celery("verilock_e2e", include=["verilock_django.contrib.celery"])
app.conf.update(
    broker_url=getattr(settings, "CELERY_BROKER_URL", ""),
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # A killed worker's unacknowledged tasks come back after this long.
    broker_transport_options={"visibility_timeout": 20},
)
app.set_default()
