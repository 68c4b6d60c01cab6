"""The orphan bank line of runbook 3 and what surrounds it: the line as the recon store keeps
it, the ledger entries near it, and how each of them differs from it.

The line is named by the id the recon store keeps it under: ``recon_lines.line_id`` =
``"<first 12 hex digits of the file's SHA-256>:<row_no>"``, the id that runs, exceptions
(`bank_line_id`), manual matches and the incident's ``neon_statement_line`` all use.

Where the facts come from:

- the line, its run (the latest run that read the line's statement), matches, exceptions and
  manual actions: the recon store;
- the ledger side: pulled again from the providers with `guardia.recon.ledger.build_ledger`
  (what `guardia recon ledger` writes), because a run stores only its ledger file's name. It is
  pulled once per run of the runbook (it pages through every Conekta transaction and transfer)
  and kept in ``ctx.options`` under a private key.

Candidates are ledger entries the matcher could pair with a bank line (transfers and Odoo moves;
a charge reaches the bank only through a transfer), of the line's account, dated within
``SCAN_DAYS`` of it (wider than the matcher's window, so entries pushed beyond it are seen),
sharing its amount, its amount x100 or ÷100, or a normalised reference key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

import polars as pl
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from guardia.core.clock import local_date
from guardia.core.errors import InvalidInput, NotFound
from guardia.recon.ledger import build_ledger
from guardia.recon.model import SETTLEMENT_KINDS, STATEMENT_SCHEMA, EntryKind, MatchConfig
from guardia.recon.normalize import (
    CONEKTA_PATTERN,
    REF_NUM_PATTERN,
    WORD_PATTERN,
    UnitSwap,
    is_valid_clabe,
    normalize_ledger,
    normalize_statement,
    reference_key,
    signed_amount_cents,
    unit_swap,
)
from guardia.runbooks.model import RunContext

SCAN_DAYS: Final = 15
MIN_FRAGMENT: Final = 5
KEY_COLUMNS: Final = ("ref_n", "ref_n2", "ref_l", "ref_l2")
_LEDGER_CACHE: Final = "_recon_ledger"
_CONEKTA_RE: Final = re.compile(CONEKTA_PATTERN)
_REF_NUM_RE: Final = re.compile(REF_NUM_PATTERN)
_WORD_RE: Final = re.compile(WORD_PATTERN)
_SEPARATORS_RE: Final = re.compile(r"[^A-Za-z0-9]")
_OCR_FOLD: Final = str.maketrans({"O": "0", "I": "1"})


# --------------------------------------------------------------------------------------------
# What the checks look at
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """The orphan as the recon store keeps it, with the keys the normaliser reads from it."""

    line_id: str
    statement_id: int
    account: str
    row_no: int
    operation_date: date
    concept: str | None
    reference: str | None
    cargo: str | None
    abono: str | None
    balance: str | None
    amount_cents: int | None
    amount_problem: str | None
    keys: frozenset[str]

    @property
    def raw_refs(self) -> tuple[str, ...]:
        """The references as written in the line (reference cell, labelled refs, tokens)."""
        return _raw_refs(self.reference, self.concept)

    def as_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "line_id": self.line_id,
            "statement_id": self.statement_id,
            "account": self.account,
            "row_no": self.row_no,
            "operation_date": self.operation_date.isoformat(),
            "concept": self.concept,
            "reference": self.reference,
            "cargo": self.cargo,
            "abono": self.abono,
            "balance": self.balance,
            "amount_cents": self.amount_cents,
            "reference_keys": sorted(self.keys),
        }


@dataclass(frozen=True, slots=True)
class Entry:
    """A ledger entry the matcher could pair with a bank line (a transfer or an Odoo move)."""

    entry_id: str
    kind: str
    account: str
    amount_cents: int
    local_date: date
    booked_date: date | None
    occurred_at: datetime | None
    reference: str | None
    memo: str | None
    keys: frozenset[str]

    @property
    def raw_refs(self) -> tuple[str, ...]:
        """The references as written in the entry (reference, labelled refs, memo tokens)."""
        return _raw_refs(self.reference, self.memo)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ledger entry near the line, and how it differs from it."""

    entry: Entry
    same_amount: bool
    unit: UnitSwap | None
    shared_keys: tuple[str, ...]
    normalised: tuple[str, ...]
    format_problem: str | None
    timezone: str | None
    days_apart: int
    matched_to: tuple[str, ...] = ()

    @property
    def related(self) -> bool:
        """Same amount, or a reference in common: a counterpart, not a look-alike amount."""
        return self.same_amount or bool(self.shared_keys)

    def as_json(self) -> dict[str, Any]:
        """Serialisable form."""
        e = self.entry
        return {
            "ledger_id": e.entry_id,
            "kind": e.kind,
            "amount_cents": e.amount_cents,
            "local_date": e.local_date.isoformat(),
            "occurred_at": e.occurred_at.isoformat() if e.occurred_at else None,
            "reference": e.reference,
            "memo": e.memo,
            "days_apart": self.days_apart,
            "unit": self.unit,
            "shared_keys": list(self.shared_keys),
            "normalised": list(self.normalised),
            "format_problem": self.format_problem,
            "timezone": self.timezone,
            "matched_to": list(self.matched_to),
        }


