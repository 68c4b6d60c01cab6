"""RFC 8785 canonical JSON and the SHA-256 hash chain built on it."""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardia.core.canonical import GENESIS, MAX_SAFE_INTEGER, canonical_json, chain_hash
from guardia.core.errors import InvalidInput

# RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _parse_as_javascript(data: bytes) -> Any:
    """Parse JSON as JCS sees it: every number is a double, so big integers are floats."""

    def number(text: str) -> int | float:
        value = int(text)
        return value if abs(value) <= MAX_SAFE_INTEGER else float(text)

    return json.loads(data, parse_int=number)


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_numbers_are_written_as_rfc_8785_appendix_b_says(bits: str, expected: str) -> None:
    assert canonical_json(_double(bits)) == expected.encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, "1.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (-0.0, "0"),
        (1.0, "1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e-7, "1e-7"),
        (123e-20, "1.23e-18"),
        (-1234.5e10, "-12345000000000"),
    ],
)
def test_common_numbers_take_the_ecmascript_shortest_form(value: float, expected: str) -> None:
    assert canonical_json(value) == expected.encode()


def test_the_rfc_8785_section_3_2_2_example_canonicalises_exactly() -> None:
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], '
        r'"string": "\u20ac$\u000F\u000aA' + "'" + r'\u0042\u0022\u005c\\\"\/", '
        '"literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(json.loads(source)) == expected.encode("utf-8")


def test_object_keys_sort_by_utf16_code_units_as_rfc_8785_section_3_2_3_shows() -> None:
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(value)))
    # The emoji is the surrogate pair D83D DE00, so it sorts before U+FB33 though its code
    # point is larger: code-point order would get this wrong.
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_strings_escape_only_quote_backslash_and_control_characters() -> None:
    text = 'a"b\\c\b\f\n\r\t\x00\x1f\x7f\u2028/é😀'
    expected = '"a\\"b\\\\c\\b\\f\\n\\r\\t\\u0000\\u001f\x7f\u2028/é😀"'
    assert canonical_json(text) == expected.encode("utf-8")


def test_literals_nesting_and_tuples_have_no_whitespace() -> None:
    value = {"b": [True, False, None, (1, "x")], "a": {"z": -3, "y": {}}, "c": []}
    assert canonical_json(value) == b'{"a":{"y":{},"z":-3},"b":[true,false,null,[1,"x"]],"c":[]}'


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        {1: "integer key"},
        {"when": datetime(2026, 1, 1, tzinfo=UTC)},
        {"day": date(2026, 1, 1)},
        Decimal("10.50"),
        b"bytes",
        {"set"},
        MAX_SAFE_INTEGER + 1,
        -MAX_SAFE_INTEGER - 1,
        "\ud800",
        {"\udc00": 1},
    ],
    ids=repr,
)
def test_values_that_are_not_json_or_not_exact_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput):
        canonical_json(value)


def test_the_largest_safe_integers_are_written_exactly() -> None:
    assert canonical_json([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == (
        b"[9007199254740991,-9007199254740991]"
    )


@given(json_values)
def test_canonical_bytes_parse_back_to_the_same_value(value: Any) -> None:
    assert _parse_as_javascript(canonical_json(value)) == value


@given(json_values)
def test_canonicalising_twice_changes_nothing(value: Any) -> None:
    once = canonical_json(value)
    assert canonical_json(_parse_as_javascript(once)) == once


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_double_round_trips_through_its_canonical_text(value: float) -> None:
    assert float(canonical_json(value)) == value


def test_genesis_is_sixty_four_zeros() -> None:
    assert GENESIS == "0" * 64


def test_chain_hash_is_sha256_of_previous_hex_then_canonical_entry() -> None:
    entry = {"b": 1, "a": "x"}
    expected = hashlib.sha256(GENESIS.encode() + b'{"a":"x","b":1}').hexdigest()
    assert chain_hash(GENESIS, entry) == expected


def test_chain_hash_ignores_key_order_but_not_content() -> None:
    base = chain_hash(GENESIS, {"actor": "ana", "action": "replay"})
    assert chain_hash(GENESIS, {"action": "replay", "actor": "ana"}) == base
    assert chain_hash(GENESIS, {"actor": "anb", "action": "replay"}) != base


def test_a_one_character_change_in_the_previous_hash_changes_the_hash() -> None:
    entry = {"n": 1}
    assert chain_hash("1" + GENESIS[1:], entry) != chain_hash(GENESIS, entry)


@pytest.mark.parametrize("previous", ["", "0" * 63, "A" * 64, "g" * 64, "0" * 65])
def test_chain_hash_refuses_a_previous_hash_that_is_not_64_lowercase_hex(previous: str) -> None:
    with pytest.raises(InvalidInput):
        chain_hash(previous, {"n": 1})
