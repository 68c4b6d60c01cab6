"""What the simulators' command lines share: one HTTP call to a simulator, its errors as exit
codes (2: unreachable, 1: the simulator refused), and raw JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import typer
from rich.console import Console

err_console = Console(stderr=True)


def simulator_url(port: int) -> str:
    """A local simulator's base URL; its port comes from GUARDIA_SANDBOX_*_PORT (env or .env),
    as `guardia up` starts it, so each instance on a shared machine drives its own."""
    return f"http://127.0.0.1:{port}"


def call(
    simulator: str,
    method: str,
    url: str,
    path: str,
    *,
    body: object = None,
    headers: dict[str, str] | None = None,
    refusal: Callable[[httpx.Response, Any], str],
) -> Any:
    """The decoded answer of `simulator` at `url`; exits 2 when unreachable, 1 on an error
    answer (printed as `refusal` words it)."""
    try:
        with httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, connect=3.0)) as client:
            response = client.request(method, path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        err_console.print(f"[red]Cannot reach the {simulator} at {url}: {exc}[/red]")
        raise typer.Exit(2) from exc
    try:
        payload = response.json()
    except ValueError:
        payload = response.text
    if response.is_error:
        err_console.print(f"[red]HTTP {response.status_code}[/red] {refusal(response, payload)}")
        raise typer.Exit(1)
    return payload


def emit_json(payload: object) -> None:
    """Print a payload as indented JSON."""
    typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
