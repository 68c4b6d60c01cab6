"""Strict JSON parsing of untrusted bodies: what Python's json would let through is refused."""

from __future__ import annotations

import pytest

from guardia.core import strict_json
from guardia.core.errors import InvalidInput


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"a": NaN}', "NaN is not JSON"),
        (b'{"a": -Infinity}', "-Infinity is not JSON"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b'{"a": ["x\\u0000"]}', "NUL"),
        (b"[" * 1000 + b"]" * 1000, "nested deeper"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b"\xff{}", "not UTF-8"),
        (b'{"a": ', "not JSON"),
    ],
)
def test_a_body_python_would_accept_or_crash_on_is_invalid_input(body: bytes, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        strict_json.parse(body)


def test_ordinary_json_with_escapes_and_paired_surrogates_parses() -> None:
    document = strict_json.parse(b'{"emoji": "\\ud83d\\ude00", "n": [1, 2.5, null, true]}')
    assert document == {"emoji": "\U0001f600", "n": [1, 2.5, None, True]}


def test_nesting_up_to_the_limit_parses() -> None:
    depth = strict_json.MAX_DEPTH
    assert strict_json.parse("[" * depth + "]" * depth) is not None
    with pytest.raises(InvalidInput):
        strict_json.parse("[" * (depth + 1) + "]" * (depth + 1))
