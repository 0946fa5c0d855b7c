"""Encryption at rest of the applicant columns and the raw JSON (the ``encryption`` extra).

The model fields below are what :mod:`.models` declares for every column that holds personal
data. Their migration is the same for every host; what they write depends on
``VERILOCK_ENCRYPT_FIELDS``, read at each write:

* on: a non-empty value is written as a Fernet token (AES-128-CBC + HMAC-SHA256) made with
  the first key of ``django-fernet-encrypted-fields`` (``SALT_KEY`` x ``SECRET_KEY``);
* off (the default): the value is written as it is.

Reading never depends on the setting: a token is decrypted with any configured key (so
rows written before a switch or a key rotation stay readable), anything else is read as
plaintext. Empty values (``""``, ``None``, ``{}``, ``[]``) are never encrypted, so blanking
queries and "has it any data" filters keep working. Search, ordering and lookups on an
encrypted column do not (each token is different); the admin turns them off.
``manage.py encrypt_verilock_data`` rewrites stored rows to what the setting asks for.

The text columns are ``TEXT`` whatever the setting (a token is about 1.4x the value plus
~100 characters); the birth date is stored as ISO text; the JSON columns keep their JSON
type and hold a JSON string (the token) when encrypted.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import json
import logging
from typing import TYPE_CHECKING, Any, Final

from django.conf import settings
from django.db import models

from .conf import verilock_settings
from .exceptions import VerilockConfigurationError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet, MultiFernet
    from django.db.backends.base.base import BaseDatabaseWrapper

    _TextField = models.TextField[Any, Any]
    _DateField = models.DateField[Any, Any]
    _JSONField = models.JSONField[Any, Any]
else:  # the field classes are not subscriptable at runtime
    _TextField, _DateField, _JSONField = models.TextField, models.DateField, models.JSONField

#: How every Fernet token starts (version byte 0x80, then a timestamp): no JSON document,
#: ISO date or plausible name does.
TOKEN_PREFIX: Final = "gAAAAA"  # noqa: S105 (a format marker, not a secret)
#: The distribution that provides the ciphers, and the module that derives the keys.
LIBRARY: Final = "django-fernet-encrypted-fields"
LIBRARY_MODULE: Final = "encrypted_fields.fields"
EXTRA_HINT: Final = 'pip install "verilock-django[encryption]"'

logger = logging.getLogger(__name__)

__all__ = [
    "EncryptableDateField",
    "EncryptableJSONField",
    "EncryptableTextField",
    "decrypt",
    "encrypt",
    "encrypted_with_first_key",
    "is_encrypted",
    "open_token",
]


def library_missing() -> bool:
    """True when ``django-fernet-encrypted-fields`` (or ``cryptography``) cannot be imported."""
    try:
        importlib.import_module(LIBRARY_MODULE)
    except ImportError:
        return True
    return False


def salt_key_problem() -> bool:
    """True when ``SALT_KEY`` is not a non-empty string or a list of non-empty strings."""
    salt = getattr(settings, "SALT_KEY", None)
    salts = list(salt) if isinstance(salt, (list, tuple)) else [salt]
    return not all(isinstance(item, str) and item for item in salts) or not salts


def _key_material() -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    if salt_key_problem():
        raise VerilockConfigurationError(
            "SALT_KEY must be a non-empty string or list of strings to read or write "
            "encrypted verilock-django columns (see docs/data-protection.md)."
        )
    salt = getattr(settings, "SALT_KEY")  # noqa: B009 (not in Django's settings stubs)
    salts = tuple(salt) if isinstance(salt, (list, tuple)) else (salt,)
    fallbacks = tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()))
    return str(settings.SECRET_KEY), fallbacks, salts


@functools.lru_cache(maxsize=4)
def _ciphers(material: tuple[str, tuple[str, ...], tuple[str, ...]]) -> tuple[Fernet, MultiFernet]:
    """The first key's cipher and one that tries every key, for the current key material.

    The keys come from the library (PBKDF2-SHA256, 100,000 rounds, per ``SECRET_KEY`` and
    fallback x ``SALT_KEY``): deriving them costs tens of milliseconds, once per process and
    key set; ``material`` (the settings that define them) is the cache key, so a changed
    setting takes effect at once.
    """
    try:  # the library brings cryptography
        library = importlib.import_module(LIBRARY_MODULE)
        from cryptography.fernet import Fernet, MultiFernet
    except ImportError as exc:
        raise VerilockConfigurationError(
            f"Encrypted verilock-django columns need {LIBRARY}: {EXTRA_HINT}."
        ) from exc
    keys: list[bytes] = library.EncryptedTextField().keys
    fernets = [Fernet(key) for key in keys]
    return fernets[0], MultiFernet(fernets)


def is_encrypted(value: object) -> bool:
    """True for a stored string that is a Fernet token (not plaintext)."""
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


def encrypt(text: str) -> str:
    """``text`` as a Fernet token made with the first key.

    :raises VerilockConfigurationError: the library is missing or ``SALT_KEY`` is unset.
    """
    first, _ = _ciphers(_key_material())
    return first.encrypt(text.encode()).decode("ascii")


def open_token(token: str) -> str | None:
    """The plaintext of a Fernet token, or ``None`` when no configured key opens it (or the
    library or ``SALT_KEY`` is missing)."""
    try:
        _, every = _ciphers(_key_material())
    except VerilockConfigurationError:
        return None
    from cryptography.fernet import InvalidToken  # importable: the ciphers were made

    try:
        return every.decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        return None


def encrypted_with_first_key(token: str) -> bool:
    """True for a token that the first (current) key opens: nothing to rewrite.

    :raises VerilockConfigurationError: the library is missing or ``SALT_KEY`` is unset.
    """
    first, _ = _ciphers(_key_material())
    from cryptography.fernet import InvalidToken  # importable: the ciphers were made

    try:
        first.decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeError):
        return False
    return True


def decrypt(value: str, *, field: models.Field[Any, Any] | None = None) -> str:
    """The plaintext of a stored string: a token decrypted with any configured key, any
    other string as it is.

    Never raises: a token-shaped value that no key opens (a key removed too early, or an
    applicant who typed such a name) is returned as stored, with a warning naming the
    column, so one odd row cannot break a page.
    """
    if not is_encrypted(value):
        return value
    opened = open_token(value)
    if opened is None:
        where = f"{field.model.__name__}.{field.name}" if field is not None else "a column"
        logger.warning(
            "A value of %s looks encrypted but no configured key opens it; it is shown as "
            "stored (see `encrypt_verilock_data` in docs/data-protection.md).",
            where,
        )
        return value
    return opened


def _sealed(text: str) -> str:
    """What to write for a non-empty text value under the current setting."""
    return encrypt(text) if verilock_settings.encrypt_fields else text


class EncryptableTextField(_TextField):
    """A text column (``max_length`` checked by forms only) that is encrypted when
    ``VERILOCK_ENCRYPT_FIELDS`` is on."""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return _sealed(value) if isinstance(value, str) and value else value

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        return decrypt(value, field=self) if isinstance(value, str) else value

    def to_python(self, value: Any) -> Any:
        return super().to_python(decrypt(value, field=self) if isinstance(value, str) else value)


class EncryptableDateField(_DateField):
    """A date kept as ISO text (``YYYY-MM-DD``), encrypted when ``VERILOCK_ENCRYPT_FIELDS``
    is on. Date lookups (``__year``, ranges) do not work on it."""

    def get_internal_type(self) -> str:
        return "TextField"

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        if isinstance(value, dt.date):
            return _sealed(value.isoformat())
        return value

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        return self.to_python(value)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            value = decrypt(value, field=self)
            if is_encrypted(value):
                return None  # unreadable (logged): no date rather than a parse error
        return super().to_python(value)


class EncryptableJSONField(_JSONField):
    """A JSON column that holds its document as one JSON string (a token) when
    ``VERILOCK_ENCRYPT_FIELDS`` is on: no key or value of it is readable in the database,
    and JSON lookups on it match nothing."""

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        if isinstance(value, (dict, list)) and value and verilock_settings.encrypt_fields:
            value = encrypt(json.dumps(value, cls=self.encoder))
        return super().get_db_prep_value(value, connection, prepared=True)

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        value = super().from_db_value(value, expression, connection)
        if is_encrypted(value):
            opened = decrypt(value, field=self)
            return value if opened is value else json.loads(opened, cls=self.decoder)
        return value
