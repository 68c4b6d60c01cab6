"""Runbook 3, "Conciliación no encuentra match (dinero huérfano)", as code.

The subject is one bank statement line, named by the id the recon store keeps it under:
``recon_lines.line_id`` = ``"<first 12 hex digits of the file's SHA-256>:<row_no>"``, the id
that runs, exceptions (`bank_line_id`), manual matches and the incident's
``neon_statement_line`` all use.

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

The diagnostic checks (currency, references, time zone, duplicates) describe why the line did
not match; they keep failing after a manual match, because what they found is still true. The
recovery is verified by `line_matched` and `recon_kpi`, both read from the store alone.
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
from guardia.core.errors import GuardiaError, InvalidInput, NotFound
from guardia.incidents import service as incidents
from guardia.incidents.model import Runbook as RunbookId
from guardia.payments.service import get_order_view
from guardia.recon import manual
from guardia.recon.ledger import build_ledger
from guardia.recon.model import STATEMENT_SCHEMA, EntryKind, MatchConfig
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
from guardia.runbooks.model import (
    Action,
    ActionResult,
    Check,
    CheckResult,
    RunbookSpec,
    RunContext,
    Status,
)

NAME: Final = "recon-orphan"
SCAN_DAYS: Final = 15
MIN_FRAGMENT: Final = 5
KEY_COLUMNS: Final = ("ref_n", "ref_n2", "ref_l", "ref_l2")
CASE_NOTE: Final = "case: recon exception"
_LEDGER_CACHE: Final = "_recon_ledger"
_CONEKTA_RE: Final = re.compile(CONEKTA_PATTERN)
_REF_NUM_RE: Final = re.compile(REF_NUM_PATTERN)
_WORD_RE: Final = re.compile(WORD_PATTERN)
_SEPARATORS_RE: Final = re.compile(r"[^A-Za-z0-9]")
_FOREIGN_RE: Final = re.compile(r"(?i)(?<![A-Z])(USD|EUR|DLS|D[OÓ]LAR(?:ES)?|US\$)(?![A-Z])")
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


def _pesos(cents: int) -> str:
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


def _line_id(ctx: RunContext) -> str:
    if not ctx.line_ids:
        raise InvalidInput("no --line-id given")
    return ctx.line_ids[0]


def _keys(row: dict[str, Any]) -> frozenset[str]:
    return frozenset(row[c] for c in KEY_COLUMNS if row[c] is not None)


def _amount(cargo: str | None, abono: str | None) -> tuple[int | None, str | None]:
    try:
        return signed_amount_cents(cargo, abono), None
    except InvalidInput as exc:
        return None, exc.message


async def _lines(
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
        amount, problem = _amount(r.cargo, r.abono)
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


async def _line(conn: AsyncConnection, line_id: str) -> Line:
    found = await _lines(conn, line_id=line_id)
    if not found:
        raise NotFound(f"statement line {line_id} is not in the recon store")
    return found[0]


async def _latest_run(conn: AsyncConnection, statement_id: int) -> int | None:
    run_id = await conn.scalar(
        text(
            "SELECT id FROM recon_runs WHERE statement_ids @> CAST(:sid AS jsonb) "
            "ORDER BY id DESC LIMIT 1"
        ),
        {"sid": json.dumps([statement_id])},
    )
    return int(run_id) if run_id is not None else None


@dataclass(frozen=True, slots=True)
class _Ledger:
    """The ledger side of one account: matchable entries, and the charges' nets."""

    entries: list[Entry]
    charge_nets: dict[str, int]
    charge_memos: dict[str, str]  # the order id, where Guardia stored the charge's payment


async def _ledger(ctx: RunContext, account: str) -> _Ledger:
    """The account's ledger, pulled from the providers once per run of the runbook."""
    cache: dict[str, _Ledger] = ctx.options.setdefault(_LEDGER_CACHE, {})
    if account in cache:
        return cache[account]
    raw = await build_ledger(ctx.container.engine, ctx.container.conekta, account=account)
    raw = raw.unique(subset="entry_id", keep="first", maintain_order=True)
    frame = normalize_ledger(raw).join(
        raw.select("entry_id", "reference", "memo", "booked_date"), on="entry_id", how="left"
    )
    kinds = (EntryKind.MOVE.value, EntryKind.TRANSFER.value)
    rows = [r for r in frame.iter_rows(named=True) if r["account"] == account]
    cache[account] = _Ledger(
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
        {r["entry_id"]: int(r["net_cents"]) for r in rows if r["kind"] == EntryKind.CHARGE.value},
        {
            r["entry_id"]: r["memo"]
            for r in rows
            if r["kind"] == EntryKind.CHARGE.value and r["memo"]
        },
    )
    return cache[account]


