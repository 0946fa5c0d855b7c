"""Signals for the host project, always sent after the database transaction commits.

``session_updated``
    A session was created or changed. Arguments: ``session`` (the saved
    :class:`~verilock_django.models.Session`), ``created`` (bool) and ``changes`` (a dict
    of field name to ``(old, new)``; ``"results"`` when step results changed).
``session_finished``
    A session entered a final status (or moved from one final status to another: a decision
    overturned). Argument: ``session``. Delivered **at least once** per such change: the
    need to send is stored in the same transaction as the change and cleared only once every
    receiver ran without raising; a failed receiver, or a process that died between commit
    and sending, means the next sync or refresh run sends it again (to every receiver, so
    make receivers idempotent).

Receivers' exceptions never stop a sync: they are logged (with the session id only).
``webhook_received``
    A webhook delivery was verified and stored. Argument: ``event`` (the stored event).
    Sent robustly: a receiver's exception is logged and stops neither the other receivers
    nor the event's processing.
``erasure_requested``
    Sent *before* an erasure, inside no transaction. Arguments: ``reference_id`` (``""``
    when sessions are erased by id) and ``session_ids`` (list). A receiver vetoes the
    erasure by raising :class:`~verilock_django.exceptions.ErasureRefused`.
``applicant_erased``
    Sent after an erasure committed; same arguments. For the host's own records.
"""

from __future__ import annotations

from django.dispatch import Signal

session_updated = Signal()
session_finished = Signal()
webhook_received = Signal()
erasure_requested = Signal()
applicant_erased = Signal()
