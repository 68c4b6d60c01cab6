"""Jobs of a worker that died (no heartbeat) go back to the queue."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from guardia.bootstrap import Container
from guardia.jobs.tasks import retry_stalled_jobs

pytestmark = pytest.mark.integration


async def job_status(container: Container, job_id: int) -> str:
    async with container.engine.connect() as conn:
        return str(
            await conn.scalar(
                text("SELECT status FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
            )
        )


async def test_a_job_held_by_a_silent_worker_is_retried_and_a_live_one_is_not(
    container: Container,
) -> None:
    dead_job = await container.defer("guardia:pull_order", {"order_id": "ord_dead"})
    live_job = await container.defer("guardia:pull_order", {"order_id": "ord_live"})
    assert dead_job is not None
    assert live_job is not None
    async with container.engine.begin() as conn:
        for seconds, job in ((600, dead_job), (1, live_job)):
            worker_id = await conn.scalar(
                text(
                    "INSERT INTO procrastinate_workers (last_heartbeat) "
                    "VALUES (now() - make_interval(secs => :s)) RETURNING id"
                ),
                {"s": seconds},
            )
            await conn.execute(
                text(
                    "UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w WHERE id = :j"
                ),
                {"w": worker_id, "j": job},
            )
    retried = await retry_stalled_jobs(container.jobs, seconds_since_heartbeat=60)
    assert retried == 1
    assert await job_status(container, dead_job) == "todo"
    assert await job_status(container, live_job) == "doing"
