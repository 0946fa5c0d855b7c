"""Encryption at rest (``VERILOCK_ENCRYPT_FIELDS``, the ``encryption`` extra): what the
database holds, what the app and the admin read, key rotation, the rewrite command, checks."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from verilock_django import checks, encryption
from verilock_django.encrypted_rows import ENCRYPTED_COLUMNS, apply_encryption_setting
from verilock_django.models import Session, StepResult, WebhookEvent
from verilock_django.privacy import apply_retention
from verilock_django.store import store_session
from verilock_django.testing.factories import session_payload

from .conftest import log_in_staff

pytestmark = pytest.mark.django_db
needs_library = pytest.mark.skipif(
    encryption.library_missing(),
    reason="the encryption extra (django-fernet-encrypted-fields) is not installed",
)

CHANGELIST = reverse("admin:verilock_django_session_changelist")
#: What the applicant of ``session_payload(..., declined_step="aml")`` is made of: strings
#: long enough (6+ characters) that a token's base64 never holds one by chance.
PERSONAL = ("Dupont", "jean.dupont@example.com", "1990-05-15", "12AB34567")


def stored(model: type[Model], pk: Any, column: str) -> str:
    """A column's value as the database holds it, read with a raw cursor (no field class)."""
    quote_name = connection.ops.quote_name
    table, key = quote_name(model._meta.db_table), quote_name("id")
    with connection.cursor() as cursor:
        # Names from the model; the key is a parameter.
        cursor.execute(f"SELECT {quote_name(column)} FROM {table} WHERE {key} = %s", [pk])  # noqa: S608
        value = cursor.fetchone()[0]
    return value if isinstance(value, str) else json.dumps(value, default=str)


def every_stored_value(session_id: str) -> str:
    """Every personal-data column of a session, its steps and its webhook events, as stored."""
    values = [
        stored(Session, session_id, column)
        for column in (
            "applicant_first_name",
            "applicant_last_name",
            "applicant_email",
            "applicant_date_of_birth",
            "applicant_nationality",
            "payload",
        )
    ]
    for pk in StepResult.objects.filter(session_id=session_id).values_list("pk", flat=True):
        values += [stored(StepResult, pk, "details"), stored(StepResult, pk, "payload")]
    for pk in WebhookEvent.objects.filter(session_id=session_id).values_list("pk", flat=True):
        values.append(stored(WebhookEvent, pk, "payload"))
    return "\n".join(values)


def personal_values() -> int:
    """How many non-empty personal-data values the database holds (read through the app)."""
    return sum(
        sum(1 for value in row if value not in (None, "", {}, []))
        for model, names in ENCRYPTED_COLUMNS.items()
        for row in model._default_manager.values_list(*names)
    )


def store_declined(session_id: str = "ses_enc") -> dict[str, Any]:
    payload = session_payload("a", id=session_id, status="declined", declined_step="aml")
    store_session(payload)
    WebhookEvent.objects.create(
        webhook_id=f"wh_{session_id}",
        event_type="session.declined",
        session_id=session_id,
        payload={"event": "session.declined", "data": {"id": session_id, **payload}},
    )
    return payload


@pytest.fixture
def keys(settings: Any) -> Any:
    settings.SALT_KEY = "first-salt-for-tests"
    return settings


@pytest.fixture
def encrypted(keys: Any) -> Any:
    keys.VERILOCK_ENCRYPT_FIELDS = True
    return keys


# -- encryption on -----------------------------------------------------------------------


@needs_library
def test_with_encryption_on_the_database_holds_only_ciphertext(encrypted: Any) -> None:
    store_declined()

    raw = every_stored_value("ses_enc")
    for value in (*PERSONAL, "document_number", "first_name", "declined"):
        assert value not in raw
    # Every non-empty value is one token: a text column's, or a JSON string's.
    for value in raw.splitlines():
        token = json.loads(value) if value.startswith('"') else value
        assert token in ("", "{}", "null") or token.startswith(encryption.TOKEN_PREFIX), token
    # The JSON columns keep their type: one JSON string, the token.
    assert json.loads(stored(Session, "ses_enc", "payload")).startswith(encryption.TOKEN_PREFIX)
    # What is not personal stays plain and queryable.
    assert Session.objects.filter(status="declined", reference_id__isnull=False).count() == 1


