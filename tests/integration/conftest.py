"""Integration fixtures: a Container on a fresh real database, and an HTTP client on its app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from guardia.adapters.postgres.database import Database
from guardia.auth.tokens import Role, hash_token
from guardia.bootstrap import Container, build_container
from guardia.entrypoints.http import create_app
from guardia.entrypoints.runtime import opened
from guardia.jobs import deadletters
from guardia.ledger.fakes import InMemoryLedger
from guardia.payments.fakes import InMemoryOrders
from guardia.settings import Settings

TOKENS = {
    Role.OPERATOR: "gdo_test_operator_token",
    Role.AUDITOR: "gda_test_auditor_token",
    Role.PWA: "gdp_test_pwa_token",
}


def test_settings(db_url: str, tmp_path: Path, key_file: Path, **overrides: Any) -> Settings:
    """Settings for a test: real database, generated keys, a Conekta URL nobody serves."""
    values: dict[str, Any] = {
        "database_url": db_url,
        "data_dir": tmp_path / "guardia",
        "api_tokens": ",".join(f"t-{r}:{r}:{hash_token(t)}" for r, t in TOKENS.items()),
        "conekta_webhook_keys": str(key_file),
        "conekta_api_key": "key_test_unused",
        "conekta_api_url": "http://127.0.0.1:9",
        "retry_base_seconds": 0.01,
        "log_json": True,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def orders() -> InMemoryOrders:
    """Conekta, as an in-memory fake that keeps its rules."""
    return InMemoryOrders()


@pytest.fixture
def ledger() -> InMemoryLedger:
    """Odoo, as an in-memory fake that keeps its rules."""
    return InMemoryLedger()


@pytest.fixture
async def container(
    db_url: str,
    tmp_path: Path,
    webhook_key_file: Path,
    orders: InMemoryOrders,
    ledger: InMemoryLedger,
) -> AsyncIterator[Container]:
    """A Container wired to a fresh database and the fakes, with its job queue open."""
    settings = test_settings(db_url, tmp_path, webhook_key_file)
    c = build_container(
        settings, Database(pooled_url=db_url, direct_url=db_url), conekta=orders, odoo=ledger
    )
    async with opened(c):
        yield c


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the real app in-process."""
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://guardia.test") as c:
        yield c


def auth(role: Role) -> dict[str, str]:
    """Authorization header for a role's test token."""
    return {"Authorization": f"Bearer {TOKENS[role]}"}


async def drain(container: Container) -> None:
    """Run a worker until the queues are empty (periodic jobs are left alone)."""
    await container.jobs.run_worker_async(
        wait=False,
        queues=["webhooks", "recovery", "ledger"],
        concurrency=4,
        additional_context={"container": container},
        worker_middleware=[
            deadletters.middleware(lambda ctx: container.engine, lambda ctx: container.clock)
        ],
        install_signal_handlers=False,
    )


def compact(event: dict[str, Any]) -> bytes:
    """Serialise an event the way Conekta sends it."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
