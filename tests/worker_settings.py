"""Settings of the worker processes the end-to-end tests start (read from the environment).

The test passes the database of its own test run, the fake API's address and the broker in
``VERILOCK_E2E_*`` variables; everything else is the suite's settings.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS

DATABASES["default"]["NAME"] = os.environ["VERILOCK_E2E_DATABASE_NAME"]
DATABASES["default"].pop("TEST", None)
INSTALLED_APPS = [*INSTALLED_APPS]

VERILOCK_API_URL = os.environ["VERILOCK_E2E_API_URL"]
VERILOCK_API_KEY = os.environ["VERILOCK_E2E_API_KEY"]
VERILOCK_RATE_LIMIT_PER_MINUTE = int(os.environ.get("VERILOCK_E2E_RATE_LIMIT") or 0) or None
# None: what the API announces
VERILOCK_RATE_LIMIT_REDIS_URL = os.environ.get("VERILOCK_E2E_REDIS_URL") or None
VERILOCK_TASK_BACKEND = os.environ.get("VERILOCK_E2E_TASK_BACKEND") or None
VERILOCK_TASK_QUEUE = os.environ.get("VERILOCK_E2E_QUEUE") or None
VERILOCK_LEASE_SECONDS = float(os.environ.get("VERILOCK_E2E_LEASE_SECONDS", "600"))
VERILOCK_MAX_RETRIES = int(os.environ.get("VERILOCK_E2E_MAX_RETRIES", "3"))
VERILOCK_TIMEOUT = float(os.environ.get("VERILOCK_E2E_TIMEOUT", "10"))
VERILOCK_RETRY_BACKOFF = 0.2

CELERY_BROKER_URL = os.environ.get("VERILOCK_E2E_BROKER_URL", "")

if VERILOCK_TASK_BACKEND == "default":
    TASKS = {
        "default": {
            "BACKEND": "django_tasks_db.DatabaseBackend",
            "QUEUES": [VERILOCK_TASK_QUEUE or "default"],
        }
    }
