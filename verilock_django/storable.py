"""What every supported database can store and read back. Pure: no I/O, no ORM.

The parser (``payloads.py``) and the webhook intake use these rules so that no value from
the provider can make a write fail or a stored row unreadable (see "Storage rules" in
``docs/payloads.md``):

* the widths of the text columns filled from payloads (``models.py`` declares its columns
  with them);
* :func:`storable_json`: JSON that SQLite, PostgreSQL ``jsonb`` and MySQL/MariaDB ``JSON``
  all accept: no NUL, no lone surrogate, no NaN or infinity, no integer beyond 64 bits,
  nesting bounded, without recursion;
* :data:`STORABLE_DATETIMES`: the datetimes every database and Python hold;
* :func:`parse_json_body`: a JSON body read with bounded nesting, never ``RecursionError``;
  :func:`is_storable_text`: whether a body can hold anything :func:`storable_json` changes.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .exceptions import PayloadError

# -- column widths (characters): models.py declares its text columns with these --------

#: Longest session id accepted (``Session.id``, ``WebhookEvent.session_id``).
SESSION_ID_MAX_LENGTH = 128
TYPE_MAX_LENGTH = 64
#: ``Session.status``/``decision`` and ``StepResult.status``.
STATUS_MAX_LENGTH = 64
REFERENCE_MAX_LENGTH = 255
NAME_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 254
NATIONALITY_MAX_LENGTH = 64
URL_MAX_LENGTH = 2048
STEP_MAX_LENGTH = 64
WEBHOOK_ID_MAX_LENGTH = 255
EVENT_TYPE_MAX_LENGTH = 128
#: Most steps one session may have (``StepResult.position`` is a small integer).
MAX_STEPS = 32767
#: Deepest nesting of lists and objects a stored JSON value may have: MariaDB's JSON check
#: refuses 32 levels (SQLite's stops at 1000, MySQL's at 100).
MAX_STORED_DEPTH = 31
#: Highest ``VERILOCK_MAX_JSON_DEPTH``, the bound on reading a JSON body: Python's JSON
#: decoder recurses once per level.
MAX_READ_DEPTH = 256

#: The datetimes every supported database and Python can store and read back, in UTC: MySQL
#: and MariaDB document years 1000-9999, and a day's margin on each side keeps the value in
#: range once read back in any time zone (``USE_TZ = False``). Outside: ``None`` in columns.
STORABLE_DATETIMES = (
    dt.datetime(1000, 1, 2, tzinfo=dt.timezone.utc),
    dt.datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=dt.timezone.utc),
)
STORABLE_YEARS = range(1000, 10000)

# JSON numbers every JSON column (SQLite, PostgreSQL jsonb, MySQL/MariaDB) stores as numbers.
_INT64 = range(-(2**63), 2**63)
# What storable_json writes for numbers no JSON column holds (read back by number_from_text).
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_BIG_INTEGER = re.compile(r"-?[0-9]{19,}")
_UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")
_JSON_STRUCTURE = re.compile(r'[\[\]{}"]')
# The rest of a JSON string after its opening quote (unrolled, so it never backtracks far).
_JSON_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# What a JSON text holds when its decoded value may need storable_json: a NUL or surrogate
# escape (UTF-8 text and JSON strings hold neither raw), NaN or an infinity, 19 digits in a
# row (an integer that may not fit 64 bits), or a positive exponent of 3 digits (a float
# can only overflow with one when no 19 digits precede it). Substring tests over the body
# with digits read as 0 ("E" as "e") cost a fraction of one regular expression's scan.
_NUMBER_SHAPES = bytes.maketrans(b"123456789E", b"000000000e")
_LONG_INTEGER = b"0" * 19
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
# A number with a positive exponent of 3 digits or more, as a JSON number token starts
# (after ":", ",", "[", whitespace or at the start) and ends: not one inside a word.
_BIG_EXPONENT = re.compile(rb"(?<![^\s:,\[])-?[0-9]+(?:\.[0-9]+)?[eE]\+?[0-9]{3,}(?![0-9A-Za-z_])")


def storable_json(value: object, *, field: str = "", max_depth: int = MAX_STORED_DEPTH) -> Any:
    """A copy of a JSON value that every supported database's JSON column stores and returns.

    Strings and keys lose NUL characters and have lone surrogates replaced by U+FFFD (keys
    that become equal keep the last value); NaN and infinities become ``"NaN"``,
    ``"Infinity"`` and ``"-Infinity"``; integers outside 64 bits become their decimal text;
    tuples become lists. Runs without recursion; ``max_depth`` bounds the nesting of lists
    and objects (the top level counts as 1). Raises
    :class:`PayloadError` naming the path below ``field`` for deeper nesting, a value that is
    not JSON, or an integer too long to write out; never quotes a value.
    """
    root: list[Any] = [None]
    # (value, container to fill, slot in it, path as (parent path, key), depth)
    stack: list[tuple[object, Any, Any, Any, int]] = [(value, root, 0, (None, field), 1)]
    while stack:
        item, target, slot, path, depth = stack.pop()
        if isinstance(item, (Mapping, list, tuple)):
            if depth > max_depth:
                raise PayloadError(_render(path), f"nested deeper than {max_depth} levels")
            if isinstance(item, Mapping):
                # Keys that become equal keep the first one's place and the last one's
                # value, as a JSON decoder reads a repeated key.
                children = {_storable_key(key, path): child for key, child in item.items()}
                copy: Any = dict.fromkeys(children)  # keeps the key order; filled below
                stack.extend(
                    (child, copy, key, (path, key), depth + 1) for key, child in children.items()
                )
            else:
                copy = [None] * len(item)
                stack.extend(
                    (child, copy, i, (path, i), depth + 1) for i, child in enumerate(item)
                )
            target[slot] = copy
        else:
            target[slot] = _storable_scalar(item, path)
    return root[0]


def parse_json_body(data: bytes, *, max_depth: int) -> Any:
    """Decode a UTF-8 JSON document whose lists and objects nest at most ``max_depth`` deep.

    The depth is measured before decoding, so no input can raise ``RecursionError``. Raises
    :class:`PayloadError` (field ``(body)``) for a body that is not UTF-8, not JSON, nested too
    deep, or holding an integer too long for Python to read; the message quotes nothing.
    """
    try:
        # As the "utf-8-sig" codec reads it, without its Python-level decoder: a leading BOM
        # dropped, the rest strict UTF-8.
        text = (
            data.removeprefix(codecs.BOM_UTF8).decode()
            if isinstance(data, (bytes, bytearray))
            else data
        )
    except UnicodeDecodeError:
        raise PayloadError("(body)", "not UTF-8 text") from None
    # Nesting never exceeds the number of opening brackets (those inside strings included),
    # so most bodies need no scan. Otherwise one linear pass over brackets, skipping strings
    # whole, as the decoder will read them.
    depth, at = 0, len(text) if text.count("{") + text.count("[") <= max_depth else 0
    while match := _JSON_STRUCTURE.search(text, at):
        char, at = match.group(), match.end()
        if char == '"':
            string = _JSON_STRING_REST.match(text, at)
            if string is None:
                break  # unterminated: the decoder stops here too
            at = string.end()
        elif char in ("[", "{"):
            depth += 1
            if depth > max_depth:
                raise PayloadError("(body)", f"nested deeper than {max_depth} levels")
        else:
            depth -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError cannot happen after the depth check; kept as a last line of defence.
        raise PayloadError("(body)", "not a JSON document") from None


def is_storable_text(data: bytes) -> bool:
    """True when the JSON document ``data`` (UTF-8) can only decode to a value that
    :func:`storable_json` returns as it is, nesting aside: no NUL or lone surrogate, no NaN
    or infinity, no integer beyond 64 bits. A few substring tests, no decoding; ``False``
    when such a value may be there (a string that merely looks like one counts too).
    """
    if b"NaN" in data or b"Infinity" in data:
        return False
    if b"\\u" in data and _UNSTORABLE_ESCAPE.search(data):
        return False
    shapes = data.translate(_NUMBER_SHAPES)
    if _LONG_INTEGER in shapes:
        return False
    # A 3-digit exponent shape is common inside hex ids ("b099e6355df8", "20efe786e272"):
    # only a whole JSON number token, starting and ending as one does, may overflow.
    return not ((b"0e000" in shapes or b"0e+000" in shapes) and _BIG_EXPONENT.search(data))


def number_from_text(value: object) -> int | float | None:
    """The number :func:`storable_json` wrote as text (``"NaN"``, ``"Infinity"``,
    ``"-Infinity"``, or the digits of an integer beyond 64 bits); ``None`` for anything else."""
    if not isinstance(value, str):
        return None
    if value in _NON_FINITE:
        return _NON_FINITE[value]
    return int(value) if _BIG_INTEGER.fullmatch(value) else None


def step_columns(names: Iterable[str]) -> list[str]:
    """One session's step names as ``StepResult.step`` holds them, distinct on every database
    (the column compares exactly everywhere: :class:`~verilock_django.fields.ExactCharField`).

    A name longer than :data:`STEP_MAX_LENGTH` is cut to fit and ends in ``~`` and 8 hex
    digits of its SHA-256, so long names sharing a prefix stay apart. Names must be distinct
    strings, as the keys of one object are.
    """
    columns: list[str] = []
    for name in names:
        if len(name) > STEP_MAX_LENGTH:
            digest = hashlib.sha256(name.encode()).hexdigest()[:8]
            name = f"{name[: STEP_MAX_LENGTH - 9]}~{digest}"
        columns.append(name)
    return columns


def clean_text(text: str) -> str:
    """``text`` without NUL characters, each lone surrogate replaced by U+FFFD."""
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    return _UNSTORABLE_CHAR.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def field_label(key: object) -> str:
    """A key as error messages name it: printable, at most 40 characters."""
    text = str(key)
    if len(text) <= 40 and text.isprintable():
        return text  # most keys: no character to replace
    text = "".join(ch if ch.isprintable() else "?" for ch in text[:41])
    return text if len(text) <= 40 else text[:39] + "…"


# -- internals ------------------------------------------------------------------------


def _storable_key(key: object, path: Any) -> str:
    if isinstance(key, str):
        return clean_text(key)
    if key is None or isinstance(key, (bool, int, float)):
        return clean_text(json.dumps(key))  # how json.dumps writes such a key
    raise PayloadError(_render(path), "an object key that is not a string")


def _storable_scalar(value: object, path: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int):
        if value in _INT64:
            return value
        try:
            return str(value)
        except ValueError:  # more digits than Python writes out (sys.get_int_max_str_digits)
            raise PayloadError(_render(path), "a number too long to store") from None
    if isinstance(value, float):
        return value if math.isfinite(value) else json.dumps(value)  # "NaN", "Infinity"…
    raise PayloadError(_render(path), f"not a JSON value ({type(value).__name__})")


def _render(path: Any) -> str:
    """The dotted field name of a ``(parent, key)`` path built by :func:`storable_json`."""
    keys: list[object] = []
    while path is not None:
        path, key = path
        keys.append(key)
    name = ""
    for key in reversed(keys):
        if isinstance(key, int):
            name += f"[{key}]"
        else:
            name += f".{field_label(key)}" if name else field_label(key)
    return name or "(body)"
