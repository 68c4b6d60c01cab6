"""Signed-webhook ingress benchmark: verify + durable insert + 2xx, against a same-run baseline.

Starts the real API (`python -m guardia.entrypoints serve`) on 127.0.0.1 over a fresh, migrated
database, then measures three things in one run on the same machine:

1. ingress, closed loop: C concurrent clients POST N distinct, RSA-signed Conekta `order.paid`
   events to `/webhooks/conekta` (verify DIGEST, store event + forensic attempt, enqueue the
   processing job, answer 200);
2. baseline, closed loop: the same rows inserted one per transaction straight through psycopg
   (`AsyncConnectionPool` of size C) at the same concurrency — the floor of "durable insert";
3. ingress, open loop: fresh events sent at a fixed rate, latency measured from each request's
   scheduled send time so a slow server cannot hide its queue (no coordinated omission).

Usage: `python bench/webhook_ingress.py [--events N] [--concurrency C] [--rate R] [--json]`
(also `--duration S` and `--open-connections K` for the open loop); results in
docs/benchmarks.md.
Database: `GUARDIA_BENCH_DATABASE_URL` (a server where a scratch database may be created) or an
embedded PostgreSQL in a temporary directory, deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import hashlib
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from common import (
    find_postmaster,
    free_port,
    own_cpu_seconds,
    percentile,
    postgres_cpu_seconds,
    postgres_server,
    process_cpu_seconds,
    scratch_database,
    system_busy_seconds,
)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = Path("fixtures", "providers", "conekta", "order_paid_spei.json")
HOST = "127.0.0.1"
WEBHOOK_PATH = "/webhooks/conekta"
RATIO_TARGET = 0.5
P99_TARGET_SECONDS = 0.050
ACHIEVED_RATE_SHARE = 0.95
READY_DEADLINE_SECONDS = 60.0
READY_SETTLE_SECONDS = 3.0
INGRESS_CHECKS = ("database", "migrations", "webhook_keys")
REQUEST_TIMEOUT_SECONDS = 30.0
OPEN_LOOP_GRACE_SECONDS = 15.0
WARMUP_EVENTS = 100

BASELINE_INSERT = (
    "INSERT INTO webhook_events (provider, event_id, event_type, livemode, order_id, "
    "object_type, correlation_id, body, body_sha256, status) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (provider, event_id) DO NOTHING"
)


_STARTED = time.monotonic()


def log(message: str) -> None:
    """Print a progress line on stderr (stdout is kept for the result)."""
    elapsed = time.monotonic() - _STARTED
    print(f"[webhook_ingress +{elapsed:5.1f} s] {message}", file=sys.stderr, flush=True)


# --- inputs ---------------------------------------------------------------------------------


def shared_dir() -> Path:
    """The reference material: GUARDIA_SHARED_DIR, else the repository's copy."""
    return Path(os.environ.get("GUARDIA_SHARED_DIR", REPO / "tests" / "reference"))


@dataclass(frozen=True, slots=True)
class Event:
    """One signed delivery, ready to send, and the row the baseline inserts for it."""

    event_id: str
    order_id: str
    event: dict[str, Any]
    body: bytes
    headers: dict[str, str]
    body_sha256: str
    correlation_id: str


def hex24() -> str:
    """A Conekta-style 24-hex object id."""
    return secrets.token_hex(12)


