"""Odoo search domains and `order` specs, evaluated in memory with the ORM's own error texts.

Follows `odoo/osv/expression.py` (16.0): `normalize_domain` turns leaves into tuples and adds the
implicit `&`; an unknown field raises `ValueError("Invalid field <model>.<f> in leaf <leaf>")`
(odoo.md §4.2, §10.3); `!=` and `not in` also match NULL, as the SQL Odoo generates does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol

from guardia.sandbox.odoo.errors import python_error
from guardia.sandbox.odoo.schema import ModelSchema

Row = dict[str, Any]

AND: Final = "&"
OR: Final = "|"
NOT: Final = "!"
TRUE_LEAF: Final = (1, "=", 1)
FALSE_LEAF: Final = (0, "=", 1)
TERM_OPERATORS: Final = (
    "=",
    "!=",
    "<=",
    "<",
    ">",
    ">=",
    "=?",
    "=like",
    "=ilike",
    "like",
    "not like",
    "ilike",
    "not ilike",
    "in",
    "not in",
    "child_of",
    "parent_of",
    "any",
    "not any",
)
_ORDER_TERM = re.compile(
    r"^\s*([a-z0-9_]+(?:\.[a-z0-9_]+)?)(\s+(asc|desc))?(\s+nulls\s+(first|last))?\s*$", re.I
)


class Source(Protocol):
    """What the evaluator needs from the ORM."""

    def schema(self, model: str) -> ModelSchema:
        """Return a model's schema."""
        ...

    def raw(self, model: str, row: Row, fname: str) -> Any:
        """Return a field's raw value: ids for relations, Decimal for money, None when empty."""
        ...

    def live_rows(self, model: str) -> list[Row]:
        """Return every existing row of a model."""
        ...

    def display_name(self, model: str, rid: int) -> str:
        """Return a record's display name."""
        ...


def is_leaf(token: object) -> bool:
    """Return whether `token` is a domain term (case-sensitive operator, as in 16.0)."""
    if not isinstance(token, list | tuple) or len(token) != 3:
        return False
    left, op = token[0], token[1]
    if op not in (*TERM_OPERATORS, "<>"):
        return False
    return (isinstance(left, str) and bool(left)) or tuple(token) in (TRUE_LEAF, FALSE_LEAF)


def normalize(domain: object) -> list[Any]:
    """Return the domain in prefix form with explicit `&` operators and tuple leaves."""
    if not isinstance(domain, list | tuple):
        raise python_error(
            "AssertionError",
            "Domains to normalize must have a 'domain' form: a list or tuple of domain components",
        )
    if not domain:
        return [TRUE_LEAF]
    arity = {NOT: 1, AND: 2, OR: 2}
    result: list[Any] = []
    expected = 1
    for token in domain:
        if expected == 0:
            result[0:0] = [AND]
            expected = 1
        if isinstance(token, list | tuple):
            expected -= 1
            token = tuple(token)
        else:
            expected += arity.get(token, 0) - 1 if isinstance(token, str) else -1
        result.append(token)
    if expected != 0:
        raise python_error(
            "AssertionError", f"This domain is syntactically not correct: {list(domain)!r}"
        )
    for token in result:
        if isinstance(token, str) and token in arity:
            continue
        if not is_leaf(token):
            raise python_error("ValueError", f"Invalid leaf {token!s}")
    return result


def _leaf(token: tuple[Any, ...]) -> tuple[Any, str, Any]:
    left, op, right = token
    op = str(op).lower()
    if op == "<>":
        op = "!="
    if isinstance(right, bool) and op in ("in", "not in"):
        right = [right]
    return left, op, right


