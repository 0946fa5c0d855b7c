"""Multi-row ``INSERT`` and upsert statements built once, for the store's batches.

A batch writes the same columns of the same three tables every time. ``bulk_create``
compiles its statement again on each call and sends every value through the query compiler
(``pre_save_val``, ``prepare_value``, ``field_as_sql``): measured, that was most of a stored
batch's CPU, more than the statements' own time in the database. Here the SQL around the
values (table, columns, ``ON CONFLICT``) is built once per model, columns and database, and
each value is prepared with its field's own ``get_db_prep_save``, the call Django makes,
except that a ``str``, ``int``, ``float`` or ``bool`` going into a plain Django column of
that kind is passed as is (those fields' preparation returns it unchanged).

Rows are written as ``bulk_create`` writes them: on PostgreSQL one statement whose
parameters are one array per column (``INSERT … SELECT * FROM UNNEST(…)``, so its text does
not grow with the rows); elsewhere one multi-row ``VALUES`` statement per chunk of rows,
chunks sized by
:meth:`~django.db.backends.base.operations.BaseDatabaseOperations.bulk_batch_size` (the
database's parameter limit). The objects are marked saved (``_state``). Primary keys of
inserted rows are not read back. Only concrete columns with values set on the objects are
written (no ``auto_now``, no ``db_default``: the app's models use neither).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.constants import OnConflict

#: Django column types whose ``get_db_prep_save`` returns a value of the given Python type
#: unchanged (on every backend), so it is passed as is.
_UNCHANGED: dict[type[models.Field[Any, Any]], type] = {
    models.CharField: str,
    models.TextField: str,
    models.EmailField: str,
    models.URLField: str,
    models.IntegerField: int,
    models.PositiveIntegerField: int,
    models.PositiveSmallIntegerField: int,
    models.SmallIntegerField: int,
    models.BigIntegerField: int,
    models.FloatField: float,
    models.BooleanField: bool,
}


def insert_rows(model: type[models.Model], objs: Sequence[models.Model]) -> None:
    """``INSERT`` ``objs`` (unsaved instances of ``model``) in as few statements as the
    database's parameter limit allows. An auto primary key is left to the database (and not
    read back). A duplicate key raises ``IntegrityError``, as ``bulk_create`` does.
    """
    if objs:
        _write(_statement(model, None, None), objs)


def upsert_rows(
    model: type[models.Model],
    objs: Sequence[models.Model],
    *,
    unique_fields: Sequence[str],
    update_fields: Sequence[str],
) -> None:
    """Insert ``objs``, or update ``update_fields`` (field names) of the stored row with the
    same ``unique_fields`` (``INSERT … ON CONFLICT … DO UPDATE``; MySQL and MariaDB: ``ON
    DUPLICATE KEY UPDATE``), as ``bulk_create(update_conflicts=True)`` does. Requires
    ``connection.features.supports_update_conflicts`` (every database the app supports).
    """
    if objs:
        _write(_statement(model, tuple(unique_fields), tuple(update_fields)), objs)


# -- internals -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Statement:
    alias: str
    head: str  # "INSERT INTO t (a, b) VALUES " (or, with unnest, the whole SELECT)
    tail: str  # " ON CONFLICT … DO UPDATE SET …" or ""
    fields: tuple[models.Field[Any, Any], ...]
    #: Per field: ``prepare(value, connection)``, its value as the database takes it.
    prepare: tuple[Callable[[Any, BaseDatabaseWrapper], Any], ...]
    #: PostgreSQL: the rows go as one array per column (``SELECT * FROM UNNEST(…)``).
    unnest: bool = False


_statements: dict[tuple[Any, ...], _Statement] = {}
#: Most parameters in one statement: PostgreSQL's protocol and MySQL's prepared statements
#: stop at 65,535 (SQLite's own, lower limit comes from ``bulk_batch_size``).
_MAX_PARAMETERS = 65_535


def _statement(
    model: type[models.Model],
    unique_fields: tuple[str, ...] | None,
    update_fields: tuple[str, ...] | None,
) -> _Statement:
    alias = router.db_for_write(model)
    connection = connections[alias]
    # Keyed by the connection's settings too: an override of DATABASES gets its own.
    key = (model, unique_fields, update_fields, alias, id(connection.settings_dict))
    cached = _statements.get(key)
    if cached is None:
        cached = _statements[key] = _build(model, unique_fields, update_fields, connection)
    return cached


def _build(
    model: type[models.Model],
    unique_fields: tuple[str, ...] | None,
    update_fields: tuple[str, ...] | None,
    connection: BaseDatabaseWrapper,
) -> _Statement:
    meta = model._meta
    fields = [
        field
        for field in meta.concrete_fields
        if not (field.primary_key and isinstance(field, models.AutoField))
    ]
    quote = connection.ops.quote_name
    # Only quoted names and types from the model are formatted in; values are parameters.
    head = (
        f"{connection.ops.insert_statement(on_conflict=None)} {quote(meta.db_table)} "
        f"({', '.join(quote(str(field.column)) for field in fields)}) "
    )
    unnest = connection.vendor == "postgresql" and all(
        _column_type(field, connection) for field in fields
    )
    if unnest:
        # One array per column: the statement's text is the same for any number of rows,
        # so the driver and the server parse it once, not once per batch (as bulk_create
        # does on PostgreSQL since Django 5.2).
        arrays = ", ".join(f"(%s)::{_column_type(field, connection)}[]" for field in fields)
        head += f"SELECT * FROM UNNEST({arrays})"  # noqa: S608 - the model's own types
    else:
        head += "VALUES "
    tail = ""
    if update_fields is not None and unique_fields is not None:
        features = connection.features
        tail = " " + connection.ops.on_conflict_suffix_sql(
            fields,
            OnConflict.UPDATE,
            [_column(meta, name) for name in update_fields],
            [_column(meta, name) for name in unique_fields]
            if features.supports_update_conflicts_with_target
            else [],
        )
    return _Statement(
        alias=connection.alias,
        head=head,
        tail=tail,
        fields=tuple(fields),
        prepare=tuple(_preparer(field) for field in fields),
        unnest=unnest,
    )


def _column_type(field: models.Field[Any, Any], connection: BaseDatabaseWrapper) -> str:
    """The column's type without its parameters (``varchar``, not ``varchar(64)``), for an
    array of it; ``""`` when it may not be a plain type (a custom internal type)."""
    target = field.target_field if field.is_relation else field  # type: ignore[attr-defined]
    if target.get_internal_type() not in connection.data_types:
        return ""
    return str(field.db_type(connection) or "").split("(")[0]


def _column(meta: Any, name: str) -> str:
    field = meta.get_field(name)
    assert isinstance(field, models.Field)  # a concrete field, not a reverse relation
    return str(field.column)


def _preparer(field: models.Field[Any, Any]) -> Callable[[Any, BaseDatabaseWrapper], Any]:
    """``prepare(value, connection)`` for ``field``: the connection is the writing thread's
    own, not the one the cached statement was built with."""
    unchanged = _UNCHANGED.get(type(field))
    prep = field.get_db_prep_save
    if unchanged is None:
        return prep

    def prepare(value: Any, connection: BaseDatabaseWrapper) -> Any:
        if value is None or type(value) is unchanged:
            return value
        return prep(value, connection)

    return prepare


def _rows_per_statement(
    statement: _Statement, connection: BaseDatabaseWrapper, objs: Sequence[models.Model]
) -> int:
    fields = list(statement.fields)
    limit = connection.ops.bulk_batch_size(fields, objs)
    return max(1, min(limit, _MAX_PARAMETERS // len(fields)))


def _write(statement: _Statement, objs: Sequence[models.Model]) -> None:
    connection = connections[statement.alias]
    columns = [
        (field.attname, prepare)
        for field, prepare in zip(statement.fields, statement.prepare, strict=True)
    ]
    # Sized at each write: the database's limit as the connection says now.
    size = len(objs) if statement.unnest else _rows_per_statement(statement, connection, objs)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), size):
            chunk = objs[start : start + size]
            if statement.unnest:
                params: list[Any] = [
                    [prepare(getattr(obj, attname), connection) for obj in chunk]
                    for attname, prepare in columns
                ]
                sql = statement.head + statement.tail
            else:
                params = [
                    prepare(getattr(obj, attname), connection)
                    for obj in chunk
                    for attname, prepare in columns
                ]
                row = "(" + ", ".join(["%s"] * len(columns)) + ")"
                sql = statement.head + ", ".join([row] * len(chunk)) + statement.tail
            cursor.execute(sql, params)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = statement.alias