async def _entries(ctx: RunContext, account: str) -> list[Entry]:
    """The account's transfers and Odoo moves."""
    return (await _ledger(ctx, account)).entries


async def _matched_entries(
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


async def _postings(conn: AsyncConnection, entry_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    moves = [int(e[5:]) for e in entry_ids if e.startswith("odoo:") and e[5:].isdigit()]
    if not moves:
        return {}
    rows = await conn.execute(
        text("SELECT odoo_move_id, order_id, currency FROM postings WHERE odoo_move_id = ANY(:m)"),
        {"m": moves},
    )
    return {f"odoo:{r.odoo_move_id}": (r.order_id, r.currency) for r in rows}


async def _view(ctx: RunContext) -> View:
    """Everything the diagnostic checks and the manual match read about the line."""
    async with ctx.container.engine.connect() as conn:
        line = await _line(conn, _line_id(ctx))
        run_id = await _latest_run(conn, line.statement_id)
    entries = await _entries(ctx, line.account)
    candidates = relate(line, entries)
    ids = [c.entry.entry_id for c in candidates]
    async with ctx.container.engine.connect() as conn:
        taken = await _matched_entries(conn, run_id, ids) if run_id is not None else {}
        postings = await _postings(conn, ids)
    candidates = [replace(c, matched_to=taken.get(c.entry.entry_id, ())) for c in candidates]
    return View(line, run_id, tuple(candidates), postings)


def _evidence(view: View, named: Sequence[str], **extra: Any) -> dict[str, Any]:
    return {
        "line": view.line.as_json(),
        "run_id": view.run_id,
        "candidates": [c.as_json() for c in view.candidates],
        "named": list(dict.fromkeys(named)),
        "external_ids": view.external_ids(named),
        **extra,
    }


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


async def currency_and_decimals(ctx: RunContext) -> CheckResult:
    """The line's amount parses, is in pesos, and no candidate is off by x100 or in another
    currency."""
    name = "currency_and_decimals"
    view = await _view(ctx)
    line = view.line
    problems: list[str] = []
    named: list[str] = []
    if line.amount_problem is not None:
        problems.append(f"the line's amount does not parse: {line.amount_problem}")
    foreign = _FOREIGN_RE.search(" ".join(filter(None, (line.concept, line.reference))))
    if foreign is not None:
        problems.append(f"the line mentions {foreign.group(1)}: not pesos")
    for c in view.candidates:
        who = c.entry.entry_id
        if c.unit is not None and line.amount_cents is not None:
            times = (
                f"the line's {_pesos(line.amount_cents)} is 100 times {who}'s "
                f"{_pesos(c.entry.amount_cents)}"
                if c.unit == "x100"
                else f"{who}'s {_pesos(c.entry.amount_cents)} is 100 times the line's "
                f"{_pesos(line.amount_cents)}"
            )
            problems.append(f"{times}: cents read as pesos")
            named.append(who)
        currency = view.postings.get(who, ("", "MXN"))[1]
        if c.related and currency != "MXN":
            problems.append(f"{who} is booked in {currency}, the statement in MXN")
            named.append(who)
    evidence = _evidence(
        view, named, currency="MXN: statements carry no currency column (importers read MXN)"
    )
    if problems:
        return CheckResult(name, Status.FAIL, "; ".join(problems), evidence)
    amount = _pesos(line.amount_cents) if line.amount_cents is not None else "?"
    return CheckResult(
        name,
        Status.PASS,
        f"the line's {amount} parses; no candidate is off by x100 or in another currency "
        f"({len(view.candidates)} candidate(s) seen)",
        evidence,
    )


async def reference_format(ctx: RunContext) -> CheckResult:
    """The line's references and its candidates' are written alike (no normalisation needed,
    no truncation or typo)."""
    name = "reference_format"
    view = await _view(ctx)
    found: list[str] = []
    named: list[str] = []
    for c in view.candidates:
        if c.normalised:
            found.append(
                f"{c.entry.entry_id} matches only after normalisation: {'; '.join(c.normalised)}"
            )
            named.append(c.entry.entry_id)
        if c.format_problem:
            found.append(c.format_problem)
            named.append(c.entry.entry_id)
    evidence = _evidence(view, named, line_references=list(view.line.raw_refs))
    if found:
        return CheckResult(name, Status.FAIL, "; ".join(found), evidence)
    keys = ", ".join(sorted(view.line.keys)) or "none"
    return CheckResult(
        name,
        Status.PASS,
        f"line references {keys}: no candidate needs normalisation or has a format problem",
        evidence,
    )


async def timezone_shift(ctx: RunContext) -> CheckResult:
    """No counterpart (same amount or reference) is dated apart by a UTC-vs-local reading, or
    beyond the matcher's window."""
    name = "timezone_shift"
    view = await _view(ctx)
    shifted = [c for c in view.candidates if c.related and c.timezone]
    evidence = _evidence(view, [c.entry.entry_id for c in shifted])
    if shifted:
        return CheckResult(
            name, Status.FAIL, "; ".join(c.timezone or "" for c in shifted), evidence
        )
    dated = [c for c in view.candidates if c.related]
    return CheckResult(
        name,
        Status.PASS,
        f"{len(dated)} counterpart(s) by amount or reference, none shifted by a time zone",
        evidence,
    )


def _same_tuple(a: Line, b: Line) -> bool:
    return (a.account, a.operation_date, a.amount_cents, a.keys) == (
        b.account,
        b.operation_date,
        b.amount_cents,
        b.keys,
    )


async def duplicates(ctx: RunContext) -> CheckResult:
    """No other statement line, and no pair of ledger entries, repeats the line's (amount,
    reference, date, account)."""
    name = "duplicates"
    view = await _view(ctx)
    line = view.line
    async with ctx.container.engine.connect() as conn:
        same_day = await _lines(conn, account=line.account, day=line.operation_date)
        marked = (
            await conn.execute(
                text(
                    "SELECT candidates FROM recon_exceptions WHERE run_id = :run AND side = 'bank' "
                    "AND bank_line_id = :line AND reason = 'duplicate_line'"
                ),
                {"run": view.run_id, "line": line.line_id},
            )
        ).all()
    fields = ("concept", "reference", "cargo", "abono", "balance")
    lines = []
    for other in same_day:
        if other.line_id == line.line_id or not _same_tuple(line, other):
            continue
        reimport = all(getattr(other, f) == getattr(line, f) for f in fields)
        lines.append(
            {
                "line_id": other.line_id,
                "statement_id": other.statement_id,
                "row_no": other.row_no,
                "balance": other.balance,
                "kind": "re-import (same balance)" if reimport else "balance differs",
            }
        )
    of = [c["duplicate_of"] for row in marked for c in row.candidates if "duplicate_of" in c]
    groups: dict[frozenset[str], list[str]] = {}
    for c in view.candidates:
        if c.same_amount and c.days_apart == 0 and (c.shared_keys or not line.keys):
            groups.setdefault(c.entry.keys, []).append(c.entry.entry_id)
    entries = [ids for ids in groups.values() if len(ids) > 1]
    named = [e for ids in entries for e in ids]
    evidence = _evidence(
        view, named, duplicate_lines=lines, reimport_of=of, duplicate_entries=entries
    )
    found = [f"line {d['line_id']} ({d['kind']}, balance {d['balance']})" for d in lines]
    found += [f"the run marked the line a re-import of {o}" for o in of]
    found += [f"ledger entries {', '.join(ids)} repeat each other" for ids in entries]
    if found:
        return CheckResult(
            name,
            Status.FAIL,
            f"same amount, reference, date and account as line {line.line_id}: " + "; ".join(found),
            evidence,
        )
    return CheckResult(
        name, Status.PASS, "no other line or ledger entry repeats the line", evidence
    )


async def line_matched(ctx: RunContext) -> CheckResult:
    """The line is matched (automatically or by hand) in the latest run that read it."""
    name = "line_matched"
    async with ctx.container.engine.connect() as conn:
        line = await _line(conn, _line_id(ctx))
        run_id = await _latest_run(conn, line.statement_id)
        if run_id is None:
            return CheckResult(
                name,
                Status.UNKNOWN,
                f"no reconciliation run has read statement {line.statement_id} yet",
                {"external_ids": {"neon_statement_line": [line.line_id]}},
            )
        match = (
            await conn.execute(
                text(
                    "SELECT rule, ledger_ids, score FROM recon_matches "
                    "WHERE run_id = :run AND bank_line_id = :line ORDER BY id LIMIT 1"
                ),
                {"run": run_id, "line": line.line_id},
            )
        ).first()
        pending = [
            int(r.id)
            for r in await conn.execute(
                text(
                    "SELECT id FROM recon_manual WHERE run_id = :run AND bank_line_id = :line "
                    "AND status = 'pending_approval' ORDER BY id"
                ),
                {"run": run_id, "line": line.line_id},
            )
        ]
        reasons = [
            r.reason
            for r in await conn.execute(
                text(
                    "SELECT reason FROM recon_exceptions WHERE run_id = :run AND side = 'bank' "
                    "AND bank_line_id = :line AND status = 'open' ORDER BY id"
                ),
                {"run": run_id, "line": line.line_id},
            )
        ]
    ids = {"neon_statement_line": [line.line_id]}
    if match is not None:
        ledger_ids = list(match.ledger_ids)
        how = "by hand" if match.rule == manual.MANUAL_RULE else f"by rule {match.rule}"
        return CheckResult(
            name,
            Status.PASS,
            f"line {line.line_id} is matched {how} to {', '.join(ledger_ids)} in run {run_id}",
            {"run_id": run_id, "rule": match.rule, "ledger_ids": ledger_ids, "external_ids": ids},
        )
    summary = f"line {line.line_id} is not matched in run {run_id}"
    if reasons:
        summary += f" (exception: {', '.join(reasons)})"
    if pending:
        summary += f"; manual match {', '.join(map(str, pending))} waits for a second operator"
    return CheckResult(
        name,
        Status.FAIL,
        summary,
        {"run_id": run_id, "exceptions": reasons, "pending_manual": pending, "external_ids": ids},
    )


def _rates(lines: int, matched: int, amount: int, matched_amount: int) -> dict[str, Any]:
    return {
        "lines": lines,
        "matched_lines": matched,
        "amount_cents": amount,
        "matched_amount_cents": matched_amount,
        "match_rate_count": matched / lines if lines else 0.0,
        "match_rate_amount": matched_amount / amount if amount > 0 else 1.0,
    }


async def recon_kpi(ctx: RunContext) -> CheckResult:
    """The match rate, by count and by amount, of the line's account and day in the latest run
    that read it is at least GUARDIA_RECON_KPI_THRESHOLD.

    Counted now from the run's lines and matches, the way the run counted them (re-imported
    lines left out), so manual matches made since the run count whatever the KPI stored with
    the run (`recon_kpi`, `recon_runs`, kept in step by `guardia.recon.manual`) says; the
    evidence shows both.
    """
    name = "recon_kpi"
    threshold = ctx.container.settings.recon_kpi_threshold
    async with ctx.container.engine.connect() as conn:
        line = await _line(conn, _line_id(ctx))
        run_id = await _latest_run(conn, line.statement_id)
        ids = {"neon_statement_line": [line.line_id]}
        if run_id is None:
            return CheckResult(
                name,
                Status.UNKNOWN,
                f"no reconciliation run has read statement {line.statement_id} yet",
                {"external_ids": ids},
            )
        rows = (
            await conn.execute(
                text(
                    "SELECT l.cargo, l.abono, "
                    "EXISTS (SELECT 1 FROM recon_matches m WHERE m.run_id = :run "
                    "AND m.bank_line_id = l.line_id) AS matched, "
                    "EXISTS (SELECT 1 FROM recon_exceptions e WHERE e.run_id = :run "
                    "AND e.bank_line_id = l.line_id AND e.reason = 'duplicate_line') AS reimport "
                    "FROM recon_lines l WHERE l.statement_id IN (SELECT "
                    "jsonb_array_elements_text(r.statement_ids)::bigint FROM recon_runs r "
                    "WHERE r.id = :run) AND l.account = :account AND l.operation_date = :day"
                ),
                {"run": run_id, "account": line.account, "day": line.operation_date},
            )
        ).all()
        stored = (
            (
                await conn.execute(
                    text(
                        "SELECT lines, matched_lines, amount_cents, matched_amount_cents "
                        "FROM recon_kpi WHERE run_id = :run AND account = :account "
                        "AND local_date = :day"
                    ),
                    {"run": run_id, "account": line.account, "day": line.operation_date},
                )
            )
            .mappings()
            .first()
        )
        run_row = (
            (
                await conn.execute(
                    text(
                        "SELECT match_rate_count, match_rate_amount FROM recon_runs WHERE id = :run"
                    ),
                    {"run": run_id},
                )
            )
            .mappings()
            .one()
        )
    counted = [r for r in rows if not r.reimport]
    sizes = [(abs(_amount(r.cargo, r.abono)[0] or 0), bool(r.matched)) for r in counted]
    now = _rates(
        len(sizes),
        sum(1 for _, m in sizes if m),
        sum(s for s, _ in sizes),
        sum(s for s, m in sizes if m),
    )
    evidence = {
        "run_id": run_id,
        "account": line.account,
        "local_date": line.operation_date.isoformat(),
        "threshold": threshold,
        "now": now,
        "stored_with_run": (
            _rates(
                stored["lines"],
                stored["matched_lines"],
                stored["amount_cents"],
                stored["matched_amount_cents"],
            )
            if stored
            else None
        ),
        "run": dict(run_row),
        "external_ids": ids,
    }
    count, amount = now["match_rate_count"], now["match_rate_amount"]
    summary = (
        f"{line.account} on {line.operation_date}: {count:.2%} of lines and {amount:.2%} of the "
        f"amount matched in run {run_id} (threshold {threshold:.0%})"
    )
    if stored and (stored["matched_lines"], stored["matched_amount_cents"]) != (
        now["matched_lines"],
        now["matched_amount_cents"],
    ):
        summary += (
            f"; {stored['matched_lines']}/{stored['lines']} lines when the run was stored, "
            "before manual matches"
        )
    status = Status.PASS if min(count, amount) >= threshold else Status.FAIL
    return CheckResult(name, status, summary, evidence)


# --------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------


async def _bank_exceptions(
    conn: AsyncConnection, run_id: int, line_id: str
) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            "SELECT id, reason, candidates, amount_cents, status FROM recon_exceptions "
            "WHERE run_id = :run AND side = 'bank' AND bank_line_id = :line ORDER BY id"
        ),
        {"run": run_id, "line": line_id},
    )
    return [dict(r) for r in rows.mappings()]


