"""RFC 8785 (JCS) canonical JSON, and the SHA-256 hash chain built on it.

`canonical_json` serialises the JSON value types Guardia hashes: mappings with `str` keys, lists
(and tuples), `str`, `int`, `float`, `bool` and `None`. Anything else (datetimes, Decimals, UUIDs,
bytes, sets) raises `InvalidInput`: callers convert first, so the hashed form is always a choice
made in plain sight.

RFC 8785 in brief (https://www.rfc-editor.org/rfc/rfc8785):

- no whitespace; object members sorted by the UTF-16 code units of their names;
- strings escape only `"`, `\\` and U+0000-U+001F (`\\b \\t \\n \\f \\r` short forms, the rest
  as lowercase `\\u00xx`); everything else is written as itself, in UTF-8;
- numbers are IEEE-754 doubles written as ECMAScript's `Number.prototype.toString` does
  (shortest round-trip digits; `-0` is `0`; exponent form below 1e-6 and from 1e21 up);
  NaN and the infinities are not JSON and are refused.

Integers outside the I-JSON safe range (|n| > 2**53 - 1) are refused rather than silently
rounded to the nearest double, as the `rfc8785` reference package does: write them as strings.
Lone surrogates are refused because they cannot be encoded as UTF-8.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping

from guardia.core.errors import InvalidInput

__all__ = ["GENESIS", "MAX_SAFE_INTEGER", "canonical_json", "chain_hash"]

GENESIS = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1
_MAX_DEPTH = 64
_HEX64 = re.compile(r"[0-9a-f]{64}")

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
_ESCAPES: dict[int, str] = {
    **{code: f"\\u{code:04x}" for code in range(0x20)},
    **{ord(char): escaped for char, escaped in _SHORT_ESCAPES.items()},
}


def canonical_json(value: object) -> bytes:
    """Serialise a JSON value to its RFC 8785 canonical UTF-8 bytes."""
    parts: list[str] = []
    _write(value, parts, "$", 0)
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("canonical JSON: a string holds a lone surrogate") from exc


def chain_hash(previous_hex: str, entry: Mapping[str, object]) -> str:
    """Return hex SHA-256 of the previous hash's ASCII followed by the entry's canonical JSON."""
    if not _HEX64.fullmatch(previous_hex):
        raise InvalidInput("chain_hash: previous hash must be 64 lowercase hex digits")
    if not isinstance(entry, Mapping):
        raise InvalidInput("chain_hash: an entry must be a JSON object")
    return hashlib.sha256(previous_hex.encode("ascii") + canonical_json(entry)).hexdigest()


def _write(value: object, parts: list[str], path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidInput(f"canonical JSON: nesting deeper than {_MAX_DEPTH} at {path}")
    # bool before int: True is an int in Python, but `true` in JSON.
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(_string(value))
    elif isinstance(value, int):
        parts.append(_integer(value, path))
    elif isinstance(value, float):
        parts.append(_number(value, path))
    elif isinstance(value, Mapping):
        _write_object(value, parts, path, depth)
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _write(item, parts, f"{path}[{index}]", depth + 1)
        parts.append("]")
    else:
        raise InvalidInput(
            f"canonical JSON: {type(value).__name__} at {path} is not a JSON value; convert it "
            "first (datetimes to ISO-8601 text, Decimals to strings)"
        )


def _write_object(value: Mapping[object, object], parts: list[str], path: str, depth: int) -> None:
    keys: list[str] = []
    for key in value:
        if not isinstance(key, str):
            raise InvalidInput(f"canonical JSON: object key {key!r} at {path} is not a string")
        keys.append(key)
    keys.sort(key=_utf16_units)
    parts.append("{")
    for index, key in enumerate(keys):
        if index:
            parts.append(",")
        parts.append(_string(key))
        parts.append(":")
        _write(value[key], parts, f"{path}.{key}", depth + 1)
    parts.append("}")


def _utf16_units(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly as the code-unit sequences do (RFC 8785 §3.2.3).
    try:
        return key.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise InvalidInput("canonical JSON: an object key holds a lone surrogate") from exc


def _string(value: str) -> str:
    return '"' + value.translate(_ESCAPES) + '"'


def _integer(value: int, path: str) -> str:
    if abs(value) > MAX_SAFE_INTEGER:
        raise InvalidInput(
            f"canonical JSON: integer at {path} is outside ±(2**53 - 1); write it as a string"
        )
    return str(value)


def _number(value: float, path: str) -> str:
    """Format a double as ECMAScript's Number.prototype.toString (ECMA-262 §6.1.6.1.20)."""
    if not math.isfinite(value):
        raise InvalidInput(f"canonical JSON: {value!r} at {path} is not a JSON number")
    if value == 0:
        return "0"  # also -0.0
    sign = "-" if value < 0 else ""
    digits, n = _shortest_digits(abs(value))
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        exponent = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"
    return sign + body


def _shortest_digits(value: float) -> tuple[str, int]:
    """Return (s, n) with value = 0.s * 10**n, s the shortest round-trip digits."""
    # repr() gives the shortest digit string that round-trips, choosing the closest candidate,
    # which is what ECMAScript asks for.
    mantissa, _, exp_text = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    raw = (whole + fraction).lstrip("0")
    stripped = raw.rstrip("0")
    exponent = int(exp_text or "0") - len(fraction) + (len(raw) - len(stripped))
    return stripped, len(stripped) + exponent
