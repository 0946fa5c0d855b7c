"""Bring stored personal data in line with ``VERILOCK_ENCRYPT_FIELDS``, in chunks.

:func:`apply_encryption_setting` (``manage.py encrypt_verilock_data``) walks the sessions,
step results and webhook events by primary key, :data:`CHUNK_SIZE` rows per short
transaction (the rows locked while they are rewritten), and rewrites each personal-data
value that is not as the setting asks:

* setting on: a plaintext value, or a token made with an older key, is encrypted with the
  first key (after turning encryption on, and after adding a new key in front);
* setting off: a token is written back as plaintext (before uninstalling the extra).

Values already as asked are not written, so a second run changes nothing. A token that no
configured key opens is counted as unreadable and left alone: restore its key and run again.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, models, transaction
from django.db.models.functions import Cast

from . import encryption
from .conf import verilock_settings
from .models import Session, StepResult, WebhookEvent
from .privacy import pk_chunks

#: Rows per transaction.
CHUNK_SIZE = 500

#: The columns :mod:`.encryption` covers, per model.
ENCRYPTED_COLUMNS: dict[type[models.Model], tuple[str, ...]] = {
    Session: (
        "applicant_first_name",
        "applicant_last_name",
        "applicant_email",
        "applicant_date_of_birth",
        "applicant_nationality",
        "payload",
    ),
    StepResult: ("details", "payload"),
    WebhookEvent: ("payload",),
}


@dataclass
class EncryptionReport:
    """What a run rewrote (or, on a dry run, would rewrite)."""

    encrypt: bool
    rows: int = 0
    values: int = 0
    unreadable: int = 0
    per_model: dict[str, int] = field(default_factory=dict)

    def summary(self, *, dry_run: bool = False) -> str:
        """One line for the command's output."""
        verb = "encrypt" if self.encrypt else "decrypt"
        done = f"Would {verb}" if dry_run else f"{verb.capitalize()}ed"
        line = f"{done} {self.values} value(s) in {self.rows} row(s)"
        if self.per_model:
            line += " (" + ", ".join(f"{n}: {c}" for n, c in self.per_model.items()) + ")"
        line += "."
        if self.unreadable:
            line += (
                f" {self.unreadable} value(s) look encrypted but no configured key opens "
                "them: they were left as stored."
            )
        return line


def apply_encryption_setting(
    *, dry_run: bool = False, chunk_size: int = CHUNK_SIZE
) -> EncryptionReport:
    """Rewrite every personal-data value that is not as ``VERILOCK_ENCRYPT_FIELDS`` asks.

    Raises :class:`~verilock_django.exceptions.VerilockConfigurationError` when the setting
    is on but the library or ``SALT_KEY`` is missing (before anything is read).
    """
    report = EncryptionReport(encrypt=verilock_settings.encrypt_fields)
    if report.encrypt:
        encryption.encrypt("")  # fails now, not halfway, when the keys cannot be made
    for model, names in ENCRYPTED_COLUMNS.items():
        rows = model._default_manager.all()
        for ids in pk_chunks(rows, chunk_size):
            if dry_run:
                _rewrite(model, names, ids, report, write=False)
                continue
            with transaction.atomic():
                _rewrite(model, names, ids, report, write=True)
    return report


def _rewrite(
    model: type[models.Model],
    names: tuple[str, ...],
    ids: list[Any],
    report: EncryptionReport,
    *,
    write: bool,
) -> None:
    by_name = {f.name: f for f in model._meta.concrete_fields}
    fields = [by_name[name] for name in names]
    # As stored: cast to text, so that no field class decrypts on the way out.
    raw = {name: Cast(name, output_field=models.TextField()) for name in names}
    rows = model._default_manager.filter(pk__in=ids)
    if write:
        rows = rows.select_for_update()
    # Rows grouped by which columns change (usually all of a row's non-empty ones): one
    # prepared UPDATE per group, executed once per row.
    changes: dict[tuple[str, ...], list[list[Any]]] = {}
    for pk, *stored in rows.values_list("pk", *raw.values()):
        columns: list[str] = []
        values: list[Any] = []
        for model_field, value in zip(fields, stored, strict=True):
            plain = _plaintext_to_rewrite(model_field, value, report)
            if plain is not _UNCHANGED:
                columns.append(str(model_field.column))
                values.append(model_field.get_db_prep_save(plain, connection))
        if columns:
            changes.setdefault(tuple(columns), []).append([*values, pk])
            report.rows += 1
            report.values += len(columns)
            label = model._meta.model_name or model.__name__
            report.per_model[label] = report.per_model.get(label, 0) + 1
    if not write:
        return
    quote = connection.ops.quote_name
    key_field = model._meta.pk
    assert key_field is not None
    table, key = quote(model._meta.db_table), quote(str(key_field.column))
    with connection.cursor() as cursor:
        for columns_changed, params in changes.items():
            assignments = ", ".join(f"{quote(column)} = %s" for column in columns_changed)
            # Quoted names from the model; every value is a parameter.
            sql = f"UPDATE {table} SET {assignments} WHERE {key} = %s"  # noqa: S608
            cursor.executemany(sql, params)


_UNCHANGED: Any = object()


def _plaintext_to_rewrite(
    model_field: models.Field[Any, Any], stored: str | None, report: EncryptionReport
) -> Any:
    """The Python value to write for one stored value, or ``_UNCHANGED``."""
    is_json = isinstance(model_field, models.JSONField)
    value: Any = json.loads(stored) if is_json and stored is not None else stored
    if not value:  # None, "", {}, []: never encrypted
        return _UNCHANGED
    if not encryption.is_encrypted(value):
        return _typed(model_field, value) if report.encrypt else _UNCHANGED
    if report.encrypt and encryption.encrypted_with_first_key(value):
        return _UNCHANGED
    opened = encryption.open_token(value)
    if opened is None:
        report.unreadable += 1
        return _UNCHANGED
    return _typed(model_field, json.loads(opened) if is_json else opened)


def _typed(model_field: models.Field[Any, Any], plain: Any) -> Any:
    if isinstance(model_field, models.DateField) and isinstance(plain, str):
        return dt.date.fromisoformat(plain)
    return plain
