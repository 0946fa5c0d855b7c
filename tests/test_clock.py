"""The database's clock, as the ordering rule and the leases read it."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.utils import timezone

from verilock_django import clock


@pytest.mark.django_db(transaction=True)
def test_a_reading_inside_a_long_transaction_is_the_time_now_not_when_it_began() -> None:
    with transaction.atomic():
        connection.cursor().execute("SELECT 1")  # the transaction has begun
        time.sleep(0.2)
        before = timezone.now()
        clock.forget()
        reading = clock.now()
    clock.forget()
    # Database and process share this machine's clock: a reading of when the transaction
    # began would be about 0.2 s behind "before".
    assert reading > before - dt.timedelta(seconds=0.1)


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Asia/Tokyo"])
def test_the_reading_is_the_time_now_in_a_project_with_use_tz_off(
    settings: Any, zone: str
) -> None:
    # With USE_TZ off, Django has PostgreSQL hand timestamps back naive in TIME_ZONE; read
    # as UTC, the clock would run hours off (every lease, due time and data age with it).
    settings.USE_TZ = False
    settings.TIME_ZONE = zone
    clock.forget()
    try:
        reading = clock.now()
    finally:
        clock.forget()
    expected = timezone.make_naive(dt.datetime.now(dt.timezone.utc), ZoneInfo(zone))
    assert timezone.is_naive(reading)
    assert abs(reading - expected) < dt.timedelta(seconds=5)