def _like(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("^" + "".join(out) + "$", 0 if case_sensitive else re.I | re.S)


def _num(value: object) -> Any:
    """Make numbers comparable with stored Decimals."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float | int):
        try:
            return Decimal(repr(value))
        except InvalidOperation:
            return value
    return value


def _eq(stored: Any, value: Any) -> bool:
    if isinstance(stored, Decimal):
        value = _num(value)
    return bool(stored == value)


def _compare(stored: Any, op: str, value: Any) -> bool:
    if stored is None or value is None or value is False:
        return False
    if isinstance(stored, Decimal):
        value = _num(value)
    try:
        if op == "<":
            return bool(stored < value)
        if op == "<=":
            return bool(stored <= value)
        if op == ">":
            return bool(stored > value)
        return bool(stored >= value)
    except TypeError:
        return False


class Evaluator:
    """Evaluate domains against the rows of one model."""

    def __init__(self, source: Source, *, active_test: bool = True) -> None:
        self.src = source
        self.active_test = active_test

    def search(self, model: str, domain: object) -> list[Row]:
        """Return the rows matching `domain` (archived rows hidden unless asked for)."""
        prefix = normalize(domain)
        schema = self.src.schema(model)
        rows = self.src.live_rows(model)
        if self.active_test and "active" in schema.fields and not _mentions(prefix, "active"):
            rows = [r for r in rows if self.src.raw(model, r, "active") is not False]
        return [row for row in rows if self._match(model, row, prefix)]

    def _match(self, model: str, row: Row, prefix: list[Any]) -> bool:
        pos = 0

        def walk() -> bool:
            nonlocal pos
            token = prefix[pos]
            pos += 1
            if token == NOT:
                return not walk()
            if token == AND:
                left = walk()
                right = walk()
                return left and right
            if token == OR:
                left = walk()
                right = walk()
                return left or right
            return self._leaf(model, row, token)

        return walk()

    def _leaf(self, model: str, row: Row, token: tuple[Any, ...]) -> bool:
        if tuple(token) == TRUE_LEAF:
            return True
        if tuple(token) == FALSE_LEAF:
            return False
        left, op, right = _leaf(token)
        schema = self.src.schema(model)
        head, _, rest = str(left).partition(".")
        fdef = schema.fields.get(head)
        if fdef is None:
            raise python_error(
                "ValueError", f"Invalid field {model}.{head} in leaf {(left, op, right)!s}"
            )
        stored = self.src.raw(model, row, head)
        if rest:
            if not fdef.relational or fdef.relation is None:
                raise python_error(
                    "ValueError", f"Invalid field {model}.{left} in leaf {(left, op, right)!s}"
                )
            ids = {
                r["id"]
                for r in Evaluator(self.src, active_test=False).search(
                    fdef.relation, [(rest, op, right)]
                )
            }
            linked = _as_ids(stored)
            return bool(ids & set(linked))
        if fdef.relational and fdef.relation is not None:
            return self._relational(fdef.type, fdef.relation, stored, op, right)
        return _scalar(stored, op, right)

    def _relational(self, ftype: str, comodel: str, stored: Any, op: str, right: Any) -> bool:
        ids = _as_ids(stored)
        if op in ("any", "not any"):
            matched = {r["id"] for r in self.search(comodel, right)}
            hit = bool(matched & set(ids))
            return hit if op == "any" else not hit
        if op in ("child_of", "parent_of"):
            op = "in"
        names = [self.src.display_name(comodel, i) for i in ids]
        if isinstance(right, str) and op not in ("in", "not in"):
            if op in ("=", "!="):
                hit = right in names
                return hit if op == "=" else (not hit)
            return (
                any(_scalar(name, op, right) for name in names) if names else op.startswith("not")
            )
        if op in ("=", "!=", "in", "not in"):
            wanted = right if isinstance(right, list | tuple) else [right]
            empty_ok = any(w is False or w is None for w in wanted)
            hit = bool(set(ids) & {w for w in wanted if isinstance(w, int) and w is not False})
            hit = hit or (empty_ok and not ids)
            if op in ("=", "in"):
                return hit
            # != and not in also return the rows where the column is NULL
            return not hit or (not ids and not empty_ok)
        if op == "=?":
            return (
                True
                if right is None or right is False
                else self._relational(ftype, comodel, stored, "=", right)
            )
        if ftype == "many2one":
            return _compare(ids[0] if ids else None, op, right)
        return False


def _mentions(prefix: list[Any], fname: str) -> bool:
    return any(
        isinstance(t, tuple) and isinstance(t[0], str) and t[0].split(".")[0] == fname
        for t in prefix
    )


def _as_ids(stored: Any) -> list[int]:
    if stored is None or stored is False:
        return []
    if isinstance(stored, list):
        return [int(i) for i in stored]
    return [int(stored)]


def _scalar(stored: Any, op: str, right: Any) -> bool:
    empty = stored is None
    if op == "=?":
        return True if right is None or right is False else _scalar(stored, "=", right)
    if op == "=":
        if right is False or right is None:
            return empty or stored is False
        return not empty and _eq(stored, right)
    if op == "!=":
        if right is False or right is None:
            return not (empty or stored is False)
        return empty or not _eq(stored, right)
    if op in ("in", "not in", "child_of", "parent_of"):
        values = right if isinstance(right, list | tuple) else [right]
        with_null = any(v is False or v is None for v in values)
        hit = (empty and with_null) or (not empty and any(_eq(stored, v) for v in values))
        if op == "not in":
            return not hit or (empty and not with_null)
        return hit
    if op in ("like", "ilike", "=like", "=ilike", "not like", "not ilike"):
        if right is False or right is None:
            hit = empty
            return hit if not op.startswith("not") else not hit
        if empty:
            return op.startswith("not")
        text = str(stored)
        pattern = str(right) if op.startswith("=") else f"%{right}%"
        hit = bool(_like(pattern, case_sensitive=op in ("like", "=like", "not like")).match(text))
        return not hit if op.startswith("not") else hit
    if op in ("<", "<=", ">", ">="):
        return _compare(stored, op, right)
    return False


def parse_order(model: ModelSchema, order: object) -> list[tuple[str, bool, bool]]:
    """Return `(field, descending, nulls_first)` triples, raising the ORM's ValueErrors."""
    if order is None or order is False or order == "":
        order = model.order
    if not isinstance(order, str):
        raise python_error("ValueError", f'Invalid "order" specified ({order!s}).')
    terms: list[tuple[str, bool, bool]] = []
    for part in order.split(","):
        match = _ORDER_TERM.match(part)
        if match is None:
            raise python_error(
                "ValueError",
                f'Invalid "order" specified ({order}). A valid "order" specification is a '
                "comma-separated list of valid field names (optionally followed by asc/desc for "
                "the direction)",
            )
        fname = match.group(1).split(".")[0]
        if fname not in model.fields:
            raise python_error("ValueError", f"Invalid field {fname!r} on model {model.name!r}")
        desc = (match.group(3) or "asc").lower() == "desc"
        nulls = match.group(5)
        # PostgreSQL's default: NULLs are largest, so last ascending and first descending.
        nulls_first = desc if nulls is None else nulls.lower() == "first"
        terms.append((fname, desc, nulls_first))
    return terms


def sort_rows(
    rows: Sequence[Row],
    terms: list[tuple[str, bool, bool]],
    key_of: Callable[[Row, str], Any],
) -> list[Row]:
    """Sort rows by the parsed order terms, NULLs placed as PostgreSQL places them."""
    out = list(rows)
    for fname, desc, nulls_first in reversed(terms):
        keyed = [(key_of(row, fname), row) for row in out]
        present = [pair for pair in keyed if pair[0] is not None]
        missing = [row for key, row in keyed if key is None]
        present.sort(key=lambda pair: pair[0], reverse=desc)  # stable, also when reversed
        ordered = [row for _, row in present]
        out = missing + ordered if nulls_first else ordered + missing
    return out
