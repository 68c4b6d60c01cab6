"""Parsing JSON from outside: refuse what RFC 8259 forbids and what PostgreSQL cannot store.

Python's `json.loads` is lenient where an attacker can hurt us: it accepts `NaN`, `Infinity` and
`-Infinity` (not JSON, RFC 8259 §6), it turns `"\\ud800"` into a lone surrogate that no UTF-8
encoder accepts (psycopg fails on it), it turns `"\\u0000"` into a NUL that PostgreSQL refuses in
`text` and `jsonb`, and deep nesting raises `RecursionError` instead of a parse error. Each of
these would otherwise surface as a 500 far from the request; `parse` turns them all into
`InvalidInput` at the edge.
"""

from __future__ import annotations

import json
import re
from typing import Any

from guardia.core.errors import InvalidInput

MAX_DEPTH = 64  # Conekta events nest about 6 levels; nothing we accept needs more than a few
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Name what makes a string unstorable in PostgreSQL text (NUL, lone surrogate), if any."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "a lone surrogate"


def _refuse_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not JSON")


def parse(body: bytes | str) -> Any:
    """Parse a JSON document, or raise InvalidInput saying what is wrong with it."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        document = json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"body is not JSON: {exc.msg} at {exc.pos}") from exc
    except RecursionError as exc:
        raise InvalidInput(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    _check(document)
    return document


def _check(document: Any) -> None:
    """Walk the document without recursion: depth, and every key and string storable."""
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise InvalidInput(f"JSON nested deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    pending.append((item, depth + 1))
            else:
                pending.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    problem = unstorable(text)
    if problem is not None:
        raise InvalidInput(f"a JSON string holds {problem}")
