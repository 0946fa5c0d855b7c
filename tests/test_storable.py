"""The storage rules: JSON every database keeps, and JSON bodies read with bounded nesting."""

from __future__ import annotations

import json
import math
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verilock_django.exceptions import PayloadError
from verilock_django.storable import (
    clean_text,
    field_label,
    is_storable_text,
    number_from_text,
    parse_json_body,
    storable_json,
)


def test_strings_and_keys_lose_nul_and_lone_surrogates() -> None:
    value = {"na\x00me": ["Marchet\x00ti", "\ud800x\udfff", "ok \U0001f600"], "\ud83d": 1}
    assert storable_json(value) == {
        "name": ["Marchetti", "\ufffdx\ufffd", "ok \U0001f600"],
        "\ufffd": 1,
    }


def test_keys_that_become_equal_keep_the_first_place_and_the_last_value() -> None:
    # As a JSON decoder reads a repeated key ({"1": "a", "1": "b"} is {"1": "b"}).
    assert list(storable_json({1: "a", "x": 0, "1": "b"}).items()) == [("1", "b"), ("x", 0)]
    assert storable_json({"a\x00": 1, "a": 2}) == {"a": 2}


def test_numbers_no_json_column_holds_become_text_and_the_rest_pass() -> None:
    value = [math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1, 2**63 - 1, -(2**63), 0.5, True]
    assert storable_json(value) == [
        "NaN",
        "Infinity",
        "-Infinity",
        str(2**63),
        str(-(2**63) - 1),
        2**63 - 1,
        -(2**63),
        0.5,
        True,
    ]


def test_what_storable_json_writes_for_a_number_is_read_back_as_that_number() -> None:
    assert math.isnan(number_from_text(storable_json(math.nan)) or 0.0)
    assert number_from_text(storable_json(-math.inf)) == -math.inf
    assert number_from_text(storable_json(10**400)) == 10**400
    assert number_from_text("12") is None  # a short digit string is text, not a number
    assert number_from_text(12) is None


def test_the_copy_is_new_and_the_input_untouched() -> None:
    value = {"a": [{"b": "x\x00"}], "t": (1, 2)}
    copy = storable_json(value)
    assert copy == {"a": [{"b": "x"}], "t": [1, 2]}
    assert value == {"a": [{"b": "x\x00"}], "t": (1, 2)}


def test_non_string_keys_are_written_as_json_writes_them() -> None:
    assert storable_json({2: "a", None: "b", False: "c"}) == {"2": "a", "null": "b", "false": "c"}


def test_nesting_beyond_the_limit_is_refused_naming_the_path() -> None:
    value: object = "leaf"
    for _ in range(5000):
        value = [value]
    with pytest.raises(PayloadError) as caught:
        storable_json({"details": {"items": value}}, max_depth=4)
    assert caught.value.field == "details.items[0][0]"
    assert caught.value.problem == "nested deeper than 4 levels"
    assert storable_json({"a": {"b": [1]}}, max_depth=3) == {"a": {"b": [1]}}