@dataclass(frozen=True, slots=True)
class View:
    """The line, the run that read it, its candidates and what the store knows of them."""

    line: Line
    run_id: int | None
    candidates: tuple[Candidate, ...]
    postings: dict[str, tuple[str, str]]  # Odoo move entry id → (order id, currency)

    def external_ids(self, entry_ids: Iterable[str] = ()) -> dict[str, list[str]]:
        """The provider ids of the line and of the named entries (Odoo moves and their orders).

        A Conekta transfer has no field of its own in ExternalIds: it stays in the evidence.
        """
        ids: dict[str, list[str]] = {"neon_statement_line": [self.line.line_id]}
        for entry_id in dict.fromkeys(entry_ids):
            if entry_id in self.postings:
                ids.setdefault("odoo_move", []).append(entry_id.removeprefix("odoo:"))
                ids.setdefault("conekta_order", []).append(self.postings[entry_id][0])
        return ids


def _raw_refs(reference: str | None, text_: str | None) -> tuple[str, ...]:
    body = text_ or ""
    refs = [reference.strip()] if reference and reference.strip() else []
    refs += [m.group(1) for m in _CONEKTA_RE.finditer(body)]
    refs += [m.group(1) for m in _REF_NUM_RE.finditer(body)]
    refs += _WORD_RE.findall(body)
    return tuple(dict.fromkeys(refs))


def format_pesos(cents: int) -> str:
    return f"{(Decimal(cents) / 100).quantize(Decimal('0.01')):,} MXN"


def _strip_zeros(value: str) -> str:
    return (value.lstrip("0") or "0") if value.isdigit() else value


def _differences(a: str, b: str) -> list[str]:
    """What normalisation had to fold for two written references to compare equal."""
    steps = (
        ("spaces or punctuation", lambda s: _SEPARATORS_RE.sub("", s)),
        ("letter case", str.upper),
        ("O/I written for 0/1", lambda s: s.translate(_OCR_FOLD)),
        ("leading zeros", _strip_zeros),
    )
    notes = []
    for label, step in steps:
        if a == b:
            break
        na, nb = step(a), step(b)
        if (na, nb) != (a, b):
            notes.append(label)
        a, b = na, nb
    return notes


def _normalised(line: Line, entry: Entry, shared: Sequence[str]) -> tuple[str, ...]:
    """For each shared key written differently on the two sides: how the writings differ."""
    notes = []
    for key in shared:
        ours = [r for r in line.raw_refs if reference_key(r) == key]
        theirs = [r for r in entry.raw_refs if reference_key(r) == key]
        if not ours or not theirs or set(ours) & set(theirs):
            continue
        notes.append(
            f"{ours[0]!r} vs {theirs[0]!r} ({', '.join(_differences(ours[0], theirs[0]))})"
        )
    return tuple(notes)


def _one_apart(a: str, b: str) -> str | None:
    if len(a) != len(b):
        return None
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diff) == 1:
        return "one character differs"
    if len(diff) == 2 and diff[1] == diff[0] + 1:
        i, j = diff
        if (a[i], a[j]) == (b[j], b[i]):
            return "two adjacent characters are swapped"
    return None


def _fragments(refs: Iterable[str]) -> list[str]:
    """Reference keys long enough to compare, CLABEs left out (they name a party)."""
    keys = {reference_key(r) for r in refs if not is_valid_clabe(_SEPARATORS_RE.sub("", r))}
    return sorted(k for k in keys if k is not None and len(k) >= MIN_FRAGMENT)


def _format_problem(line: Line, entry: Entry) -> str | None:
    """A reference of one side that the other carries cut, mistyped, or where it is not read."""
    ours, theirs = _fragments(line.raw_refs), _fragments(entry.raw_refs)
    who = entry.entry_id
    for a in ours:
        for b in theirs:
            if a == b:
                side = "the line" if a not in line.keys else who
                return (
                    f"{a} is written in {side} but not read as a reference there (a short "
                    "reference needs a CONEKTA or REF label; a long one 10-30 characters)"
                )
            if b.startswith(a):
                return f"the line's {a} is {who}'s {b} cut to {len(a)} characters"
            if a.startswith(b):
                return f"{who}'s {b} is the line's {a} cut to {len(b)} characters"
            apart = _one_apart(a, b)
            if apart:
                return f"the line's {a} vs {who}'s {b}: {apart}"
    return None


