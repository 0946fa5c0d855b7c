"""Masked personal data for staff without the permission."""

from __future__ import annotations

import datetime as dt

from verilock_django.masking import mask_date, mask_document, mask_email, mask_json, mask_name


def test_masks_follow_the_documented_forms() -> None:
    assert mask_name("Jean Dupont") == "J*** D*****"
    assert mask_email("jean.dupont@example.com") == "j***@example.com"
    assert mask_email("not-an-email") == "***"
    assert mask_document("12AB34567") == "******567"
    assert mask_document("AB") == "**"
    assert mask_date(dt.date(1990, 5, 15)) == "1990"
    assert mask_date("1990-05-15") == "1990"
    assert mask_date(None) == ""


def test_mask_json_masks_personal_keys_at_any_depth_and_keeps_the_rest() -> None:
    payload = {
        "id": "ses_1",
        "applicant": {"first_name": "Jean", "email": "j@x.org", "nationality": "FR"},
        "applicant_name": "Jean Dupont",
        "results": {
            "document": {"details": {"document_number": "12AB34567", "issuing_country": "FR"}}
        },
        "aml_screening": {"matches": [{"matched_name": "Ivan Petrov", "match_score": 0.9}]},
        "extracted_data": {"date_of_birth": "1990-05-15", "last_name": None},
    }

    masked = mask_json(payload)

    assert masked["id"] == "ses_1"
    assert masked["applicant"] == {
        "first_name": "J***",
        "email": "j***@x.org",
        "nationality": "***",
    }
    assert masked["applicant_name"] == "J*** D*****"
    assert masked["results"]["document"]["details"] == {
        "document_number": "******567",
        "issuing_country": "FR",
    }
    assert masked["aml_screening"]["matches"] == [
        {"matched_name": "I*** P*****", "match_score": 0.9}
    ]
    assert masked["extracted_data"] == {"date_of_birth": "1990", "last_name": None}
    assert payload["applicant_name"] == "Jean Dupont"  # a copy: the original is untouched
