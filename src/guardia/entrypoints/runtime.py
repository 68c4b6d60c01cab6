"""Running Guardia: `up` (everything in one process tree), `serve` (API), `worker`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from sqlalchemy import text

from guardia.adapters.postgres.database import Database, upgrade
from guardia.auth.tokens import Role, hash_token, new_token
from guardia.bootstrap import (
    SIM_API_KEY,
    SIM_PRIVATE_KEY,
    SIM_PUBLIC_KEY,
    Container,
    build_container,
    run_worker,
    sandbox_dir,
)
from guardia.entrypoints.http import create_app
from guardia.ledger.check import check_ledger, store_report
from guardia.settings import Settings

log = structlog.get_logger(__name__)

DEV_TOKENS_FILE = "dev-tokens.json"


def ensure_dev_tokens(settings: Settings) -> dict[str, str] | None:
    """With no tokens configured, mint local operator/auditor/PWA tokens once (kept 0600)."""
    if settings.api_tokens:
        return None
    path = settings.data_dir / DEV_TOKENS_FILE
    if path.exists():
        tokens: dict[str, str] = json.loads(path.read_text())
    else:
        tokens = {role.value: new_token(role) for role in Role}
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(tokens, indent=2))
        path.chmod(0o600)
    settings.api_tokens = ",".join(
        f"dev-{role}:{role}:{hash_token(token)}" for role, token in tokens.items()
    )
    return tokens


def ensure_sandbox_keys(settings: Settings) -> bytes:
    """Create (once) the simulator's webhook signing key; Guardia trusts its public half."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    folder = sandbox_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / SIM_PRIVATE_KEY
    if not private.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        private.chmod(0o600)
        (folder / SIM_PUBLIC_KEY).write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return private.read_bytes()


def _server(app: Any, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    # Several servers and a worker share one loop; `_run_until_signal` owns SIGINT/SIGTERM and
    # stops them all, so uvicorn must not install (and later re-raise) handlers of its own.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return server


async def startup_check(container: Container) -> None:
    """Run the Odoo config check at start-up; failures keep readiness red, they do not exit."""
    report = await check_ledger(container.odoo, container.ledger_config)
    await store_report(container.engine, report)
    for item in report.failures():
        log.error("startup_check_failed", check=item.name, detail=item.detail, fix=item.fix)


@contextlib.asynccontextmanager
async def opened(container: Container) -> AsyncIterator[Container]:
    """Open the job queue connection for a Container and close everything after."""
    async with container.jobs.open_async():
        try:
            yield container
        finally:
            await container.aclose()


async def _run_until_signal(tasks: list[Callable[[], Coroutine[Any, Any, Any]]]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = [asyncio.create_task(t()) for t in tasks]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*running, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for task in done:
        if task is not stopper and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def up(settings: Settings, *, announce: Callable[[dict[str, Any]], None]) -> None:
    """Run API + worker + scheduler (+ simulators when no provider is configured)."""
    tokens = ensure_dev_tokens(settings)
    simulate = settings.uses_simulators()
    sim_key = ensure_sandbox_keys(settings) if simulate else None
    database = Database.open(settings)
    try:
        upgrade(database.direct_url)
        container = build_container(settings, database)
        async with opened(container):
            app = create_app(container)
            jobs: list[Callable[[], Coroutine[Any, Any, Any]]] = [
                _server(app, settings.host, settings.port).serve,
                lambda: run_worker(container),
            ]
            if settings.uses_odoo_simulator():
                from guardia.sandbox.odoo import OdooSimConfig, OdooSimulator
                from guardia.sandbox.odoo import create_app as create_odoo_app

                async with container.engine.connect() as conn:
                    last_move = await conn.scalar(
                        text("SELECT coalesce(max(odoo_move_id), 0) FROM postings")
                    )
                odoo_sim = OdooSimulator(
                    OdooSimConfig(
                        database=settings.odoo_database, first_move_id=int(last_move or 0) + 1
                    )
                )
                jobs.append(
                    _server(
                        create_odoo_app(odoo_sim), "127.0.0.1", settings.sandbox_odoo_port
                    ).serve
                )
            if simulate and sim_key is not None:
                from guardia.sandbox.conekta import ConektaSimConfig, ConektaSimulator
                from guardia.sandbox.conekta import create_app as create_sim_app

                sim = ConektaSimulator(
                    ConektaSimConfig(
                        api_key=SIM_API_KEY,
                        webhook_urls=[settings.public_base_url.rstrip("/") + "/webhooks/conekta"],
                        private_key_pem=sim_key,
                    )
                )
                jobs.append(
                    _server(create_sim_app(sim), "127.0.0.1", settings.sandbox_conekta_port).serve
                )
            jobs.append(lambda: _after_start(container))
            announce(
                {
                    "api": f"http://{settings.host}:{settings.port}",
                    "conekta_simulator": (
                        f"http://127.0.0.1:{settings.sandbox_conekta_port}" if simulate else None
                    ),
                    "odoo_simulator": (
                        f"http://127.0.0.1:{settings.sandbox_odoo_port}"
                        if settings.uses_odoo_simulator()
                        else None
                    ),
                    "database": "embedded" if database.embedded is not None else "configured URL",
                    "tokens": tokens,
                    "pid": os.getpid(),
                }
            )
            await _run_until_signal(jobs)
    finally:
        database.close()


async def _after_start(container: Container) -> None:
    """Once the servers listen, run the start-up check, then stay (a task of the process)."""
    await asyncio.sleep(0.5)
    await startup_check(container)
    await asyncio.Event().wait()


async def serve(settings: Settings) -> None:
    """Run the API only (scale-out: several behind a load balancer)."""
    database = Database.open(settings)
    try:
        container = build_container(settings, database)
        async with opened(container):
            await _run_until_signal(
                [_server(create_app(container), settings.host, settings.port).serve]
            )
    finally:
        database.close()


async def worker(settings: Settings, *, concurrency: int | None = None) -> None:
    """Run a worker with the scheduler (scale-out: more on other machines)."""
    database = Database.open(settings)
    try:
        container = build_container(settings, database)
        async with opened(container):
            await _run_until_signal([lambda: run_worker(container, concurrency=concurrency)])
    finally:
        database.close()


def _port_prefix(settings: Settings, field: str) -> str:
    """`GUARDIA_SANDBOX_…_PORT=N ` when N is not the default, for a command typed in a shell
    that may not carry `up`'s environment."""
    port = getattr(settings, field)
    default = Settings.model_fields[field].default
    return "" if port == default else f"GUARDIA_{field.upper()}={port} "


def sandbox_hints(settings: Settings) -> list[str]:
    """The commands `guardia up` suggests, aimed at the simulators this instance runs."""
    hints: list[str] = []
    if settings.uses_simulators():
        prefix = _port_prefix(settings, "sandbox_conekta_port")
        hints.append(f"{prefix}guardia sandbox conekta create-order --method spei --amount 150000")
    if settings.uses_odoo_simulator():
        hints.append(f"{_port_prefix(settings, 'sandbox_odoo_port')}guardia sandbox odoo moves")
    return hints


def dev_tokens_path(settings: Settings) -> Path:
    """Where `up` keeps locally minted tokens."""
    return settings.data_dir / DEV_TOKENS_FILE