def make_event(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of the template with a fresh event id, order id and charge id."""
    event = copy.deepcopy(template)
    order_id = "ord_" + secrets.token_hex(8)
    event["id"] = hex24()
    order = event["data"]["object"]
    order["id"] = order_id
    for item in order.get("line_items", {}).get("data", []):
        item["parent_id"] = order_id
    for charge in order.get("charges", {}).get("data", []):
        charge["id"] = hex24()
        charge["order_id"] = order_id
    return event


def sign_events(key: rsa.RSAPrivateKey, template: dict[str, Any], count: int) -> list[Event]:
    """Build and sign `count` distinct events the way Conekta does (PKCS#1 v1.5, SHA-256)."""
    events: list[Event] = []
    for _ in range(count):
        event = make_event(template)
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        digest = base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
        events.append(
            Event(
                event_id=event["id"],
                order_id=event["data"]["object"]["id"],
                event=event,
                body=body,
                headers={"content-type": "application/json", "digest": digest},
                body_sha256=hashlib.sha256(body).hexdigest(),
                correlation_id=uuid.uuid4().hex,
            )
        )
    return events


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    """The public half of a key, as Guardia is configured with it."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rsa_verify_microseconds(key: rsa.RSAPrivateKey, event: Event, rounds: int = 300) -> float:
    """The cost of one signature verification in this process, for the cost breakdown."""
    public = key.public_key()
    signature = base64.b64decode(event.headers["digest"])
    start = time.perf_counter()
    for _ in range(rounds):
        public.verify(signature, event.body, padding.PKCS1v15(), hashes.SHA256())
    return (time.perf_counter() - start) / rounds * 1e6


# --- measurements ---------------------------------------------------------------------------


@dataclass
class Run:
    """Latencies and failures of one measured phase."""

    count: int
    wall_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    cpu: dict[str, float | None] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        """Count a failed request, keeping the first few reasons."""
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(reason)

    def summary(self) -> dict[str, Any]:
        """Throughput (N / wall time) and latency percentiles in milliseconds."""
        ordered = sorted(self.latencies)
        return {
            "events": self.count,
            "wall_seconds": round(self.wall_seconds, 3),
            "rate": round(self.count / self.wall_seconds, 1) if self.wall_seconds else None,
            "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "cpu_ms_per_event": self.cpu,
        }


async def post_event(client: httpx.AsyncClient, event: Event) -> str | None:
    """POST one delivery; None when it was accepted, else the reason it was not."""
    try:
        response = await client.post(WEBHOOK_PATH, content=event.body, headers=event.headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    outcome = response.json().get("outcome")
    if outcome != "accepted":
        return f"outcome {outcome!r}"
    return None


async def ingress_closed_loop(
    client: httpx.AsyncClient, events: list[Event], concurrency: int
) -> Run:
    """C tasks POST the events back to back; each latency is one request's round trip."""
    run = Run(count=len(events))
    pending: Iterator[Event] = iter(events)

    async def sender() -> None:
        for event in pending:  # shared iterator: every event is sent exactly once
            start = time.perf_counter()
            reason = await post_event(client, event)
            run.latencies.append(time.perf_counter() - start)
            if reason is not None:
                run.fail(reason)

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    run.wall_seconds = time.perf_counter() - start
    return run


def baseline_row(event: Event) -> tuple[Any, ...]:
    """The webhook_events row the API would store for an event (as psycopg parameters)."""
    return (
        "conekta",
        event.event_id,
        event.event["type"],
        bool(event.event.get("livemode", False)),
        event.order_id,
        "order",
        event.correlation_id,
        Jsonb(event.event),
        event.body_sha256,
        "received",
    )


async def baseline_closed_loop(pool: AsyncConnectionPool, events: list[Event]) -> Run:
    """One task per pooled connection inserts the same rows, one row per transaction."""
    run = Run(count=len(events))
    pending: Iterator[Event] = iter(events)

    async def inserter() -> None:
        for event in pending:
            start = time.perf_counter()
            try:
                async with pool.connection() as conn:  # commits on exit: one row, one txn
                    cursor = await conn.execute(BASELINE_INSERT, baseline_row(event))
                    inserted = cursor.rowcount
            except psycopg.Error as exc:
                run.latencies.append(time.perf_counter() - start)
                run.fail(f"{type(exc).__name__}: {exc}")
                continue
            run.latencies.append(time.perf_counter() - start)
            if inserted != 1:
                run.fail(f"rowcount {inserted}")

    start = time.perf_counter()
    await asyncio.gather(*(inserter() for _ in range(pool.max_size)))
    run.wall_seconds = time.perf_counter() - start
    return run


@dataclass
class OpenLoop:
    """A fixed-rate run: latency from the scheduled send time, and what was achieved."""

    target_rate: float
    run: Run
    achieved_rate: float
    send_lag_max_ms: float
    connections: int
    max_backlog: int
    unanswered: int

    def summary(self) -> dict[str, Any]:
        """The open-loop figures, in req/s and milliseconds."""
        ordered = sorted(self.run.latencies)
        return {
            "target_rate": self.target_rate,
            "events": self.run.count,
            "achieved_rate": round(self.achieved_rate, 1),
            "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
            "errors": self.run.errors,
            "error_samples": self.run.error_samples,
            "unanswered": self.unanswered,
            "connections": self.connections,
            "max_backlog": self.max_backlog,
            "send_lag_max_ms": round(self.send_lag_max_ms, 2),
            "cpu_ms_per_event": self.run.cpu,
        }


async def ingress_open_loop(
    clients: list[httpx.AsyncClient], events: list[Event], rate: float
) -> OpenLoop:
    """Send event i at t0 + i/rate whatever the answers; time each from its scheduled send.

    wrk2-style: a pacer queues each delivery at its scheduled time and one sender per client
    (one connection each) takes them, so a slow server shows up as queueing in the latencies
    instead of as fewer sends. One client per connection because httpx's pool scans its waiting
    requests on every change, which costs the shared CPU milliseconds per request at 64.
    Everything stops OPEN_LOOP_GRACE_SECONDS after the last scheduled send; a delivery still
    unanswered then is an error, and its latency is counted as (stop time - scheduled time).
    """
    run = Run(count=len(events))
    answered: set[int] = set()
    finished: list[float] = []
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    t0 = time.perf_counter() + 0.05
    deadline = t0 + (len(events) - 1) / rate + OPEN_LOOP_GRACE_SECONDS
    pacing = {"lag": 0.0, "backlog": 0}

    async def pacer() -> None:
        for i in range(len(events)):
            scheduled = t0 + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pacing["lag"] = max(pacing["lag"], time.perf_counter() - scheduled)
            queue.put_nowait((i, scheduled))
            pacing["backlog"] = max(pacing["backlog"], queue.qsize())
        for _ in clients:
            queue.put_nowait(None)

    async def sender(client: httpx.AsyncClient) -> None:
        while (item := await queue.get()) is not None:
            i, scheduled = item
            reason = await post_event(client, events[i])
            done = time.perf_counter()
            answered.add(i)
            run.latencies.append(done - scheduled)
            if reason is None:
                finished.append(done)
            else:
                run.fail(reason)

    tasks = [
        asyncio.create_task(pacer()),
        *(asyncio.create_task(sender(client)) for client in clients),
    ]
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.perf_counter()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    stopped = time.perf_counter()
    for i in range(len(events)):
        if i not in answered:
            run.latencies.append(stopped - (t0 + i / rate))
            run.fail(f"no answer {OPEN_LOOP_GRACE_SECONDS:.0f} s after the last scheduled send")
    run.wall_seconds = (max(finished) if finished else stopped) - t0
    achieved = len(finished) / run.wall_seconds if run.wall_seconds > 0 else 0.0
    return OpenLoop(
        rate,
        run,
        achieved,
        send_lag_max_ms=pacing["lag"] * 1000,
        connections=len(clients),
        max_backlog=int(pacing["backlog"]),
        unanswered=len(events) - len(answered),
    )


# --- CPU accounting -------------------------------------------------------------------------


@contextlib.contextmanager
def cpu_meter(
    events: int, server_pid: int | None, postmaster_pid: int | None
) -> Iterator[dict[str, float | None]]:
    """Fill a dict with CPU ms per event of each party and of the whole (shared) machine.

    `unattributed` is the machine's busy time nobody here accounts for: other work on a shared
    machine, the kernel, PostgreSQL backends that came and went in between.
    """
    cpu: dict[str, float | None] = {}
    parties: dict[str, Callable[[], float | None]] = {"load_generator": own_cpu_seconds}
    if server_pid is not None:
        parties["api_process"] = lambda: process_cpu_seconds(server_pid)
    if postmaster_pid is not None:
        parties["postgres"] = lambda: postgres_cpu_seconds(postmaster_pid)
    before = {name: read() for name, read in parties.items()}
    busy = system_busy_seconds()
    yield cpu
    n = max(events, 1)
    for name, read in parties.items():
        start, end = before[name], read()
        cpu[name] = None if start is None or end is None else round((end - start) / n * 1000, 3)
    end_busy = system_busy_seconds()
    if busy is not None and end_busy is not None:
        total = round((end_busy - busy) / n * 1000, 3)
        known = list(cpu.values())
        cpu["machine_total"] = total
        if all(v is not None for v in known):
            cpu["unattributed"] = round(total - sum(v or 0.0 for v in known), 3)


# --- infrastructure -------------------------------------------------------------------------


@contextlib.contextmanager
def api_server(db_url: str, key_file: Path, workdir: Path) -> Iterator[tuple[str, int, list[str]]]:
    """Run `guardia serve` as a child process; yield (base URL, pid, red checks) once ready."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDIA_")}
    env.update(
        {
            "GUARDIA_DATABASE_URL": db_url,
            "GUARDIA_HOST": HOST,
            "GUARDIA_PORT": str(port),
            "GUARDIA_CONEKTA_WEBHOOK_KEYS": str(key_file),
            "GUARDIA_CONEKTA_API_KEY": "key_bench",
            "GUARDIA_API_TOKENS": "bench:operator:"
            + hashlib.sha256(secrets.token_hex(16).encode()).hexdigest(),
            "GUARDIA_LOG_LEVEL": "WARNING",
            "GUARDIA_DATA_DIR": str(workdir / "guardia"),
        }
    )
    log_path = workdir / "api.log"
    base_url = f"http://{HOST}:{port}"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "guardia.entrypoints", "serve"],
            env=env,
            cwd=workdir,  # no stray .env from the caller's directory
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            red = wait_ready(base_url, proc, log_path)
            yield base_url, proc.pid, red
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], log_path: Path) -> list[str]:
    """Poll /readyz until the API can take webhooks; return the checks that were not green.

    Ready means 200. Readiness also covers capabilities webhook ingress does not use (Odoo, say,
    which needs its own check to have run); when only those stay red for READY_SETTLE_SECONDS
    while database, migrations and webhook keys are green, the API is taken as ready for this
    benchmark and the red checks are reported, not hidden.
    """
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    ingress_green_since: float | None = None
    last = "no answer"
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"API exited with {proc.returncode}:\n{tail}")
            try:
                response = client.get("/readyz")
            except httpx.HTTPError as exc:
                last = type(exc).__name__
                time.sleep(0.2)
                continue
            if response.status_code == 200:
                return []
            last = f"HTTP {response.status_code}: {response.text[:400]}"
            checks: dict[str, dict[str, Any]] = response.json().get("checks", {})
            red = sorted(name for name, check in checks.items() if not check.get("ok"))
            if red and not set(red) & set(INGRESS_CHECKS):
                ingress_green_since = ingress_green_since or time.monotonic()
                if time.monotonic() - ingress_green_since >= READY_SETTLE_SECONDS:
                    return red
            else:
                ingress_green_since = None
            time.sleep(0.2)
    raise RuntimeError(f"API not ready after {READY_DEADLINE_SECONDS:.0f} s: {last}")


def machine(db_url: str, database: str) -> dict[str, Any]:
    """What the figures were measured on."""
    cpu_model = platform.processor() or None
    memory_gib: float | None = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    with psycopg.connect(db_url) as conn:
        settings = {
            name: str(value)
            for name, value in conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                (["server_version", "fsync", "synchronous_commit", "shared_buffers"],),
            ).fetchall()
        }
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": memory_gib,
        "postgresql": settings.get("server_version"),
        "postgresql_durability": {
            "fsync": settings.get("fsync"),
            "synchronous_commit": settings.get("synchronous_commit"),
        },
        "database": database,
        "python": platform.python_version(),
    }


def count_rows(db_url: str, table: str) -> int | None:
    """Rows in a table (None if it does not exist)."""
    try:
        with psycopg.connect(db_url) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    except psycopg.Error:
        return None
    return int(row[0]) if row else None


def truncate_events(db_url: str) -> None:
    """Empty webhook_events so the baseline inserts the same rows into the same table."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE webhook_events")


# --- the benchmark --------------------------------------------------------------------------


async def measure(
    base_url: str,
    server_pid: int,
    postmaster_pid: int | None,
    db_url: str,
    batches: dict[str, list[Event]],
    concurrency: int,
    rate: float,
    connections: int,
) -> dict[str, Any]:
    """Warm up, then ingress (closed loop), baseline (closed loop), ingress (open loop)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        log(f"warm-up: {len(batches['warmup'])} events")
        warm = await ingress_closed_loop(client, batches["warmup"], concurrency)
        if warm.errors:
            raise RuntimeError(f"warm-up failed: {warm.error_samples}")
        log(f"ingress, closed loop: {len(batches['closed'])} events, concurrency {concurrency}")
        with cpu_meter(len(batches["closed"]), server_pid, postmaster_pid) as cpu:
            ingress = await ingress_closed_loop(client, batches["closed"], concurrency)
        ingress.cpu = cpu
    stored = count_rows(db_url, "webhook_events")
    jobs = count_rows(db_url, "procrastinate_jobs")

    truncate_events(db_url)
    log(f"baseline, closed loop: same rows via psycopg, pool of {concurrency}")
    async with AsyncConnectionPool(
        db_url, min_size=concurrency, max_size=concurrency, open=False
    ) as pool:
        await pool.wait(timeout=30)
        await baseline_closed_loop(pool, batches["warmup"])
        with cpu_meter(len(batches["closed"]), None, postmaster_pid) as cpu:
            baseline = await baseline_closed_loop(pool, batches["closed"])
        baseline.cpu = cpu

    single = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, limits=single, timeout=timeout)
            )
            for _ in range(connections)
        ]
        warm_up = batches["open_warmup"]
        log(f"warm-up: {len(warm_up)} events over {connections} fresh connections")
        await asyncio.gather(
            *(ingress_closed_loop(c, warm_up[k::connections], 1) for k, c in enumerate(clients))
        )
        log(
            f"ingress, open loop: {len(batches['open'])} events at {rate:g} req/s "
            f"over {connections} connections"
        )
        with cpu_meter(len(batches["open"]), server_pid, postmaster_pid) as cpu:
            open_loop = await ingress_open_loop(clients, batches["open"], rate)
        open_loop.run.cpu = cpu

    ingress_summary = ingress.summary()
    ingress_summary["rows_stored"] = stored
    ingress_summary["rows_expected"] = len(batches["warmup"]) + len(batches["closed"])
    ingress_summary["jobs_enqueued"] = jobs
    return {
        "ingress": ingress_summary,
        "baseline": baseline.summary(),
        "open_loop": open_loop.summary(),
    }


def verdict(result: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """Compare the figures with the issue's targets."""
    ingress, baseline, open_loop = result["ingress"], result["baseline"], result["open_loop"]
    ratio = ingress["rate"] / baseline["rate"] if ingress["rate"] and baseline["rate"] else 0.0
    rate_held = open_loop["achieved_rate"] >= ACHIEVED_RATE_SHARE * parameters["rate"]
    return {
        "ratio": round(ratio, 3),
        "targets": {
            "ingress_ge_half_baseline": {"target": RATIO_TARGET, "met": ratio >= RATIO_TARGET},
            "open_loop_p99_lt_50ms": {
                "target": f"p99 < {P99_TARGET_SECONDS * 1000:.0f} ms at {parameters['rate']:g} "
                "req/s, rate held, no errors",
                "met": rate_held
                and open_loop["errors"] == 0
                and open_loop["p99_ms"] < P99_TARGET_SECONDS * 1000,
            },
            "no_failed_requests": {
                "met": ingress["errors"] == 0
                and baseline["errors"] == 0
                and open_loop["errors"] == 0,
            },
        },
    }


def table(report: dict[str, Any]) -> str:
    """A human-readable summary of the report."""
    m, p = report["machine"], report["parameters"]
    i, b, o = report["ingress"], report["baseline"], report["open_loop"]
    t = report["targets"]

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lines = [
        f"Machine: {m['cpu_model']} x{m['cpu_count']}, {m['memory_gib']} GiB, {m['platform']}",
        f"         PostgreSQL {m['postgresql']} ({m['database']}), Python {m['python']}",
        f"Run:     {p['events']} events, concurrency {p['concurrency']}, "
        f"open loop {p['open_loop_events']} events at {p['rate']:g} req/s",
        "",
        f"{'phase':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'errors':>8}",
        f"{'ingress (closed loop)':<28}{i['rate']:>10}{i['p50_ms']:>10}{i['p99_ms']:>10}"
        f"{i['max_ms']:>10}{i['errors']:>8}",
        f"{'baseline psycopg insert':<28}{b['rate']:>10}{b['p50_ms']:>10}{b['p99_ms']:>10}"
        f"{b['max_ms']:>10}{b['errors']:>8}",
        f"{'ingress (open loop)':<28}{o['achieved_rate']:>10}{o['p50_ms']:>10}{o['p99_ms']:>10}"
        f"{o['max_ms']:>10}{o['errors']:>8}",
        "",
        f"ratio ingress/baseline: {report['ratio']} (target >= {RATIO_TARGET}): "
        f"{mark(t['ingress_ge_half_baseline']['met'])}",
        f"open loop p99 {o['p99_ms']} ms at {o['achieved_rate']}/{p['rate']:g} req/s "
        f"(target < {P99_TARGET_SECONDS * 1000:.0f} ms): {mark(t['open_loop_p99_lt_50ms']['met'])}",
        f"failed requests: {mark(t['no_failed_requests']['met'])}",
        f"CPU ms/event (ingress closed loop): {i['cpu_ms_per_event']}",
        f"CPU ms/event (baseline):            {b['cpu_ms_per_event']}",
        f"RSA-2048 verify in this process: {report['rsa_verify_us']} us",
    ]
    if report["readiness_checks_red_outside_ingress"]:
        lines.append(
            "readiness checks red outside ingress (ignored): "
            + ", ".join(report["readiness_checks_red_outside_ingress"])
        )
    for name, phase in (("ingress", i), ("baseline", b), ("open loop", o)):
        for sample in phase["error_samples"]:
            lines.append(f"{name} error: {sample}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line parameters."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000, help="closed-loop events (N)")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients (C)")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop req/s")
    parser.add_argument("--duration", type=float, default=10.0, help="open-loop seconds")
    parser.add_argument(
        "--open-connections", type=int, default=64, help="open-loop connections (senders)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document on stdout")
    args = parser.parse_args(argv)
    if (
        min(args.events, args.concurrency, args.open_connections) < 1
        or min(args.rate, args.duration) <= 0
    ):
        parser.error("every count, --rate and --duration must be positive")
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark once and print the result."""
    args = parse_args(argv)
    # SIGTERM (run_all's timeout, `timeout`, CI) unwinds like Ctrl-C: the API is stopped and the
    # scratch database and embedded server are removed instead of being orphaned.
    signal.signal(signal.SIGTERM, _terminate)
    template = json.loads((shared_dir() / TEMPLATE).read_text())
    open_events = max(1, round(args.rate * args.duration))
    parameters = {
        "events": args.events,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "duration_seconds": args.duration,
        "open_loop_events": open_events,
        "open_loop_connections": args.open_connections,
        "open_loop_grace_seconds": OPEN_LOOP_GRACE_SECONDS,
        "warmup_events": WARMUP_EVENTS,
    }
    log("generating a 2048-bit RSA key and signing events")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    batches = {
        "warmup": sign_events(key, template, WARMUP_EVENTS),
        "closed": sign_events(key, template, args.events),
        "open_warmup": sign_events(key, template, max(WARMUP_EVENTS, 2 * args.open_connections)),
        "open": sign_events(key, template, open_events),
    }
    verify_us = rsa_verify_microseconds(key, batches["closed"][0])
    with tempfile.TemporaryDirectory(prefix="guardia-bench-") as tmp:
        workdir = Path(tmp)
        key_file = workdir / "conekta_webhook_key.pem"
        key_file.write_bytes(public_pem(key))
        log("starting PostgreSQL and migrating a scratch database")
        with postgres_server(workdir) as (admin_url, database), scratch_database(admin_url) as url:
            info = machine(url, database)
            log("starting the API")
            with api_server(url, key_file, workdir) as (base_url, pid, red):
                result = asyncio.run(
                    measure(
                        base_url,
                        pid,
                        find_postmaster(url),
                        url,
                        batches,
                        args.concurrency,
                        args.rate,
                        args.open_connections,
                    )
                )
    report: dict[str, Any] = {
        "benchmark": "webhook_ingress",
        "machine": info,
        "parameters": parameters,
        **result,
        "rsa_verify_us": round(verify_us, 1),
        "readiness_checks_red_outside_ingress": red,
        "run_seconds": round(time.monotonic() - _STARTED, 1),
    }
    report.update(verdict(result, parameters))
    human = table(report)
    if args.json:
        print(human, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
