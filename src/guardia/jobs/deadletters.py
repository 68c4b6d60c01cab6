"""Dead letters: jobs that exhausted their retries or failed for good, kept with their cause.

A worker middleware records the dead letter when a job fails and its retry policy says no more;
operators list them and re-enqueue one, a filtered set, or all.

One stuck item is one open dead letter. The item is what a job works on: its arguments without
those that only describe one run (`RUN_ARGUMENTS`; the database derives the `item` column with
the same rule, migration 0008). When the same item fails again (a relay or a duplicate delivery
enqueued it anew), its open dead letter counts the runs and the last failure; `failed_at` stays
the first failure, so `DeadLettersGrowing` sees only new items. When a job of the item succeeds,
the middleware closes the open dead letter as `resolved`, saying when and by which job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from procrastinate import exceptions as proc_exc
from sqlalchemy import ColumnElement, exists, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from guardia.adapters.postgres.tables import dead_letters
from guardia.audit import log as audit
from guardia.core.clock import Clock, SystemClock
from guardia.core.errors import failure_cause
from guardia.core.redaction import redact_error_message
from guardia.jobs.policy import BackoffPolicy

log = structlog.get_logger(__name__)

#: Job arguments that describe one run, not the item it works on: the periodic timestamp, the
#: correlation id and the actor. Keep equal to the `item` column's expression (migration 0008).
RUN_ARGUMENTS = ("timestamp", "correlation_id", "actor")


def item_of(task_kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a job with these arguments works on (its dead letters are one per item)."""
    return {k: v for k, v in task_kwargs.items() if k not in RUN_ARGUMENTS}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One job that will not run again unless an operator retries it."""

    id: int
    job_id: int | None
    task_name: str
    task_kwargs: dict[str, Any]
    cause: str
    error_type: str
    error_message: str
    attempts: int
    correlation_id: str | None
    order_id: str | None
    failed_at: datetime
    status: str
    retried_at: datetime | None
    retry_job_id: int | None
    last_failed_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters an operator means."""

    ids: tuple[int, ...] = ()
    cause: str | None = None
    task_name: str | None = None
    order_id: str | None = None
    status: str | None = "open"

    def clauses(self) -> list[Any]:
        """Translate to SQL conditions."""
        where: list[Any] = []
        if self.ids:
            where.append(dead_letters.c.id.in_(self.ids))
        if self.cause:
            where.append(dead_letters.c.cause == self.cause)
        if self.task_name:
            where.append(dead_letters.c.task_name == self.task_name)
        if self.order_id:
            where.append(dead_letters.c.order_id == self.order_id)
        if self.status:
            where.append(dead_letters.c.status == self.status)
        return where


def _row(r: Any) -> DeadLetter:
    return DeadLetter(
        id=r.id,
        job_id=r.job_id,
        task_name=r.task_name,
        task_kwargs=r.task_kwargs,
        cause=r.cause,
        error_type=r.error_type,
        error_message=r.error_message,
        attempts=r.attempts,
        correlation_id=r.correlation_id,
        order_id=r.order_id,
        failed_at=r.failed_at,
        status=r.status,
        retried_at=r.retried_at,
        retry_job_id=r.retry_job_id,
        last_failed_at=r.last_failed_at,
        resolved_at=r.resolved_at,
        resolution=r.resolution,
    )


@dataclass(frozen=True, slots=True)
class Recorded:
    """Where a final failure went: a new dead letter, or the item's open one."""

    id: int
    new: bool


async def record(
    engine: AsyncEngine, *, job: Any, exc: BaseException, queue: str, now: datetime
) -> Recorded:
    """Store a dead letter for a job that will not be retried, or count the failure on the
    item's open one (one open dead letter per task and item)."""
    kwargs: dict[str, Any] = dict(job.task_kwargs)
    stmt = insert(dead_letters).values(
        job_id=job.id,
        task_name=job.task_name,
        task_kwargs=kwargs,
        queue=queue,
        lock=job.lock,
        cause=failure_cause(exc),
        error_type=type(exc).__name__,
        error_message=redact_error_message(str(exc))[:2000],
        attempts=job.attempts + 1,
        correlation_id=kwargs.get("correlation_id"),
        order_id=kwargs.get("order_id"),
        failed_at=now,
        last_failed_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[dead_letters.c.task_name, dead_letters.c.item],
        index_where=dead_letters.c.status == "open",
        set_={
            "job_id": stmt.excluded.job_id,
            "queue": stmt.excluded.queue,
            "lock": stmt.excluded.lock,
            "cause": stmt.excluded.cause,
            "error_type": stmt.excluded.error_type,
            "error_message": stmt.excluded.error_message,
            "attempts": dead_letters.c.attempts + stmt.excluded.attempts,
            "last_failed_at": stmt.excluded.last_failed_at,
        },
    )
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                # xmax is 0 on a freshly inserted row version, not on an updated one.
                stmt.returning(dead_letters.c.id, literal_column("xmax = 0").label("new"))
            )
        ).one()
    return Recorded(int(row.id), bool(row.new))


