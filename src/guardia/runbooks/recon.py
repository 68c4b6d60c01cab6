"""Runbook 3, "Conciliación no encuentra match (dinero huérfano)", as code.

The subject is one bank statement line (`guardia.runbooks.orphan` reads it, its run and the
ledger entries near it). The diagnostic checks (currency, references, time zone, duplicates)
describe why the line did not match; they keep failing after a manual match, because what they
found is still true. The recovery is verified by `line_matched` and `recon_kpi`, both read from
the store alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from guardia.core.errors import GuardiaError, NotFound
from guardia.incidents import service as incidents
from guardia.incidents.model import Runbook as RunbookId
from guardia.payments.service import get_order_view
from guardia.recon import manual
from guardia.runbooks.model import (
    Action,
    ActionResult,
    Check,
    CheckResult,
    RunbookSpec,
    RunContext,
    Status,
)
from guardia.runbooks.orphan import (
    Line,
    View,
    find_latest_run,
    find_lines,
    find_matched_entries,
    find_postings,
    format_pesos,
    get_line,
    load_entries,
    load_ledger,
    load_view,
    parse_amount,
    subject_line_id,
    view_evidence,
)

NAME: Final = "recon-orphan"
CASE_NOTE: Final = "case: recon exception"
_FOREIGN_RE: Final = re.compile(r"(?i)(?<![A-Z])(USD|EUR|DLS|D[OÓ]LAR(?:ES)?|US\$)(?![A-Z])")


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


async def currency_and_decimals(ctx: RunContext) -> CheckResult:
    """The line's amount parses, is in pesos, and no candidate is off by x100 or in another
    currency."""
    name = "currency_and_decimals"
    view = await load_view(ctx)
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
                f"the line's {format_pesos(line.amount_cents)} is 100 times {who}'s "
                f"{format_pesos(c.entry.amount_cents)}"
                if c.unit == "x100"
                else f"{who}'s {format_pesos(c.entry.amount_cents)} is 100 times the line's "
                f"{format_pesos(line.amount_cents)}"
            )
            problems.append(f"{times}: cents read as pesos")
            named.append(who)
        currency = view.postings.get(who, ("", "MXN"))[1]
        if c.related and currency != "MXN":
            problems.append(f"{who} is booked in {currency}, the statement in MXN")
            named.append(who)
    evidence = view_evidence(
        view, named, currency="MXN: statements carry no currency column (importers read MXN)"
    )
    if problems:
        return CheckResult(name, Status.FAIL, "; ".join(problems), evidence)
    amount = format_pesos(line.amount_cents) if line.amount_cents is not None else "?"
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
    view = await load_view(ctx)
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
    evidence = view_evidence(view, named, line_references=list(view.line.raw_refs))
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
    view = await load_view(ctx)
    shifted = [c for c in view.candidates if c.related and c.timezone]
    evidence = view_evidence(view, [c.entry.entry_id for c in shifted])
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
    view = await load_view(ctx)
    line = view.line
    async with ctx.container.engine.connect() as conn:
        same_day = await find_lines(conn, account=line.account, day=line.operation_date)
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
    evidence = view_evidence(
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
        line = await get_line(conn, subject_line_id(ctx))
        run_id = await find_latest_run(conn, line.statement_id)
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
        line = await get_line(conn, subject_line_id(ctx))
        run_id = await find_latest_run(conn, line.statement_id)
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
    sizes = [(abs(parse_amount(r.cargo, r.abono)[0] or 0), bool(r.matched)) for r in counted]
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
            line = await get_line(conn, subject_line_id(ctx))
            run_id = await find_latest_run(conn, line.statement_id)
            # A dry run without an incident still says what --apply would record: the
            # applied run opens the incident when the line's check fails.
            if run_id is None or (apply and ctx.incident_id is None):
                why = "no run has read the line" if run_id is None else "no incident"
                return ActionResult(name, False, [], {"skipped": why})
            found = await _bank_exceptions(conn, run_id, line.line_id)
            todo = [
                e
                for e in found
                if e["status"] == "open"
                and (
                    ctx.incident_id is None
                    or not await _case_recorded(conn, ctx.incident_id, e["id"])
                )
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
        amount = "amount unknown" if e["amount_cents"] is None else format_pesos(e["amount_cents"])
        summary = (
            f"exception {e['id']} of run {run_id} (line {line.line_id}: {e['reason']}, "
            f"{amount}; candidates: {', '.join(filter(None, cands)) or 'none'})"
        )
        changes.append(f"record {summary} on the incident as its case")
        notes.append(
            f"{CASE_NOTE} {e['id']} (run {run_id}, line {line.line_id}): {e['reason']}; "
            f"evidence: {json.dumps(e['candidates'], ensure_ascii=False, sort_keys=True)}"
        )
    if not apply or ctx.incident_id is None:
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
        known = {e.entry_id: e for e in await load_entries(ctx, line.account)}
        if chosen not in known:
            return f"{chosen} is not a transfer or Odoo move of account {line.account}"
        async with ctx.container.engine.connect() as conn:
            taken = (await find_matched_entries(conn, run_id, [chosen])).get(chosen, ())
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
    why = [f"{c.entry.entry_id} has the line's amount ({format_pesos(c.entry.amount_cents)})"]
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
    ledger = await load_ledger(ctx, account)
    amount = next((e.amount_cents for e in ledger.entries if e.entry_id == transfer_id), None)
    nets = sum(ledger.charge_nets.get(c, 0) for c in charges)
    if amount is not None and all(c in ledger.charge_nets for c in charges) and nets == amount:
        return charges, None
    return (), (
        f"the charges the run placed in {transfer_id} ({', '.join(charges)}) net "
        f"{format_pesos(nets)}, not its {format_pesos(amount or 0)}: left open for the next run"
    )


async def _orders(
    ctx: RunContext, account: str, ledger_ids: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(order ids, their correlation ids) behind ledger entries: the orders of the charges and
    of the Odoo moves Guardia posted."""
    async with ctx.container.engine.connect() as conn:
        found = [order for order, _currency in (await find_postings(conn, ledger_ids)).values()]
    memos = (await load_ledger(ctx, account)).charge_memos
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
    view = await load_view(ctx)
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
        same_day = await find_lines(conn, account=line.account, day=line.operation_date)
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
        f"({format_pesos(line.amount_cents)}) in run {plan.run_id}"
    )
    if plan.charges:
        change += f", with the charge(s) it paid out: {', '.join(plan.charges)}"
    if plan.needs_approval:
        threshold = ctx.container.settings.recon_approval_threshold_cents
        change += (
            f"; above the approval threshold ({format_pesos(threshold)}), it waits for a second "
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