@needs_library
def test_with_encryption_on_the_app_reads_plaintext(encrypted: Any) -> None:
    payload = store_declined()

    session = Session.objects.get()
    assert session.applicant_name == "Jean Dupont"
    assert session.applicant_email == "jean.dupont@example.com"
    assert session.applicant_date_of_birth == dt.date(1990, 5, 15)
    assert session.payload["applicant"] == payload["applicant"]
    aml = session.results.get(step="aml")
    assert aml.details and aml.payload["status"] == payload["results"]["aml"]["status"]
    assert WebhookEvent.objects.get().payload["data"]["id"] == "ses_enc"
    # values() and values_list() read through the fields too.
    assert Session.objects.values_list("applicant_last_name", flat=True).get() == "Dupont"


@needs_library
def test_numbers_and_nulls_in_the_json_keep_their_types(encrypted: Any) -> None:
    document = {"score": 0.91, "passed": True, "missing": None, "list": [1, "two"]}
    event = WebhookEvent.objects.create(webhook_id="wh_types", event_type="x", payload=document)

    event.refresh_from_db()
    assert event.payload == document


@needs_library
def test_empty_values_are_not_encrypted_and_blanking_still_works(encrypted: Any) -> None:
    Session.objects.create(id="ses_pending")
    assert stored(Session, "ses_pending", "applicant_email") == ""
    assert json.loads(stored(Session, "ses_pending", "payload")) == {}

    store_declined()
    Session.objects.filter(pk="ses_enc").update(
        completed_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    )
    encrypted.VERILOCK_PII_RETENTION_DAYS = 30
    report = apply_retention()

    assert report.sessions == 1
    session = Session.objects.get(pk="ses_enc")
    assert (session.applicant_name, session.applicant_date_of_birth) == ("", None)
    assert session.payload["status"] == "declined"  # the decision record, encrypted again
    assert "declined" not in stored(Session, "ses_enc", "payload")
    assert StepResult.objects.filter(session_id="ses_enc", details={}).count() == 5


@needs_library
def test_the_admin_reads_plaintext_and_says_search_is_off(encrypted: Any, client: Client) -> None:
    store_declined()
    staff = log_in_staff(client, "view_session", "view_applicant_pii")

    page = staff.get(
        reverse("admin:verilock_django_session_change", args=(quote("ses_enc"),))
    ).content.decode()
    assert "jean.dupont@example.com" in page and "12AB34567" in page

    listing = staff.get(CHANGELIST, {"q": "Dupont"})
    assert listing.status_code == 200
    text = listing.content.decode()
    assert "Search by applicant name or email is off: those columns are encrypted" in text
    assert listing.context["cl"].result_count == 0  # searched ids and references only
    by_reference = staff.get(CHANGELIST, {"q": Session.objects.get().reference_id})
    assert by_reference.context["cl"].result_count == 1
    # Ciphertext sorts at random: the applicant column is not sortable.
    assert "applicant" not in listing.context["cl"].sortable_by
    assert staff.get(CHANGELIST, {"o": "2"}).status_code == 200


def test_with_encryption_off_the_admin_searches_names(client: Client) -> None:
    store_declined()
    staff = log_in_staff(client, "view_session", "view_applicant_pii")
    listing = staff.get(CHANGELIST, {"q": "Dupont"})

    assert listing.context["cl"].result_count == 1
    assert "with the personal-data permission" in listing.content.decode()
    assert "applicant" in listing.context["cl"].sortable_by


# -- encryption off (the default) -------------------------------------------------------


def test_by_default_values_are_stored_as_they_are() -> None:
    store_declined()

    raw = every_stored_value("ses_enc")
    for value in PERSONAL:
        assert value in raw
    assert stored(Session, "ses_enc", "applicant_date_of_birth") == "1990-05-15"
    assert Session.objects.get().applicant_date_of_birth == dt.date(1990, 5, 15)
    # JSON lookups work on the unencrypted JSON columns.
    assert Session.objects.filter(payload__status="declined").count() == 1