def test_a_self_referencing_structure_is_refused_not_looped_over() -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(PayloadError, match="nested deeper"):
        storable_json(loop)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"when": object()}, "not a JSON value (object)"),
        ({"amount": {1.5j: 1}}, "an object key that is not a string"),
    ],
)
def test_values_that_are_not_json_are_refused_by_path(value: object, problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        storable_json(value, field="metadata")
    assert caught.value.problem == problem
    assert caught.value.field.startswith("metadata.")


def test_an_integer_too_long_to_write_out_is_refused_by_path() -> None:
    limit = sys.get_int_max_str_digits()
    if not limit:  # pragma: no cover - an interpreter run without the limit
        pytest.skip("this interpreter writes out integers of any length")
    with pytest.raises(PayloadError) as caught:
        storable_json({"n": 10 ** (limit + 1)})
    assert (caught.value.field, caught.value.problem) == ("n", "a number too long to store")


def test_error_field_names_are_printable_and_short() -> None:
    key = "bad\x00\nkey" + "k" * 100
    with pytest.raises(PayloadError) as caught:
        storable_json({key: [[]]}, max_depth=2)
    assert caught.value.field == field_label(clean_text(key)) + "[0]"
    assert caught.value.field.startswith("bad?key") and len(caught.value.field) == 43


def test_a_body_nested_5000_levels_deep_is_refused_without_recursion_error() -> None:
    body = b"[" * 5000 + b"]" * 5000
    with pytest.raises(PayloadError) as caught:
        parse_json_body(body, max_depth=64)
    assert (caught.value.field, caught.value.problem) == ("(body)", "nested deeper than 64 levels")
    too_deep_for_python = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    with pytest.raises(PayloadError, match="nested deeper than 64 levels"):
        parse_json_body(too_deep_for_python, max_depth=64)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    body = json.dumps({"note": '[[[[{{{{\\"[[[[', "list": [[1]]}).encode()
    assert parse_json_body(body, max_depth=3) == json.loads(body)
    with pytest.raises(PayloadError):
        parse_json_body(body, max_depth=2)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b'{"a": ', "not a JSON document"),
        (b'"unterminated [[[[', "not a JSON document"),
        (b"1" * 5000, "not a JSON document"),  # more digits than Python reads
    ],
)
def test_bodies_that_cannot_be_read_are_refused_without_quoting_them(
    body: bytes, problem: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_json_body(body, max_depth=64)
    assert (caught.value.field, caught.value.problem) == ("(body)", problem)


def test_a_body_within_the_limit_is_read_as_json_reads_it() -> None:
    body = b'\xef\xbb\xbf{"a": [1, 2.5, "x", null, NaN], "b": {"c": true}}'
    value = parse_json_body(body, max_depth=3)
    assert value["b"] == {"c": True} and math.isnan(value["a"][4])


def test_a_body_is_read_as_utf_8_with_an_optional_bom() -> None:
    assert parse_json_body(b"\xef\xbb\xbf[1]", max_depth=1) == [1]
    assert parse_json_body('["é"]'.encode(), max_depth=1) == ["é"]
    for body in (b'["\xed\xa0\x80"]', b"\xef\xbb\xbf\xef\xbb\xbf[1]"):  # encoded surrogate, 2 BOMs
        with pytest.raises(PayloadError):
            parse_json_body(body, max_depth=1)


# -- bodies storable as read --------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too
    st.floats(),  # NaN and infinities too
    st.text(st.characters(exclude_categories=()), max_size=8),  # NUL and lone surrogates too
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(st.characters(exclude_categories=()), max_size=4), children),
    ),
    max_leaves=12,
)


@given(json_values, st.booleans())
def test_a_body_said_storable_as_read_decodes_to_what_storable_json_keeps(
    value: object, ascii_only: bool
) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if not is_storable_text(body):
        return
    try:
        decoded = parse_json_body(body, max_depth=64)
    except PayloadError:
        return  # not UTF-8 (a raw surrogate): refused before anything is stored
    assert storable_json(decoded) == decoded


@given(
    st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,4})?", fullmatch=True)
)
def test_a_number_said_storable_as_read_is_one_every_json_column_stores(number: str) -> None:
    body = f"[{number}]".encode()
    if is_storable_text(body):
        (value,) = json.loads(body)
        assert storable_json(value) == value  # finite, and an integer within 64 bits


@pytest.mark.parametrize(
    "body",
    [
        rb'{"a": "x\u0000"}',
        rb'{"a\uD83D": 1}',
        rb'["\udfff"]',
        b"[NaN]",
        b"[-Infinity]",
        b"[1e999]",
        b"[1E+309]",
        b"[9223372036854775808]",
    ],
)
def test_a_body_that_may_need_cleaning_is_not_said_storable(body: bytes) -> None:
    assert not is_storable_text(body)
    assert storable_json(json.loads(body)) != json.loads(body)  # it does need cleaning


def test_an_ordinary_delivery_is_said_storable_as_read() -> None:
    body = json.dumps(
        {
            "event": "session.completed",
            "data": {"session_id": "ses_1", "name": "José", "risk_score": 0.25, "n": 10**17},
            "timestamp": "2026-03-15T10:45:22Z",
        }
    ).encode()
    assert is_storable_text(body)


@pytest.mark.parametrize(
    "text_id",
    ["wh_evt_20efe786e272", "wh_b099e6355df8", "ses_1e400x", "a.1e400", "tok-5e308"],
)
def test_an_exponent_shape_inside_a_string_id_is_not_a_number(text_id: str) -> None:
    # Hex ids end in "6e272" about once in a hundred: no JSON number starts inside a word.
    body = json.dumps({"event": "session.completed", "webhook_id": text_id}).encode()
    assert is_storable_text(body)
