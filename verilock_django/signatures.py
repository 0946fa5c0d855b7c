"""Webhook signatures: HMAC-SHA256 of the raw body, hex-encoded. Pure: stdlib only.

Shared by the webhook view (to verify) and the testing kit's fake Verilock (to sign), so
both always agree on the format.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable, Sequence

#: Header names carrying the signature: the current one first, then Gen A's.
SIGNATURE_HEADERS = ("X-Verilock-Signature", "X-Webhook-Signature")
SIGNATURE_PREFIX = "sha256="
_HEX_DIGITS = frozenset("0123456789abcdef")


def sign_webhook(body: bytes, secret: str) -> str:
    """The signature Verilock sends for ``body``: hex HMAC-SHA256 keyed with ``secret``."""
    mac = _keyed(secret).copy()
    mac.update(body)
    return mac.hexdigest()


def verify_signature(body: bytes, signatures: Iterable[str], secrets: Sequence[str]) -> bool:
    """True when one of ``signatures`` is the HMAC of ``body`` under one of ``secrets``.

    Accepts hex in either case, with an optional ``sha256=`` prefix, and several
    comma-separated values in one header. Every comparison is constant-time.
    """
    candidates = [_normalise(part) for value in signatures for part in value.split(",")]
    expected = [sign_webhook(body, secret) for secret in secrets]
    matched = False
    for candidate in candidates:
        if candidate is None:
            continue
        for digest in expected:
            # No early exit: the time taken does not depend on which secret matched.
            matched |= hmac.compare_digest(digest, candidate)
    return matched


def _normalise(signature: str) -> str | None:
    value = signature.strip().lower()
    if value.startswith(SIGNATURE_PREFIX):
        value = value[len(SIGNATURE_PREFIX) :]
    # A SHA-256 hex digest is 64 hex digits; anything else (base64, truncated) is refused.
    if len(value) != 64 or not _HEX_DIGITS.issuperset(value):
        return None
    return value


@functools.lru_cache(maxsize=8)  # the configured secrets, a rotation's old and new included
def _keyed(secret: str) -> hmac.HMAC:
    # The key is set up once per secret; copying the keyed state costs half as much as
    # keying a new HMAC for every delivery.
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)
