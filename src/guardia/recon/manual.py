"""Manual reconciliation: an operator matches or unmatches lines with a reason; a match that
moves more than the approval threshold waits for a second operator. Every step is audited in the
same transaction as its effect."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from guardia.audit import log as audit
from guardia.core.errors import Conflict, InvalidInput, NotFound
from guardia.recon.normalize import parse_amount_cents
from guardia.recon.tables import recon_manual

MANUAL_RULE = "manual"


@dataclass(frozen=True, slots=True)
class ManualAction:
    """A recorded manual action and where it stands."""

    id: int
    action: str
    status: str  # applied | pending_approval
    bank_line_id: str
    ledger_ids: tuple[str, ...]
    amount_cents: int


async def _line_amount(conn: AsyncConnection, run_id: int, line_id: str) -> int:
    row = (
        await conn.execute(
            text(
                "SELECT l.cargo, l.abono FROM recon_lines l JOIN recon_runs r ON l.statement_id IN "
                "(SELECT jsonb_array_elements_text(r.statement_ids)::bigint) "
                "WHERE r.id = :run AND l.line_id = :line"
            ),
            {"run": run_id, "line": line_id},
        )
    ).first()
    if row is None:
        raise NotFound(f"line {line_id} is not part of run {run_id}")
    cargo = parse_amount_cents(row.cargo) or 0
    abono = parse_amount_cents(row.abono) or 0
    return abs(abono - cargo)


async def _move_kpi(
    conn: AsyncConnection, run_id: int, line_id: str, amount_cents: int, step: int
) -> None:
    """Keep the stored KPI (the line's account and day, and the run's headline) in step with a
    manual match (step 1) or unmatch (-1): `guardia recon report` and ReconKpiLow read it."""
    line = (
        await conn.execute(
            text("SELECT account, operation_date FROM recon_lines WHERE line_id = :line"),
            {"line": line_id},
        )
    ).one()
    moved = {"run": run_id, "n": step, "amount": step * abs(amount_cents)}
    await conn.execute(
        text(
            "UPDATE recon_kpi SET matched_lines = matched_lines + :n, "
            "matched_amount_cents = matched_amount_cents + :amount, "
            "match_rate_count = CASE WHEN lines > 0 "
            "THEN (matched_lines + :n)::float / lines ELSE 0.0 END, "
            "match_rate_amount = CASE WHEN amount_cents > 0 "
            "THEN (matched_amount_cents + :amount)::float / amount_cents ELSE 1.0 END "
            "WHERE run_id = :run AND account = :account AND local_date = :day"
        ),
        {**moved, "account": line.account, "day": line.operation_date},
    )
    await conn.execute(
        text(
            "UPDATE recon_runs SET matched_lines = matched_lines + :n, "
            "matched_amount_cents = matched_amount_cents + :amount, "
            "match_rate_count = CASE WHEN lines > 0 "
            "THEN (matched_lines + :n)::float / lines ELSE 0.0 END, "
            "match_rate_amount = CASE WHEN amount_cents > 0 "
            "THEN (matched_amount_cents + :amount)::float / amount_cents ELSE 0.0 END "
            "WHERE id = :run"
        ),
        moved,
    )


async def _apply(conn: AsyncConnection, action_id: int) -> None:
    row = (await conn.execute(select(recon_manual).where(recon_manual.c.id == action_id))).one()
    if row.action == "match":
        already = await conn.scalar(
            text("SELECT count(*) FROM recon_matches WHERE run_id = :run AND bank_line_id = :line"),
            {"run": row.run_id, "line": row.bank_line_id},
        )
        await conn.execute(
            text(
                "INSERT INTO recon_matches (run_id, bank_line_id, ledger_ids, rule, score) "
                "VALUES (:run, :line, CAST(:ids AS jsonb), :rule, 1.0)"
            ),
            {
                "run": row.run_id,
                "line": row.bank_line_id,
                "ids": json.dumps(row.ledger_ids),
                "rule": MANUAL_RULE,
            },
        )
        await conn.execute(
            text(
                "UPDATE recon_exceptions SET status = 'matched_manually', "
                "resolved_by_manual_id = :id WHERE run_id = :run AND status = 'open' AND "
                "(bank_line_id = :line OR ledger_id = ANY(:ids))"
            ),
            {
                "id": action_id,
                "run": row.run_id,
                "line": row.bank_line_id,
                "ids": list(row.ledger_ids),
            },
        )
        if not already:
            await _move_kpi(conn, row.run_id, row.bank_line_id, row.amount_cents, 1)
    else:
        removed = await conn.execute(
            text("DELETE FROM recon_matches WHERE run_id = :run AND bank_line_id = :line"),
            {"run": row.run_id, "line": row.bank_line_id},
        )
        if removed.rowcount == 0:
            raise NotFound(f"line {row.bank_line_id} has no match in run {row.run_id}")
        await conn.execute(
            text(
                "INSERT INTO recon_exceptions (run_id, side, bank_line_id, reason, candidates, "
                "status, resolved_by_manual_id) VALUES (:run, 'bank', :line, 'unmatched_manually', "
                "'[]', 'open', :id)"
            ),
            {"run": row.run_id, "line": row.bank_line_id, "id": action_id},
        )
        await _move_kpi(conn, row.run_id, row.bank_line_id, row.amount_cents, -1)
    await conn.execute(
        text("UPDATE recon_manual SET status = 'applied' WHERE id = :id"), {"id": action_id}
    )


async def request(
    conn: AsyncConnection,
    *,
    run_id: int,
    action: str,
    bank_line_id: str,
    ledger_ids: Sequence[str],
    reason: str,
    actor: str,
    at: datetime,
    approval_threshold_cents: int,
) -> ManualAction:
    """Record a manual match/unmatch; apply it now, or hold it for a second operator."""
    if action not in ("match", "unmatch"):
        raise InvalidInput("action is match or unmatch")
    if not reason.strip():
        raise InvalidInput("a manual reconciliation needs a reason")
    if action == "match" and not ledger_ids:
        raise InvalidInput("a manual match names at least one ledger entry")
    amount = await _line_amount(conn, run_id, bank_line_id)
    needs_approval = action == "match" and amount > approval_threshold_cents
    new_id = await conn.scalar(
        text(
            "INSERT INTO recon_manual (run_id, action, bank_line_id, ledger_ids, amount_cents, "
            "reason, actor, status, created_at) VALUES (:run, :action, :line, CAST(:ids AS jsonb), "
            ":amount, :reason, :actor, :status, :at) RETURNING id"
        ),
        {
            "run": run_id,
            "action": action,
            "line": bank_line_id,
            "ids": json.dumps(list(ledger_ids)),
            "amount": amount,
            "reason": reason,
            "actor": actor,
            "status": "pending_approval" if needs_approval else "applying",
            "at": at,
        },
    )
    action_id = int(new_id or 0)
    if not needs_approval:
        await _apply(conn, action_id)
    await audit.record(
        conn,
        actor=actor,
        action=f"recon_{action}",
        target={
            "manual_id": action_id,
            "run_id": run_id,
            "bank_line_id": bank_line_id,
            "ledger_ids": list(ledger_ids),
            "amount_cents": amount,
            "status": "pending_approval" if needs_approval else "applied",
        },
        reason=reason,
        at=at,
    )
    return ManualAction(
        action_id,
        action,
        "pending_approval" if needs_approval else "applied",
        bank_line_id,
        tuple(ledger_ids),
        amount,
    )


async def approve(
    conn: AsyncConnection, action_id: int, *, approver: str, reason: str, at: datetime
) -> ManualAction:
    """A second operator approves a held match; the requester cannot approve their own."""
    row = (
        await conn.execute(
            select(recon_manual).where(recon_manual.c.id == action_id).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound(f"manual action {action_id} not found")
    if row.status != "pending_approval":
        raise Conflict(f"manual action {action_id} is {row.status}, not waiting for approval")
    if row.actor == approver:
        raise Conflict("the operator who asked for a match cannot approve it: a second one must")
    await conn.execute(
        text("UPDATE recon_manual SET approved_by = :who, approved_at = :at WHERE id = :id"),
        {"who": approver, "at": at, "id": action_id},
    )
    await _apply(conn, action_id)
    await audit.record(
        conn,
        actor=approver,
        action="recon_approve",
        target={
            "manual_id": action_id,
            "requested_by": row.actor,
            "amount_cents": row.amount_cents,
        },
        reason=reason,
        at=at,
    )
    return ManualAction(
        action_id, row.action, "applied", row.bank_line_id, tuple(row.ledger_ids), row.amount_cents
    )


def as_json(action: ManualAction) -> dict[str, Any]:
    """Serialisable form."""
    return {
        "id": action.id,
        "action": action.action,
        "status": action.status,
        "bank_line_id": action.bank_line_id,
        "ledger_ids": list(action.ledger_ids),
        "amount_cents": action.amount_cents,
    }
