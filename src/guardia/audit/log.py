"""Appending to and verifying the audit log.

h_n = SHA-256(h_(n-1) ‖ JCS(entry_n)) (docs/reliability.md §6). The chain head lives in a
single row taken FOR UPDATE, so appends are serialised and every entry commits in the same
transaction as the action it records. A trigger refuses UPDATE, DELETE and TRUNCATE, and
`verify` recomputes the chain to name the first edited, deleted or reordered entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guardia.audit.tables import audit_head, audit_log
from guardia.core.canonical import GENESIS, chain_hash
from guardia.core.errors import GuardiaError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded operator action."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: dict[str, Any]
    reason: str
    correlation_id: str | None
    prev_hash: str
    hash: str


def hashed_fields(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: Mapping[str, Any],
    reason: str,
    correlation_id: str | None,
) -> dict[str, Any]:
    """The exact content an entry's hash covers."""
    return {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "target": dict(target),
        "reason": reason,
        "correlation_id": correlation_id,
    }


async def record(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    target: Mapping[str, Any],
    reason: str = "",
    correlation_id: str | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append an entry inside the caller's transaction (it commits with the action)."""
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    head = (
        await conn.execute(select(audit_head).where(audit_head.c.id == 1).with_for_update())
    ).first()
    prev_seq, prev_hash = (int(head.seq), str(head.hash)) if head else (0, GENESIS)
    seq = prev_seq + 1
    content = hashed_fields(seq, moment, actor, action, target, reason, correlation_id)
    digest = chain_hash(prev_hash, content)
    await conn.execute(
        insert(audit_log).values(
            seq=seq,
            at=moment,
            actor=actor,
            action=action,
            target=content["target"],
            reason=reason,
            correlation_id=correlation_id,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    if head is None:
        await conn.execute(insert(audit_head).values(id=1, seq=seq, hash=digest))
    else:
        await conn.execute(
            update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest)
        )
    log.info("audited", seq=seq, actor=actor, action=action, correlation_id=correlation_id)
    return AuditEntry(
        seq, moment, actor, action, content["target"], reason, correlation_id, prev_hash, digest
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of verifying the chain."""

    ok: bool
    entries: int
    head: str
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head": self.head,
            "problems": self.problems,
        }


async def verify(engine: AsyncEngine) -> ChainReport:
    """Recompute the chain; report each entry whose position, link or content does not hold."""
    problems: list[str] = []
    previous = GENESIS
    expected_seq = 1
    count = 0
    async with engine.connect() as conn:
        head = (await conn.execute(select(audit_head).where(audit_head.c.id == 1))).first()
        rows = await conn.stream(select(audit_log).order_by(audit_log.c.seq))
        async for row in rows:
            count += 1
            if row.seq != expected_seq:
                problems.append(
                    f"entry {row.seq}: expected entry {expected_seq} here (deleted or reordered)"
                )
            if row.prev_hash != previous:
                problems.append(f"entry {row.seq}: does not link to the entry before it")
            content = hashed_fields(
                row.seq, row.at, row.actor, row.action, row.target, row.reason, row.correlation_id
            )
            try:
                intact = chain_hash(row.prev_hash, content) == row.hash
            except GuardiaError as exc:  # a tampered row may not even be hashable
                problems.append(f"entry {row.seq}: unreadable ({exc.message})")
            else:
                if not intact:
                    problems.append(f"entry {row.seq}: content does not match its hash (edited)")
            previous = row.hash
            expected_seq = row.seq + 1
    head_hash = str(head.hash) if head else GENESIS
    if head is not None and (int(head.seq) != expected_seq - 1 or head_hash != previous):
        problems.append(
            f"chain head says entry {head.seq}; the log ends at entry {expected_seq - 1} "
            "(entries deleted at the end, or the head was edited)"
        )
    return ChainReport(not problems, count, head_hash, problems)