async def _case_recorded(conn: AsyncConnection, incident_id: int, exception_id: int) -> bool:
    found = await conn.scalar(
        text(
            "SELECT count(*) FROM incident_notes WHERE incident_id = :i "
            "AND starts_with(text, :prefix)"
        ),
        {"i": incident_id, "prefix": f"{CASE_NOTE} {exception_id} "},
    )
    return bool(found)


async def open_case(ctx: RunContext, apply: bool) -> ActionResult:
    """Record the line's open exception, with its evidence, on the incident: the case.

    The recon store has no place to mark an exception as under investigation: `recon_exceptions`
    has no case or incident column, and its `status` must stay `open`, the only status a manual
    match settles (`guardia.recon.manual`). The link lives on the incident instead: its
    `neon_statement_line` external id and one case note per exception.
    """
    name = "open_case"
    store_note = (
        "recon_exceptions has no case/incident column, and its status stays 'open' because "
        "guardia.recon.manual settles only open exceptions: the case is the incident"
    )
    try:
        async with ctx.container.engine.connect() as conn:
            line = await _line(conn, _line_id(ctx))
            run_id = await _latest_run(conn, line.statement_id)
            if run_id is None or ctx.incident_id is None:
                why = "no run has read the line" if run_id is None else "no incident"
                return ActionResult(name, False, [], {"skipped": why})
            found = await _bank_exceptions(conn, run_id, line.line_id)
            todo = [
                e
                for e in found
                if e["status"] == "open"
                and not await _case_recorded(conn, ctx.incident_id, e["id"])
            ]
    except GuardiaError as exc:
        return ActionResult(name, False, [], {"skipped": exc.message})
    ids = {"neon_statement_line": [line.line_id]}
    evidence: dict[str, Any] = {
        "run_id": run_id,
        "incident_id": ctx.incident_id,
        "exceptions": found,
        "store": store_note,
        "external_ids": ids,
    }
    if not todo:
        why = (
            "already recorded on the incident"
            if any(e["status"] == "open" for e in found)
            else "the line has no open exception in run " + str(run_id)
        )
        return ActionResult(name, False, [], {**evidence, "skipped": why})
    changes = []
    notes = []
    for e in todo:
        cands = [c.get("ledger_id") or c.get("transfer_id") for c in e["candidates"]]
        amount = "amount unknown" if e["amount_cents"] is None else _pesos(e["amount_cents"])
        summary = (
            f"exception {e['id']} of run {run_id} (line {line.line_id}: {e['reason']}, "
            f"{amount}; candidates: {', '.join(filter(None, cands)) or 'none'})"
        )
        changes.append(f"record {summary} on incident #{ctx.incident_id} as its case")
        notes.append(
            f"{CASE_NOTE} {e['id']} (run {run_id}, line {line.line_id}): {e['reason']}; "
            f"evidence: {json.dumps(e['candidates'], ensure_ascii=False, sort_keys=True)}"
        )
    if not apply:
        return ActionResult(name, False, changes, evidence)
    async with ctx.container.engine.begin() as conn:
        for note in notes:
            await incidents.add_note(
                conn, ctx.incident_id, at=ctx.now, actor=f"runbook:{NAME}", note=note
            )
    return ActionResult(name, True, changes, evidence)