def _timezone(line: Line, entry: Entry, cfg: MatchConfig) -> str | None:
    """A date difference that a UTC-vs-America/Mexico_City reading explains, or one beyond the
    matcher's window."""
    bank, who = line.operation_date, entry.entry_id
    at = entry.occurred_at
    if at is not None:
        utc_day, local_day = at.astimezone(UTC).date(), local_date(at)
        # Only where the entry's date derives from its instant (transfers); an Odoo move's
        # instant is when Guardia posted it, not when the money moved.
        derived = entry.booked_date is None or entry.booked_date == local_day
        if derived and entry.local_date != bank and utc_day == bank != local_day:
            return (
                f"{who} happened {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC, {local_day} in "
                f"America/Mexico_City; the line is dated {bank}, the UTC date: one side reads "
                "the instant in UTC"
            )
        if entry.booked_date is not None and entry.booked_date == utc_day != local_day:
            return (
                f"{who} is booked on {entry.booked_date}, the UTC date of "
                f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC; its local date is {local_day}"
            )
    gap = (entry.local_date - bank).days
    if not -cfg.window_before_days <= gap <= cfg.window_after_days:
        return (
            f"{who} is dated {entry.local_date}, {gap:+d} days from the line: beyond the "
            f"matching window [-{cfg.window_before_days}, +{cfg.window_after_days}]"
        )
    return None


def relate(line: Line, entries: Iterable[Entry], cfg: MatchConfig | None = None) -> list[Candidate]:
    """The line's candidates, nearest in date first, each with how it differs from the line."""
    config = cfg or MatchConfig()
    out = []
    for entry in entries:
        days = (entry.local_date - line.operation_date).days
        if entry.account != line.account or abs(days) > SCAN_DAYS:
            continue
        amount = line.amount_cents
        same = amount is not None and entry.amount_cents == amount
        unit = unit_swap(amount, entry.amount_cents) if amount is not None else None
        shared = tuple(sorted(line.keys & entry.keys))
        if not (same or unit or shared):
            continue
        out.append(
            Candidate(
                entry,
                same,
                unit,
                shared,
                _normalised(line, entry, shared),
                _format_problem(line, entry) if same and not shared else None,
                _timezone(line, entry, config),
                days,
            )
        )
    return sorted(out, key=lambda c: (abs(c.days_apart), c.entry.entry_id))


# --------------------------------------------------------------------------------------------
# Reading the store and the providers
# --------------------------------------------------------------------------------------------


def subject_line_id(ctx: RunContext) -> str:
    if not ctx.line_ids:
        raise InvalidInput("no --line-id given")
    return ctx.line_ids[0]


def _keys(row: dict[str, Any]) -> frozenset[str]:
    return frozenset(row[c] for c in KEY_COLUMNS if row[c] is not None)


def parse_amount(cargo: str | None, abono: str | None) -> tuple[int | None, str | None]:
    try:
        return signed_amount_cents(cargo, abono), None
    except InvalidInput as exc:
        return None, exc.message


async def find_lines(
    conn: AsyncConnection,
    *,
    line_id: str | None = None,
    account: str | None = None,
    day: date | None = None,
) -> list[Line]:
    """Stored statement lines: one by id, or those of an account on a day (every statement)."""
    rows = (
        await conn.execute(
            text(
                "SELECT line_id, statement_id, account, row_no, operation_date, concept, "
                "reference, cargo, abono, balance FROM recon_lines "
                "WHERE (CAST(:line AS text) IS NULL OR line_id = :line) "
                "AND (CAST(:account AS text) IS NULL OR account = :account) "
                "AND (CAST(:day AS date) IS NULL OR operation_date = :day) "
                "ORDER BY statement_id, row_no"
            ),
            {"line": line_id, "account": account, "day": day},
        )
    ).all()
    if not rows:
        return []
    frame = pl.DataFrame(
        [
            (
                r.line_id,
                r.account,
                r.row_no,
                r.operation_date,
                r.concept,
                r.reference,
                r.cargo,
                r.abono,
                r.balance,
            )
            for r in rows
        ],
        schema=STATEMENT_SCHEMA,
        orient="row",
    )
    keys = {r["line_id"]: _keys(r) for r in normalize_statement(frame).iter_rows(named=True)}
    out = []
    for r in rows:
        amount, problem = parse_amount(r.cargo, r.abono)
        out.append(
            Line(
                r.line_id,
                int(r.statement_id),
                r.account,
                int(r.row_no),
                r.operation_date,
                r.concept,
                r.reference,
                r.cargo,
                r.abono,
                r.balance,
                amount,
                problem,
                keys[r.line_id],
            )
        )
    return out