def test_a_token_shaped_value_that_no_key_opens_is_shown_as_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An applicant may type anything, even what looks like a Fernet token: one odd row
    never breaks a page, with or without the extra."""
    name = encryption.TOKEN_PREFIX + "not-really-a-token"
    Session.objects.create(id="ses_odd", applicant_first_name=name)

    with caplog.at_level(logging.WARNING, logger="verilock_django.encryption"):
        assert Session.objects.get().applicant_first_name == name
    assert "Session.applicant_first_name" in caplog.text
    assert name not in caplog.text


# -- the rewrite command and key rotation ---------------------------------------------


@needs_library
def test_the_command_encrypts_plaintext_rows_and_a_second_run_changes_nothing(
    keys: Any,
) -> None:
    store_declined("ses_a")
    store_declined("ses_b")
    Session.objects.create(id="ses_empty")
    keys.VERILOCK_ENCRYPT_FIELDS = True

    out = StringIO()
    call_command("encrypt_verilock_data", "--dry-run", stdout=out)
    assert "Would encrypt" in out.getvalue()
    assert "Dupont" in every_stored_value("ses_a")  # a dry run writes nothing

    first = apply_encryption_setting(chunk_size=3)
    # Every row holding personal data: 2 sessions, their 5 steps each, 1 webhook event each.
    assert first.rows == 2 + 10 + 2
    assert first.values == personal_values()
    for session_id in ("ses_a", "ses_b"):
        raw = every_stored_value(session_id)
        assert not any(value in raw for value in PERSONAL)
    assert Session.objects.get(pk="ses_a").applicant_name == "Jean Dupont"

    out = StringIO()
    call_command("encrypt_verilock_data", stdout=out)
    assert "Encrypted 0 value(s) in 0 row(s)." in out.getvalue()


@needs_library
def test_turned_off_the_command_writes_plaintext_back(encrypted: Any) -> None:
    store_declined()
    encrypted.VERILOCK_ENCRYPT_FIELDS = False

    report = apply_encryption_setting()

    assert report.values == personal_values() > 0
    raw = every_stored_value("ses_enc")
    assert all(value in raw for value in PERSONAL)
    assert apply_encryption_setting().values == 0


@needs_library
def test_key_rotation_add_the_new_key_first_rewrite_then_drop_the_old(
    encrypted: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store_declined()
    old_token = stored(Session, "ses_enc", "applicant_email")

    encrypted.SALT_KEY = ["second-salt-for-tests", "first-salt-for-tests"]
    assert Session.objects.get().applicant_email == "jean.dupont@example.com"  # both keys
    assert not encryption.encrypted_with_first_key(old_token)

    out = StringIO()
    call_command("encrypt_verilock_data", "--chunk-size", "1", stdout=out)
    assert f"Encrypted {personal_values()} value(s) in 7 row(s)" in out.getvalue()
    new_token = stored(Session, "ses_enc", "applicant_email")
    assert new_token != old_token and encryption.encrypted_with_first_key(new_token)

    encrypted.SALT_KEY = "second-salt-for-tests"  # the old key dropped
    session = Session.objects.get()
    assert session.applicant_email == "jean.dupont@example.com"
    assert session.payload["applicant"]["last_name"] == "Dupont"

    encrypted.SALT_KEY = "an-unrelated-salt"  # a key lost: shown as stored, never a crash
    with caplog.at_level(logging.WARNING, logger="verilock_django.encryption"):
        assert Session.objects.get().applicant_email == new_token
    with pytest.raises(CommandError, match="could not be decrypted"):
        call_command("encrypt_verilock_data", stdout=StringIO())
    assert stored(Session, "ses_enc", "applicant_email") == new_token  # left alone


@needs_library
def test_rotating_secret_key_uses_secret_key_fallbacks(encrypted: Any) -> None:
    store_declined()
    encrypted.SECRET_KEY_FALLBACKS = [encrypted.SECRET_KEY]
    encrypted.SECRET_KEY = "a-new-secret-key-for-tests"

    assert Session.objects.get().applicant_last_name == "Dupont"
    assert apply_encryption_setting().values == personal_values() > 0
    encrypted.SECRET_KEY_FALLBACKS = []
    assert Session.objects.get().applicant_last_name == "Dupont"


def test_the_command_refuses_when_the_keys_cannot_be_made(settings: Any) -> None:
    store_declined()
    settings.VERILOCK_ENCRYPT_FIELDS = True
    with pytest.raises(CommandError, match="SALT_KEY"):
        call_command("encrypt_verilock_data", stdout=StringIO())
    assert "Dupont" in every_stored_value("ses_enc")
    with pytest.raises(CommandError, match="chunk-size"):
        call_command("encrypt_verilock_data", "--chunk-size", "0", stdout=StringIO())


# -- system checks -----------------------------------------------------------------------


def check_ids() -> list[str]:
    return [message.id or "" for message in checks.check_privacy_settings()]


def test_encryption_off_needs_neither_the_library_nor_a_key(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, encryption.LIBRARY_MODULE, None)  # as if not installed
    assert encryption.library_missing()
    assert not {"verilock_django.E045", "verilock_django.E046"} & set(check_ids())
    store_declined()
    assert Session.objects.get().applicant_name == "Jean Dupont"


def test_without_the_library_a_token_shaped_value_is_read_as_stored(
    keys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default install has neither the library nor ``cryptography``."""
    name = encryption.TOKEN_PREFIX + "typed-by-an-applicant"
    Session.objects.create(id="ses_odd", applicant_first_name=name)
    for module in (encryption.LIBRARY_MODULE, "cryptography.fernet"):
        monkeypatch.setitem(sys.modules, module, None)
    encryption._ciphers.cache_clear()

    assert Session.objects.get().applicant_first_name == name
    encryption._ciphers.cache_clear()


