"""``manage.py send_verilock_test_webhook``: send a signed test delivery to a running project.

For local development: start ``runserver`` in one terminal, run this in another, and watch
your ``session_updated`` / ``session_finished`` receivers fire.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...conf import verilock_settings
from ...exceptions import VerilockConfigurationError
from ...http_errors import transport_problem
from ...signatures import SIGNATURE_HEADERS, sign_webhook
from ..arguments import http_url, seconds, text

#: What a new user most likely needs to change when the endpoint refuses the delivery.
ANSWER_HINTS: Final = {
    403: " The signature was refused: sign with a secret the project lists in "
    "VERILOCK_WEBHOOK_SECRETS (or pass it with --secret).",
    404: " Is the URL right, and does the project's urls.py include "
    '"verilock_django.urls" (path("verilock/", ...) serves /verilock/webhook/)?',
    503: " The project has no VERILOCK_WEBHOOK_SECRETS configured.",
}


class Command(BaseCommand):
    help = (
        "POST a correctly signed Verilock webhook delivery to URL (for example "
        "http://127.0.0.1:8000/verilock/webhook/), signed with the first secret of "
        "VERILOCK_WEBHOOK_SECRETS unless --secret is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", metavar="URL", type=http_url)
        parser.add_argument("--session-id", required=True, help="The Verilock session id.")
        parser.add_argument(
            "--event", default="session.completed", help="Event name (default session.completed)."
        )
        parser.add_argument(
            "--status",
            default="approved",
            help="data.status in the envelope (informative; default approved).",
        )
        parser.add_argument("--webhook-id", help="Delivery id (default: a new random one).")
        parser.add_argument(
            "--secret", type=text, help="Sign with this secret instead of the setting."
        )
        parser.add_argument(
            "--legacy-header",
            action="store_true",
            help=f"Send the signature in {SIGNATURE_HEADERS[1]} (Gen A docs).",
        )
        parser.add_argument("--timeout", type=seconds, default=10.0, help="Seconds (default 10).")

    def handle(self, *args: Any, **options: Any) -> None:
        secret = self._secret(options["secret"])
        now = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        envelope = {
            "event": options["event"],
            "data": {"session_id": options["session_id"], "status": options["status"]},
            "timestamp": now,
            "webhook_id": options["webhook_id"] or f"wh_test_{uuid.uuid4().hex[:16]}",
        }
        body = json.dumps(envelope, separators=(",", ":")).encode()
        header = SIGNATURE_HEADERS[1 if options["legacy_header"] else 0]
        headers = {"Content-Type": "application/json", header: sign_webhook(body, secret)}
        url = options["url"]
        try:
            response = requests.post(url, data=body, headers=headers, timeout=options["timeout"])
        except requests.RequestException as exc:
            # In words, as the client says it: requests' own text is a screenful of urllib3.
            problem = transport_problem(exc, "POST", urlsplit(url).path or "/", options["timeout"])
            raise CommandError(
                f"Could not deliver to {url}: {problem}. Is the project running there?"
            ) from None
        # The endpoint answers JSON; anything else (Django's HTML 404 page) is not shown.
        json_answer = response.headers.get("Content-Type", "").startswith("application/json")
        self.stdout.write(
            f"{envelope['event']} {envelope['webhook_id']} -> HTTP {response.status_code}"
            + (f" {response.text[:200]}" if json_answer else "")
        )
        if not 200 <= response.status_code < 300:
            hint = ANSWER_HINTS.get(response.status_code, "")
            raise CommandError(f"The endpoint answered HTTP {response.status_code}.{hint}")

    def _secret(self, given: str | None) -> str:
        """``--secret`` if given, else the first configured secret.

        :raises CommandError: no secret at all, or ``VERILOCK_WEBHOOK_SECRETS`` is unusable.
        """
        if given:
            return given
        try:
            secrets = verilock_settings.webhook_secrets
        except VerilockConfigurationError as exc:
            raise CommandError(f"{exc} Fix it or pass --secret.") from None
        if not secrets:
            raise CommandError("No secret: set VERILOCK_WEBHOOK_SECRETS or pass --secret.")
        return secrets[0]
