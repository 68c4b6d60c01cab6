"""Log redaction: a structlog processor that keeps secrets, card data and Mexican PII out of logs.

Two nets (shared/docs/reliability.md §6):

- By key: a value whose key names a secret or PII field becomes "[REDACTED]", whatever it holds
  (None and booleans are kept: they carry nothing). Keys are compared case-insensitively with
  `_`, `-` and spaces ignored, so `api_key`, `X-Api-Key` and `apiKey` all match. "pan" and "ine"
  must be a whole word of the key (`card_pan`, `ineFront`), because as substrings they would hide
  `company`, `span_id`, `line_items` and `timeline`.
- By value, inside every string, however deep: CURP, RFC, 18-digit CLABE, Luhn-valid PAN
  (13-19 digits, unbroken or in groups of 3-6 split by single spaces or dashes), email
  addresses, Mexican phone numbers (10 digits from 2-9, unbroken or as 2-4-4 / 3-3-4 groups split
  by a space or dash, area code optionally in parentheses, optionally after `+52` and the old
  mobile `1`), `whsec_` and `key_` secrets, JWTs, `Bearer` tokens and `user:password@` in URLs
  are replaced by a tag such as "[CURP]". CR, LF and Unicode line breaks become spaces (log
  injection). Other objects are checked through their text form (integers for cards and
  CLABEs only); an object whose repr would leak is replaced by the redacted repr.

Choices worth knowing:

- OXXO references (14 digits, "9300…") are not secret and must stay searchable, so a Luhn-valid
  run of exactly 14 digits starting with 9300 is not taken for a PAN (14-digit card numbers,
  Diners Club, start with 3).
- Any other Luhn-valid 13-19 digit run is a PAN, so a millisecond or nanosecond Unix timestamp
  logged as a bare integer is redacted about one time in ten; log instants as ISO text instead.
- CURP, RFC, CLABE and PAN only match whole tokens, not glued to letters, digits or `_`, so
  prefixed ids (`ord_2yQ8nCk3vJ5dWx9Ra`, even `ord_` + digits), 24-hex event ids and uuid4 hex
  correlation ids survive; a PAN written as `pan_4242…` in a value would survive too.
- Phone numbers carry no check digit, so any 10-digit run starting 2-9 in text is taken for
  one: an amount of 20,000,000.00 MXN or more written in centavos inside a message reads
  "[PHONE]", and so does a 10-digit bank reference. Integers are only checked for cards and
  CLABEs (a phone number is text in every payload we receive): log amounts as integer fields.
- `redact_error_message` also drops the SQL statement and its parameters that SQLAlchemy
  appends to a database error: dead letters and logs keep the cause, not the row's values.
- Place this processor after `format_exc_info`/`dict_tracebacks` and before the renderer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from structlog.typing import EventDict, WrappedLogger

__all__ = [
    "REDACTED",
    "is_sensitive_key",
    "redact_error_message",
    "redact_event",
    "redact_fields",
    "redact_integer",
    "redact_text",
]

REDACTED = "[REDACTED]"
_MAX_DEPTH = 32

_KEY_SUBSTRINGS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "apikey",
    "digest",
    "signature",
    "curp",
    "rfc",
    "clabe",
    "card",
    "cvv",
    "privatekey",
    "cookie",
    "email",
    "phone",
    "telefono",
    "celular",
    "whatsapp",
)
_KEY_WORDS = frozenset({"pan", "ine"})
_KEY_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

_LINE_BREAKS = str.maketrans(dict.fromkeys("\r\n\x0b\x0c\x85\u2028\u2029", " "))

_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@")
_BEARER = re.compile(r"\b(bearer)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=_-]+")
_API_KEY = re.compile(r"(?<![A-Za-z0-9_])key_[A-Za-z0-9]{16,}")
_CURP = re.compile(
    r"(?<![A-Z0-9_-])[A-Z][AEIOUX][A-Z]{2}[0-9]{6}[HM][A-Z]{5}[A-Z0-9][0-9](?![A-Z0-9_-])",
    re.IGNORECASE,
)
_RFC = re.compile(r"(?<![A-ZÑ&0-9_-])[A-ZÑ&]{3,4}[0-9]{6}[A-Z0-9]{3}(?![A-Z0-9_-])", re.IGNORECASE)
# RFC 5322 atext in the local part; the lookbehind takes the whole local part or nothing.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9!#$%&'*+/=?^_`{|}~.-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?![A-Za-z0-9-])"
)
# Mexico's numbering plan since 2019: 10 national digits, the first 2-9 (area codes of 2 or 3
# digits); "+52 1" was the mobile prefix before and still appears in stored contacts.
_PHONE = re.compile(
    r"(?<![A-Za-z0-9_+])(?<![0-9][ -])"
    r"(?:\+52[ -]?(?:1[ -]?)?)?"
    r"(?:\(?[2-9][0-9]\)?[ -]?[0-9]{4}[ -]?[0-9]{4}|\(?[2-9][0-9]{2}\)?[ -]?[0-9]{3}[ -]?[0-9]{4})"
    r"(?![A-Za-z0-9_])(?![ -][0-9])"
)
_SQL_DETAILS = re.compile(r"\n?\[SQL: .*?(?=\n\(Background on this error at:|\Z)", re.DOTALL)
_DIGIT_RUN = re.compile(r"(?<![A-Za-z0-9_])[0-9]+(?:[ -][0-9]+)*(?![A-Za-z0-9_])")
_DIGITS = re.compile(r"[0-9]+")

_CLABE_WEIGHTS = (3, 7, 1)


def is_sensitive_key(key: str) -> bool:
    """Tell whether a field name marks its value as a secret or PII."""
    compact = re.sub(r"[^a-z0-9]", "", key.lower())
    if any(part in compact for part in _KEY_SUBSTRINGS):
        return True
    return any(word.lower() in _KEY_WORDS for word in _KEY_WORD.findall(key))


def redact_text(text: str) -> str:
    """Strip line breaks and replace every secret or PII pattern in a string by its tag."""
    text = text.translate(_LINE_BREAKS)
    text = _URL_CREDENTIALS.sub("[CREDENTIALS]@", text)
    text = _EMAIL.sub("[EMAIL]", text)
    text = _BEARER.sub(r"\1 [TOKEN]", text)
    text = _JWT.sub("[JWT]", text)
    text = _WEBHOOK_SECRET.sub("[SECRET]", text)
    text = _API_KEY.sub("[SECRET]", text)
    text = _CURP.sub("[CURP]", text)
    text = _RFC.sub("[RFC]", text)
    text = _PHONE.sub("[PHONE]", text)
    return _DIGIT_RUN.sub(_redact_digit_run, text)


def redact_integer(value: int) -> int | str:
    """Return an integer unchanged, or its redacted text when it is a card number or CLABE."""
    text = str(value)
    redacted = _DIGIT_RUN.sub(_redact_digit_run, text)
    return value if redacted == text else redacted


def redact_error_message(message: str) -> str:
    """An exception's message fit to store or show: a database error's SQL statement and
    parameters dropped, secrets and PII redacted."""
    return redact_text(_SQL_DETAILS.sub("", message))


def redact_event(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: return a copy of the event with secrets and PII redacted."""
    return redact_fields(event_dict)