def test_encryption_on_without_the_library_is_an_error(
    keys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys.VERILOCK_ENCRYPT_FIELDS = True
    monkeypatch.setitem(sys.modules, encryption.LIBRARY_MODULE, None)
    assert "verilock_django.E045" in check_ids()


@pytest.mark.parametrize("salt", [None, "", [], ["ok", ""], 42])
def test_encryption_on_without_a_usable_salt_key_is_an_error(settings: Any, salt: Any) -> None:
    settings.VERILOCK_ENCRYPT_FIELDS = True
    if salt is None:
        if hasattr(settings, "SALT_KEY"):
            del settings.SALT_KEY
    else:
        settings.SALT_KEY = salt
    assert "verilock_django.E046" in check_ids()


@needs_library
def test_a_complete_encryption_setup_passes_the_checks(encrypted: Any) -> None:
    assert not {"verilock_django.E044", "verilock_django.E045", "verilock_django.E046"} & set(
        check_ids()
    )


# -- the migration -----------------------------------------------------------------------


@pytest.fixture
def migrated_back(transactional_db: None) -> Iterator[Any]:
    """The schema at 0006 for the test; fully migrated again after it."""
    call_command("migrate", "verilock_django", "0006_review_desk", verbosity=0)
    yield (
        MigrationExecutor(connection)
        .loader.project_state(("verilock_django", "0006_review_desk"))
        .apps
    )
    call_command("migrate", "verilock_django", verbosity=0)


def test_the_migration_keeps_existing_values_readable(migrated_back: Any) -> None:
    old_session = migrated_back.get_model("verilock_django", "Session")
    old_session.objects.create(
        id="ses_old",
        applicant_first_name="Jean",
        applicant_email="jean.dupont@example.com",
        applicant_date_of_birth=dt.date(1990, 5, 15),
        payload={"applicant": {"first_name": "Jean"}, "risk_score": 0.5},
    )

    call_command("migrate", "verilock_django", verbosity=0)

    session = Session.objects.get()
    assert (session.applicant_first_name, session.applicant_email) == (
        "Jean",
        "jean.dupont@example.com",
    )
    assert session.applicant_date_of_birth == dt.date(1990, 5, 15)
    assert session.payload == {"applicant": {"first_name": "Jean"}, "risk_score": 0.5}
    assert stored(Session, "ses_old", "applicant_date_of_birth") == "1990-05-15"
