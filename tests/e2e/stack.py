"""A Guardia stack split into processes, as in production: Conekta and Odoo simulators, the API,
and workers that a test can kill and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from guardia.auth.tokens import hash_token
from tests.conftest import Signer
from tests.e2e.conftest import OPERATOR, PWA, free_port, poll

ODOO_KEY = "odoo-test-api-key"
# Real-provider mode refuses the simulator's sandbox key, so this simulator gets its own.
CONEKTA_KEY = "key_e2e_stack_0123456789"


@dataclass
class Stack:
    """Processes of one test, each with its own log."""

    db_url: str
    workdir: Path
    signer: Signer
    api_port: int = field(default_factory=free_port)
    conekta_port: int = field(default_factory=free_port)
    odoo_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def api(self) -> str:
        """Guardia's base URL."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def conekta(self) -> str:
        """The Conekta simulator's base URL."""
        return f"http://127.0.0.1:{self.conekta_port}"

    @property
    def odoo(self) -> str:
        """The Odoo simulator's base URL."""
        return f"http://127.0.0.1:{self.odoo_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """Guardia's environment for this stack (real-provider mode, pointed at simulators)."""
        public = self.workdir / "conekta_public.pem"
        public.write_text(self.signer.public_pem())
        env = {
            **os.environ,
            "GUARDIA_DATABASE_URL": self.db_url,
            "GUARDIA_DATA_DIR": str(self.workdir / "guardia"),
            "GUARDIA_PORT": str(self.api_port),
            "GUARDIA_PUBLIC_BASE_URL": self.api,
            "GUARDIA_API_TOKENS": f"op:operator:{hash_token(OPERATOR)},pwa:pwa:{hash_token(PWA)}",
            "GUARDIA_CONEKTA_API_KEY": CONEKTA_KEY,
            "GUARDIA_CONEKTA_API_URL": self.conekta,
            "GUARDIA_CONEKTA_WEBHOOK_KEYS": str(public),
            "GUARDIA_ODOO_URL": self.odoo,
            "GUARDIA_ODOO_API_KEY": ODOO_KEY,
            "GUARDIA_STALLED_WORKER_SECONDS": "3",
            "GUARDIA_RETRY_BASE_SECONDS": "0.2",
            "GUARDIA_LOG_JSON": "true",
        }
        env.update(extra)
        return env

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        """Start one process with its log under the work dir."""
        with (self.workdir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", *args],
                env=env or self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start_all(self, **extra: str) -> None:
        """Simulators, API and one worker; returns once the API answers."""
        key = self.workdir / "conekta_private.pem"
        key.write_bytes(self.signer.private_pem())
        self.start(
            "conekta",
            [
                "guardia.sandbox.conekta_cli",
                "serve",
                "--port",
                str(self.conekta_port),
                "--webhook-url",
                f"{self.api}/webhooks/conekta",
                "--private-key-file",
                str(key),
                "--api-key",
                CONEKTA_KEY,
            ],
        )
        self.start("odoo", ["guardia.sandbox.odoo_cli", "serve", "--port", str(self.odoo_port)])
        poll(lambda: self._up(f"{self.conekta}/_sandbox/faults"), timeout=30)
        poll(lambda: self._up(f"{self.odoo}/_sandbox/faults"), timeout=30)
        self.start("api", ["guardia.entrypoints", "serve"], self.env(**extra))
        poll(lambda: self._up(f"{self.api}/healthz"), timeout=60)
        self.start("worker-1", ["guardia.entrypoints", "worker"], self.env(**extra))

    def _up(self, url: str) -> bool | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = (self.workdir / f"{name}.log").read_text()[-3000:]
                raise AssertionError(f"{name} exited:\n{log}")
        try:
            return True if httpx.get(url, timeout=2).status_code < 500 else None
        except httpx.HTTPError:
            return None

    def kill(self, name: str) -> None:
        """SIGKILL a process (no clean shutdown, as a crash)."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def guardia_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a `guardia` CLI command against this stack."""
        return subprocess.run(
            [sys.executable, "-m", "guardia.entrypoints", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def stop(self) -> None:
        """Terminate everything still running."""
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