@dataclass(frozen=True, slots=True)
class _Plan:
    run_id: int
    line: Line
    entry_id: str
    charges: tuple[str, ...]
    reason: str
    needs_approval: bool

    @property
    def ledger_ids(self) -> list[str]:
        return [self.entry_id, *self.charges]


async def _pick(ctx: RunContext, view: View, run_id: int) -> tuple[str, str] | str:
    """(entry id, why) of the one candidate to match, or why there is none."""
    line = view.line
    chosen = ctx.options.get("ledger_id")
    if chosen is not None:
        if not isinstance(chosen, str):
            return "ledger_id must be a ledger entry id"
        known = {e.entry_id: e for e in await _entries(ctx, line.account)}
        if chosen not in known:
            return f"{chosen} is not a transfer or Odoo move of account {line.account}"
        async with ctx.container.engine.connect() as conn:
            taken = (await _matched_entries(conn, run_id, [chosen])).get(chosen, ())
        if taken:
            return f"{chosen} is already matched to line {', '.join(taken)} in run {run_id}"
        return chosen, f"{chosen} named by the operator (ledger_id)"
    eligible = [
        c
        for c in view.candidates
        if c.same_amount
        and not c.matched_to
        and (c.shared_keys or c.format_problem or c.timezone or c.normalised)
    ]
    if len(eligible) != 1:
        listed = ", ".join(c.entry.entry_id for c in eligible)
        return (
            "no unmatched candidate has the line's amount and a related reference or date"
            if not eligible
            else f"{len(eligible)} candidates fit ({listed}): name one with ledger_id"
        )
    c = eligible[0]
    why = [f"{c.entry.entry_id} has the line's amount ({_pesos(c.entry.amount_cents)})"]
    why += list(filter(None, (c.format_problem, c.timezone)))
    why += [f"reference written differently: {n}" for n in c.normalised]
    return c.entry.entry_id, "; ".join(why)


