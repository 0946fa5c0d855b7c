"""The database's clock, as the ordering rule and the leases read it."""

from __future__ import annotations

import datetime as dt
import time

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
