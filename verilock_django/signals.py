"""Signals for the host project, always sent after the database transaction commits.

``session_updated``
    A session was created or changed. Arguments: ``session`` (the saved
    :class:`~verilock_django.models.Session`), ``created`` (bool) and ``changes`` (a dict
    of field name to ``(old, new)``; ``"results"`` when step results changed).
``session_finished``
    A session reached a final status; sent once per session. Argument: ``session``.
``webhook_received``
    A webhook delivery was verified and stored. Argument: ``event`` (the stored event).
"""

from __future__ import annotations

from django.dispatch import Signal

session_updated = Signal()
session_finished = Signal()
webhook_received = Signal()