async def _paid_out(
    ctx: RunContext, run_id: int, account: str, transfer_id: str
) -> tuple[tuple[str, ...], str | None]:
    """The charges the run attributed to an unmatched transfer, when their nets add up to it
    (a payout explanation); else none, and why they are left for the next run."""
    async with ctx.container.engine.connect() as conn:
        charges = tuple(
            r.ledger_id
            for r in await conn.execute(
                text(
                    "SELECT ledger_id FROM recon_exceptions WHERE run_id = :run "
                    "AND side = 'ledger' AND status = 'open' AND reason = 'payout_unmatched' "
                    "AND candidates @> CAST(:transfer AS jsonb) ORDER BY ledger_id"
                ),
                {"run": run_id, "transfer": json.dumps([{"transfer_id": transfer_id}])},
            )
        )
    if not charges:
        return (), None
    ledger = await _ledger(ctx, account)
    amount = next((e.amount_cents for e in ledger.entries if e.entry_id == transfer_id), None)
    nets = sum(ledger.charge_nets.get(c, 0) for c in charges)
    if amount is not None and all(c in ledger.charge_nets for c in charges) and nets == amount:
        return charges, None
    return (), (
        f"the charges the run placed in {transfer_id} ({', '.join(charges)}) net "
        f"{_pesos(nets)}, not its {_pesos(amount or 0)}: left open for the next run"
    )