def redact_fields(values: Mapping[str, object]) -> dict[str, object]:
    """Return a copy of named values with secrets and PII redacted by key and by value."""
    return {key: _redact_field(key, value, 0) for key, value in values.items()}


def _redact_field(key: object, value: object, depth: int) -> object:
    if value is None or isinstance(value, bool):
        return value
    if is_sensitive_key(str(key)):
        return REDACTED
    return _redact_value(value, depth)


def _redact_value(value: object, depth: int) -> object:
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if depth >= _MAX_DEPTH:
        return "[TOO DEEP]"
    if isinstance(value, Mapping):
        return {k: _redact_field(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(item, depth + 1) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(item, depth + 1) for item in value)
    if isinstance(value, set | frozenset):
        return [_redact_value(item, depth + 1) for item in value]
    if isinstance(value, bytes | bytearray):
        return _redacted_or_same(value, bytes(value).decode("utf-8", errors="replace"))
    if isinstance(value, int):
        return redact_integer(value)
    return _redacted_or_same(value, repr(value))


def _redacted_or_same(value: object, text: str) -> object:
    """The original object if its text form is clean, else the redacted text."""
    redacted = redact_text(text)
    return value if redacted == text else redacted


def _redact_digit_run(match: re.Match[str]) -> str:
    """Redact the longest CLABE or PAN windows of whole digit groups within one run."""
    run = match.group(0)
    groups = [(m.start(), m.end()) for m in _DIGITS.finditer(run)]
    pieces: list[str] = []
    cursor = 0
    i = 0
    while i < len(groups):
        found: tuple[int, str] | None = None
        digits = ""
        sizes: list[int] = []
        for j in range(i, len(groups)):
            group = run[groups[j][0] : groups[j][1]]
            digits += group
            sizes.append(len(group))
            if len(digits) > 19:
                break
            tag = _digit_tag(digits, sizes)
            if tag is not None:
                found = (j, tag)
        if found is None:
            i += 1
            continue
        last, tag = found
        pieces.append(run[cursor : groups[i][0]])
        pieces.append(tag)
        cursor = groups[last][1]
        i = last + 1
    pieces.append(run[cursor:])
    return "".join(pieces)


def _digit_tag(digits: str, sizes: list[int]) -> str | None:
    """Tag a window of digit groups; grouped windows must look like how people write them."""
    grouped = len(sizes) > 1
    if len(digits) == 18:
        # Unbroken: any 18 digits. Grouped ("646 180 15720019845 7"): needs the check digit,
        # and no group as long as a whole OXXO reference.
        if not grouped or (max(sizes) <= 11 and _clabe_check_ok(digits)):
            return "[CLABE]"
    if 13 <= len(digits) <= 19 and _luhn_ok(digits):
        if len(digits) == 14 and digits.startswith("9300"):
            return None  # an OXXO reference, not a card
        # Cards are written in groups of 3 to 6 digits (4-4-4-4, 4-6-5, 4-4-4-4-3).
        if grouped and not all(3 <= size <= 6 for size in sizes):
            return None
        return "[PAN]"
    return None


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _clabe_check_ok(digits: str) -> bool:
    total = sum(int(d) * _CLABE_WEIGHTS[i % 3] % 10 for i, d in enumerate(digits[:17]))
    return (10 - total % 10) % 10 == int(digits[17])