async def resolve(engine: AsyncEngine, *, job: Any, now: datetime) -> list[int]:
    """Close the open dead letter of the item a job just completed, as resolved by that job."""
    async with engine.begin() as conn:
        closed = await conn.scalars(
            update(dead_letters)
            .where(
                dead_letters.c.status == "open",
                dead_letters.c.task_name == job.task_name,
                dead_letters.c.item == item_of(dict(job.task_kwargs)),
            )
            .values(status="resolved", resolved_at=now, resolution=f"succeeded on job {job.id}")
            .returning(dead_letters.c.id)
        )
        return list(closed)


def resting(
    task_name: str,
    argument: str,
    item_id: ColumnElement[Any],
    *,
    failed_after: datetime | None = None,
) -> ColumnElement[bool]:
    """SQL: the item `item_id` of `task_name` (named by its `argument`) has an open dead letter
    (that failed after a moment, if given). Relays and the sweeper leave such an item alone:
    an operator's retry, or the moment passing, brings it back."""
    where = [
        dead_letters.c.status == "open",
        dead_letters.c.task_name == task_name,
        dead_letters.c.item[argument] == func.to_jsonb(item_id),
    ]
    if failed_after is not None:
        where.append(dead_letters.c.last_failed_at > failed_after)
    return exists().where(*where)


def middleware(
    engine_for: Callable[[Any], AsyncEngine],
    clock_for: Callable[[Any], Clock] = lambda context: SystemClock(),
) -> Callable[[Callable[[], Awaitable[Any]], Any, Any], Awaitable[Any]]:
    """Build the worker middleware that turns final failures into dead letters and closes an
    item's dead letter when a job of the item succeeds."""

    async def dead_letter_middleware(
        call_next: Callable[[], Awaitable[Any]], context: Any, worker: Any
    ) -> Any:
        job = context.job
        try:
            result = await call_next()
        except (proc_exc.JobAborted, proc_exc.TaskNotFound):
            raise
        except Exception as exc:
            task = worker.app.tasks.get(job.task_name)
            policy = getattr(task, "retry_strategy", None)
            retrying = isinstance(policy, BackoffPolicy) and policy.will_retry(exc, job.attempts)
            if not retrying:
                letter = await record(
                    engine_for(context),
                    job=job,
                    exc=exc,
                    queue=job.queue,
                    now=clock_for(context).now(),
                )
                log.error(
                    "dead_letter" if letter.new else "dead_letter_failed_again",
                    dead_letter_id=letter.id,
                    task=job.task_name,
                    cause=failure_cause(exc),
                    attempts=job.attempts + 1,
                )
            raise
        try:
            closed = await resolve(engine_for(context), job=job, now=clock_for(context).now())
        except SQLAlchemyError as exc:
            # The job did its work: failing it now would run it again. The dead letter stays
            # open, in sight of an operator (the warning says why).
            log.warning(
                "dead_letter_resolve_failed", task=job.task_name, job=job.id, error=str(exc)
            )
            return result
        if closed:
            log.info("dead_letter_resolved", dead_letter_ids=closed, task=job.task_name, job=job.id)
        return result

    return dead_letter_middleware


async def list_dead_letters(
    engine: AsyncEngine, flt: DeadLetterFilter, *, limit: int = 200
) -> list[DeadLetter]:
    """List dead letters, newest first."""
    query = (
        select(dead_letters)
        .where(*flt.clauses())
        .order_by(dead_letters.c.failed_at.desc(), dead_letters.c.id.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [_row(r) for r in await conn.execute(query)]


async def retry(
    engine: AsyncEngine,
    defer: Callable[[str, dict[str, Any]], Awaitable[int]],
    flt: DeadLetterFilter,
    *,
    actor: str,
    reason: str = "",
) -> list[tuple[int, int]]:
    """Re-enqueue matching open dead letters; return (dead_letter_id, new_job_id) pairs.

    Each row is claimed with FOR UPDATE SKIP LOCKED and marked retried in the same transaction
    as the new job is deferred, so two operators retrying at once never enqueue twice.
    """
    done: list[tuple[int, int]] = []
    flt = DeadLetterFilter(
        ids=flt.ids,
        cause=flt.cause,
        task_name=flt.task_name,
        order_id=flt.order_id,
        status="open",
    )
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                select(dead_letters)
                .where(*flt.clauses())
                .order_by(dead_letters.c.id)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for r in rows:
            job_id = await defer(r.task_name, dict(r.task_kwargs))
            await conn.execute(
                update(dead_letters)
                .where(dead_letters.c.id == r.id)
                .values(
                    status="retried",
                    retried_at=func.now(),
                    retried_by=actor,
                    retry_job_id=job_id,
                )
            )
            done.append((r.id, job_id))
        if done:
            await audit.record(
                conn,
                actor=actor,
                action="dlq_retry",
                target={
                    "dead_letters": [d for d, _ in done],
                    "jobs": [j for _, j in done],
                    "filter": {
                        "ids": list(flt.ids),
                        "cause": flt.cause,
                        "task": flt.task_name,
                        "order_id": flt.order_id,
                    },
                },
                reason=reason,
                correlation_id=rows[0].correlation_id if len(rows) == 1 else None,
            )
    return done