async def _orders(
    ctx: RunContext, account: str, ledger_ids: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(order ids, their correlation ids) behind ledger entries: the orders of the charges and
    of the Odoo moves Guardia posted."""
    async with ctx.container.engine.connect() as conn:
        found = [order for order, _currency in (await _postings(conn, ledger_ids)).values()]
    memos = (await _ledger(ctx, account)).charge_memos
    found += [memos[e] for e in ledger_ids if e in memos]
    orders, correlation = [], []
    for order_id in dict.fromkeys(found):
        try:
            view = await get_order_view(ctx.container.engine, order_id)
        except NotFound:
            continue  # a charge Guardia never stored: its memo is the charge id
        orders.append(order_id)
        correlation.append(view.correlation_id)
    return orders, correlation


async def _plan(ctx: RunContext) -> _Plan | str:
    """What manual_match would do, or why it would do nothing."""
    view = await _view(ctx)
    line = view.line
    if view.run_id is None:
        return f"no reconciliation run has read statement {line.statement_id}"
    if line.amount_cents is None:
        return f"the line's amount does not parse: {line.amount_problem}"
    async with ctx.container.engine.connect() as conn:
        rule = await conn.scalar(
            text(
                "SELECT rule FROM recon_matches WHERE run_id = :run AND bank_line_id = :line "
                "LIMIT 1"
            ),
            {"run": view.run_id, "line": line.line_id},
        )
        pending = await conn.scalar(
            text(
                "SELECT min(id) FROM recon_manual WHERE run_id = :run AND bank_line_id = :line "
                "AND status = 'pending_approval'"
            ),
            {"run": view.run_id, "line": line.line_id},
        )
        same_day = await _lines(conn, account=line.account, day=line.operation_date)
    if rule is not None:
        return f"line {line.line_id} is already matched (rule {rule}) in run {view.run_id}"
    if pending is not None:
        return f"manual match {pending} of line {line.line_id} waits for a second operator"
    twins = [o.line_id for o in same_day if o.line_id != line.line_id and _same_tuple(line, o)]
    if twins and ctx.options.get("ledger_id") is None:
        return (
            f"lines {', '.join(twins)} repeat this one: decide which line the entry belongs to "
            "and name it with ledger_id"
        )
    picked = await _pick(ctx, view, view.run_id)
    if isinstance(picked, str):
        return picked
    entry_id, why = picked
    charges: tuple[str, ...] = ()
    if entry_id.startswith("conekta:"):
        charges, left = await _paid_out(ctx, view.run_id, line.account, entry_id)
        if left:
            why += f"; {left}"
    reason = f"runbook {NAME}"
    if ctx.incident_id is not None:
        reason += f", incident #{ctx.incident_id}"
    threshold = ctx.container.settings.recon_approval_threshold_cents
    return _Plan(
        view.run_id,
        line,
        entry_id,
        charges,
        f"{reason}: {why}",
        abs(line.amount_cents) > threshold,
    )


async def manual_match(ctx: RunContext, apply: bool) -> ActionResult:
    """Match the orphan line by hand to the one candidate the checks identified (or to
    `ledger_id`), through `guardia.recon.manual`: with a reason, audited, and held for a
    second operator above GUARDIA_RECON_APPROVAL_THRESHOLD_CENTS."""
    name = "manual_match"
    try:
        plan = await _plan(ctx)
    except GuardiaError as exc:
        return ActionResult(name, False, [], {"skipped": exc.message})
    if isinstance(plan, str):
        return ActionResult(name, False, [], {"skipped": plan})
    line = plan.line
    assert line.amount_cents is not None  # noqa: S101 - _plan refuses an unparseable amount
    change = (
        f"match line {line.line_id} to ledger entry {plan.entry_id} "
        f"({_pesos(line.amount_cents)}) in run {plan.run_id}"
    )
    if plan.charges:
        change += f", with the charge(s) it paid out: {', '.join(plan.charges)}"
    if plan.needs_approval:
        threshold = ctx.container.settings.recon_approval_threshold_cents
        change += (
            f"; above the approval threshold ({_pesos(threshold)}), it waits for a second "
            "operator (`guardia recon approve`)"
        )
    orders, correlation = await _orders(ctx, line.account, plan.ledger_ids)
    evidence: dict[str, Any] = {
        "run_id": plan.run_id,
        "bank_line_id": line.line_id,
        "ledger_ids": plan.ledger_ids,
        "amount_cents": abs(line.amount_cents),
        "reason": plan.reason,
        "needs_approval": plan.needs_approval,
        "external_ids": {"neon_statement_line": [line.line_id], "conekta_order": orders},
        "correlation_ids": correlation,
    }
    if not correlation:
        evidence["no_correlation_reason"] = (
            f"bank line {line.line_id} matched {', '.join(plan.ledger_ids)}: no order of "
            "Guardia's behind it, so no correlation id exists"
        )
    if not apply:
        return ActionResult(name, False, [change], evidence)
    async with ctx.container.engine.begin() as conn:
        done = await manual.request(
            conn,
            run_id=plan.run_id,
            action="match",
            bank_line_id=line.line_id,
            ledger_ids=plan.ledger_ids,
            reason=plan.reason,
            actor=ctx.actor,
            at=ctx.now,
            approval_threshold_cents=ctx.container.settings.recon_approval_threshold_cents,
        )
    return ActionResult(name, True, [change], {**evidence, "manual": manual.as_json(done)})


SPEC = RunbookSpec(
    name=NAME,
    runbook=RunbookId.RECONCILIATION_NO_MATCH,
    title="Conciliación no encuentra match (dinero huérfano)",
    checks=(
        Check(
            "currency_and_decimals",
            "amount parses, in pesos; no candidate off by x100 (cents vs pesos) or in another "
            "currency",
            currency_and_decimals,
        ),
        Check(
            "reference_format",
            "SPEI/OXXO/Conekta references: equal as written, not only after normalisation; no "
            "truncation or typo",
            reference_format,
        ),
        Check(
            "timezone_shift",
            "no counterpart dated apart by UTC vs America/Mexico_City, or beyond the window",
            timezone_shift,
        ),
        Check(
            "duplicates",
            "no other line or ledger entry with the same amount, reference, date and account",
            duplicates,
        ),
        Check("line_matched", "the line is matched, automatically or by hand", line_matched),
        Check(
            "recon_kpi",
            "match rate of the line's account and day (count and amount) ≥ the KPI threshold",
            recon_kpi,
        ),
    ),
    actions=(
        Action(
            "open_case",
            "record the line's exception and its evidence on the incident (the case)",
            False,
            open_case,
        ),
        Action(
            "manual_match",
            "match the line by hand to the one candidate found (or ledger_id), with a reason; "
            "a second operator above the approval threshold",
            True,
            manual_match,
        ),
    ),
    verification=("line_matched", "recon_kpi"),
    prevention=(
        "Normalisation of references (SPEI clave de rastreo, OXXO, Conekta ids)",
        "Unique hash per (amount, reference, date, account) on imported lines",
    ),
    needs="line",
    symptoms="Money in Odoo or Conekta that does not square with the NEON statement; the "
    "reconciliation KPI below 95 %.",
    detection="every `guardia recon run` stores one exception per orphan line with its "
    "candidates; `guardia recon exceptions --run RUN` lists them, and the line id there is the "
    "`--line-id` of this runbook.",
    commands=(
        "guardia recon report (--run RUN)",
        "guardia recon exceptions --run RUN",
        "guardia recon match --run RUN --line LINE_ID --ledger ENTRY_ID --reason …",
        "guardia recon approve MANUAL_ID --reason … (a second operator)",
        "guardia recon unmatch --run RUN --line LINE_ID --reason …",
    ),
)
