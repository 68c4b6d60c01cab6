"""End-to-end fixtures: the real `guardia up` process (API + worker + scheduler + simulator)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from guardia.auth.tokens import hash_token

T = TypeVar("T")

OPERATOR = "gdo_e2e_operator_token"
PWA = "gdp_e2e_pwa_token"
SIM_KEY = "key_sandbox_guardia"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def poll(check: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.2) -> T:
    """Call `check` until it returns a value, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError as exc:
            last, value = exc, None
        if value is not None:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last error: {last!r})")


@dataclass
class Running:
    """A running Guardia with its simulator."""

    api: str
    sim: str
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    def guardia(self, timeout: float = 10.0) -> httpx.Client:
        """HTTP client for Guardia's API, as the operator."""
        return httpx.Client(
            base_url=self.api, timeout=timeout, headers={"Authorization": f"Bearer {OPERATOR}"}
        )

    def pwa(self) -> httpx.Client:
        """HTTP client as the PWA."""
        return httpx.Client(
            base_url=self.api, timeout=10, headers={"Authorization": f"Bearer {PWA}"}
        )

    def conekta(self) -> httpx.Client:
        """HTTP client for the Conekta simulator's API."""
        return httpx.Client(
            base_url=self.sim, timeout=10, headers={"Authorization": f"Bearer {SIM_KEY}"}
        )


@pytest.fixture
def guardia_up(db_url: str, tmp_path: Path) -> Iterator[Running]:
    """Start `guardia up` against a fresh database; stop it with SIGTERM after the test."""
    port, sim_port, odoo_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "GUARDIA_DATABASE_URL": db_url,
        "GUARDIA_DATA_DIR": str(tmp_path / "guardia"),
        "GUARDIA_PORT": str(port),
        "GUARDIA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "GUARDIA_SANDBOX_CONEKTA_PORT": str(sim_port),
        "GUARDIA_SANDBOX_ODOO_PORT": str(odoo_port),
        "GUARDIA_API_TOKENS": f"e2e-op:operator:{hash_token(OPERATOR)},"
        f"e2e-pwa:pwa:{hash_token(PWA)}",
        "GUARDIA_SWEEP_CRON": "* * * * * *",
        "GUARDIA_SWEEP_PENDING_AGE_SECONDS": "2",
        "GUARDIA_ALERT_EVAL_CRON": "* * * * * *",
    }
    for provider_key in (
        "GUARDIA_CONEKTA_API_KEY",
        "GUARDIA_CONEKTA_WEBHOOK_KEYS",
        "GUARDIA_ODOO_URL",
    ):
        env.pop(provider_key, None)
    log = tmp_path / "guardia-up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "guardia.entrypoints", "up"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Running(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}", process, log, env)
    try:

        def ready() -> bool | None:
            if process.poll() is not None:
                raise AssertionError(f"guardia up exited:\n{log.read_text()[-3000:]}")
            r = httpx.get(f"{running.api}/readyz", timeout=2)
            return True if r.status_code == 200 else None

        poll(ready, timeout=60)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
