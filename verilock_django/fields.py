"""Model fields whose values the database compares exactly, whatever its default collation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

#: The collation :class:`ExactCharField` takes on MariaDB: binary (code points) and NO PAD
#: (``utf8mb4_bin`` is PAD SPACE there: ``'a' = 'a '``).
MARIADB_EXACT_COLLATION = "utf8mb4_nopad_bin"
#: The collation :class:`ExactCharField` takes on MySQL 8.0.17 and later: binary and NO PAD.
MYSQL_EXACT_COLLATION = "utf8mb4_0900_bin"
#: Before MySQL 8.0.17, which has no ``utf8mb4_0900_bin``: binary, but PAD SPACE.
OLD_MYSQL_EXACT_COLLATION = "utf8mb4_bin"

if TYPE_CHECKING:
    from django.db.models.expressions import Combinable

    _CharField = models.CharField[str | int | Combinable, str]
else:  # the field classes are not subscriptable at runtime
    _CharField = models.CharField


def exact_collation(connection: BaseDatabaseWrapper) -> str | None:
    """The collation under which ``connection``'s database compares text exactly, where
    its default does not (MySQL and MariaDB); None elsewhere (PostgreSQL and SQLite compare
    exactly by default)."""
    if connection.vendor != "mysql":
        return None
    if getattr(connection, "mysql_is_mariadb", False):
        return MARIADB_EXACT_COLLATION
    version: tuple[int, ...] = getattr(connection, "mysql_version", (8, 0, 17))
    return MYSQL_EXACT_COLLATION if version >= (8, 0, 17) else OLD_MYSQL_EXACT_COLLATION


class ExactCharField(_CharField):
    """A ``CharField`` whose values are equal only when they are the same string: for
    identifiers (Verilock's session ids, webhook ids and step names, the host's references).

    MySQL's and MariaDB's default collations fold case and accents and ignore trailing
    spaces, so there ``ses_ABC`` and ``ses_abc`` would be one primary key (a second
    applicant's data stored over the first's) and ``wh_e`` a duplicate of ``wh_é``. On those
    databases the column takes :func:`exact_collation`'s (its character set, utf8mb4, follows
    from it); a foreign key to it follows (Django gives it the target's collation). A
    ``db_collation`` given explicitly wins. On such a column MySQL's case-insensitive lookups
    (``iexact``, ``istartswith``: the admin's search) are case-sensitive.
    """

    def db_parameters(self, connection: BaseDatabaseWrapper) -> dict[str, Any]:
        params = super().db_parameters(connection)
        if not params.get("collation"):
            params["collation"] = exact_collation(connection)
        return params