async def get_line(conn: AsyncConnection, line_id: str) -> Line:
    found = await find_lines(conn, line_id=line_id)
    if not found:
        raise NotFound(f"statement line {line_id} is not in the recon store")
    return found[0]


async def find_latest_run(conn: AsyncConnection, statement_id: int) -> int | None:
    run_id = await conn.scalar(
        text(
            "SELECT id FROM recon_runs WHERE statement_ids @> CAST(:sid AS jsonb) "
            "ORDER BY id DESC LIMIT 1"
        ),
        {"sid": json.dumps([statement_id])},
    )
    return int(run_id) if run_id is not None else None


@dataclass(frozen=True, slots=True)
class Ledger:
    """The ledger side of one account: matchable entries, and the charges' nets."""

    entries: list[Entry]
    charge_nets: dict[str, int]
    charge_memos: dict[str, str]  # the order id, where Guardia stored the charge's payment


async def load_ledger(ctx: RunContext, account: str) -> Ledger:
    """The account's ledger, pulled from the providers once per run of the runbook."""
    cache: dict[str, Ledger] = ctx.options.setdefault(_LEDGER_CACHE, {})
    if account in cache:
        return cache[account]
    raw = await build_ledger(ctx.container.engine, ctx.container.conekta, account=account)
    raw = raw.unique(subset="entry_id", keep="first", maintain_order=True)
    frame = normalize_ledger(raw).join(
        raw.select("entry_id", "reference", "memo", "booked_date"), on="entry_id", how="left"
    )
    kinds = (EntryKind.MOVE.value, EntryKind.TRANSFER.value)
    rows = [r for r in frame.iter_rows(named=True) if r["account"] == account]
    cache[account] = Ledger(
        [
            Entry(
                r["entry_id"],
                r["kind"],
                r["account"],
                int(r["amount_cents"]),
                r["local_date"],
                r["booked_date"],
                r["occurred_at"],
                r["reference"],
                r["memo"],
                _keys(r),
            )
            for r in rows
            if r["kind"] in kinds and r["local_date"] is not None
        ],
        {r["entry_id"]: int(r["net_cents"]) for r in rows if r["kind"] in SETTLEMENT_KINDS},
        {
            r["entry_id"]: r["memo"]
            for r in rows
            if r["kind"] == EntryKind.CHARGE.value and r["memo"]
        },
    )
    return cache[account]


async def load_entries(ctx: RunContext, account: str) -> list[Entry]:
    """The account's transfers and Odoo moves."""
    return (await load_ledger(ctx, account)).entries


async def find_matched_entries(
    conn: AsyncConnection, run_id: int, entry_ids: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    rows = await conn.execute(
        text(
            "SELECT e.value AS entry_id, m.bank_line_id FROM recon_matches m "
            "CROSS JOIN LATERAL jsonb_array_elements_text(m.ledger_ids) AS e(value) "
            "WHERE m.run_id = :run AND e.value = ANY(:ids) ORDER BY m.id"
        ),
        {"run": run_id, "ids": list(entry_ids)},
    )
    out: dict[str, tuple[str, ...]] = {}
    for r in rows:
        out[r.entry_id] = (*out.get(r.entry_id, ()), r.bank_line_id)
    return out


async def find_postings(
    conn: AsyncConnection, entry_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    moves = [int(e[5:]) for e in entry_ids if e.startswith("odoo:") and e[5:].isdigit()]
    if not moves:
        return {}
    rows = await conn.execute(
        text("SELECT odoo_move_id, order_id, currency FROM postings WHERE odoo_move_id = ANY(:m)"),
        {"m": moves},
    )
    return {f"odoo:{r.odoo_move_id}": (r.order_id, r.currency) for r in rows}


async def load_view(ctx: RunContext) -> View:
    """Everything the diagnostic checks and the manual match read about the line."""
    async with ctx.container.engine.connect() as conn:
        line = await get_line(conn, subject_line_id(ctx))
        run_id = await find_latest_run(conn, line.statement_id)
    entries = await load_entries(ctx, line.account)
    candidates = relate(line, entries)
    ids = [c.entry.entry_id for c in candidates]
    async with ctx.container.engine.connect() as conn:
        taken = await find_matched_entries(conn, run_id, ids) if run_id is not None else {}
        postings = await find_postings(conn, ids)
    candidates = [replace(c, matched_to=taken.get(c.entry.entry_id, ())) for c in candidates]
    return View(line, run_id, tuple(candidates), postings)


def view_evidence(view: View, named: Sequence[str], **extra: Any) -> dict[str, Any]:
    return {
        "line": view.line.as_json(),
        "run_id": view.run_id,
        "candidates": [c.as_json() for c in view.candidates],
        "named": list(dict.fromkeys(named)),
        "external_ids": view.external_ids(named),
        **extra,
    }
