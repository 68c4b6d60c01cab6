"""`guardia sandbox …` drives the simulators on GUARDIA_SANDBOX_CONEKTA_PORT / _ODOO_PORT, so on
a machine shared by several instances it talks to its own, and `guardia up` hints say so."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from guardia.entrypoints.cli import app
from guardia.entrypoints.runtime import sandbox_hints
from guardia.sandbox.conekta.simulator import DEFAULT_API_KEY
from guardia.settings import Settings

_SIM_ENV = (
    "GUARDIA_CONEKTA_SIM_URL",
    "GUARDIA_ODOO_SIM_URL",
    "GUARDIA_CONEKTA_API_KEY",
    "GUARDIA_CONEKTA_SIM_API_KEY",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def _serve(module: str, variable: str, tmp_path: Path) -> Iterator[int]:
    """Start a simulator's `serve` with only the port setting in its environment."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDIA_")}
    env[variable] = str(port)
    log = (tmp_path / f"{module}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", module, "serve"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"http://127.0.0.1:{port}/_sandbox/faults"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / f"{module}.log").read_text()[-2000:])
            time.sleep(0.1)  # polling the simulator's start, bounded by the deadline
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def conekta_port(tmp_path: Path) -> Iterator[int]:
    yield from _serve("guardia.sandbox.conekta_cli", "GUARDIA_SANDBOX_CONEKTA_PORT", tmp_path)


@pytest.fixture
def odoo_port(tmp_path: Path) -> Iterator[int]:
    yield from _serve("guardia.sandbox.odoo_cli", "GUARDIA_SANDBOX_ODOO_PORT", tmp_path)


def _invoke(args: list[str], **env: str) -> str:
    result = CliRunner().invoke(
        app, args, env={**dict.fromkeys(_SIM_ENV), **env}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_the_conekta_sandbox_cli_talks_to_the_simulator_on_its_configured_port(
    conekta_port: int,
) -> None:
    output = _invoke(
        ["sandbox", "conekta", "create-order", "--amount", "150000", "--json"],
        GUARDIA_SANDBOX_CONEKTA_PORT=str(conekta_port),
    )

    order = json.loads(output)
    found = httpx.get(
        f"http://127.0.0.1:{conekta_port}/orders/{order['id']}",
        headers={
            "Authorization": f"Bearer {DEFAULT_API_KEY}",
            "Accept": "application/vnd.conekta-v2.2.0+json",
        },
    )
    assert found.status_code == 200, found.text
    assert found.json()["amount"] == 150000


def test_the_conekta_sandbox_cli_never_sends_the_real_api_key_to_the_simulator(
    conekta_port: int,
) -> None:
    # With production settings in the shell, the simulator's CLI still speaks with the simulator's
    # own key: the real key is never sent anywhere it was not configured for.
    output = _invoke(
        ["sandbox", "conekta", "create-order", "--amount", "990", "--json"],
        GUARDIA_SANDBOX_CONEKTA_PORT=str(conekta_port),
        GUARDIA_CONEKTA_API_KEY="key_live_not_for_the_simulator",
    )

    assert json.loads(output)["amount"] == 990


def test_the_odoo_sandbox_cli_talks_to_the_simulator_on_its_configured_port(
    odoo_port: int,
) -> None:
    _invoke(
        ["sandbox", "odoo", "fault", "down", "--json"], GUARDIA_SANDBOX_ODOO_PORT=str(odoo_port)
    )

    faults = httpx.get(f"http://127.0.0.1:{odoo_port}/_sandbox/faults").json()
    assert "down" in json.dumps(faults)


def test_the_hints_guardia_up_prints_name_the_configured_simulators(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, sandbox_conekta_port=9101, sandbox_odoo_port=9102
    )

    hints = "\n".join(sandbox_hints(settings))

    assert "guardia sandbox conekta create-order" in hints
    assert "GUARDIA_SANDBOX_CONEKTA_PORT=9101" in hints
    assert "GUARDIA_SANDBOX_ODOO_PORT=9102" in hints
    assert "8101" not in hints
