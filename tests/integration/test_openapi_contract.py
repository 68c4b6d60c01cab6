"""The app against its own OpenAPI document: a bounded schemathesis run over every operation.

The app is served by uvicorn on 127.0.0.1 (in a thread with its own event loop, where its
Container is built) over a real PostgreSQL, with the Conekta and Odoo fakes behind it, and is
called as an operator. Every generated request must get a declared status and never a 5xx.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from guardia.adapters.postgres.database import Database
from guardia.auth.tokens import ALLOWED, Policy, Role
from guardia.bootstrap import build_container
from guardia.entrypoints.deps import POLICY_KEY
from guardia.entrypoints.http import create_app
from guardia.entrypoints.runtime import opened
from guardia.ledger.fakes import InMemoryLedger
from guardia.payments.fakes import InMemoryOrders
from guardia.settings import Settings
from tests.integration import conftest as integration

pytestmark = pytest.mark.integration

# Valid input per operation, then input its schema refuses (fewer: most of it fails alike).
EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 10}
REFUSALS = {"400", "401", "403", "404", "409", "413", "415", "422"}


class ServedApp:
    """Guardia's app under uvicorn on a loopback port, in a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server: uvicorn.Server | None = None
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="guardia-app", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start() to the test
            self.failure = exc

    async def _serve(self) -> None:
        url = self.settings.database_url
        assert url is not None
        dsn = url.get_secret_value()
        container = build_container(
            self.settings,
            Database(pooled_url=dsn, direct_url=dsn),
            conekta=InMemoryOrders(),
            odoo=InMemoryLedger(),
        )
        async with opened(container):
            config = uvicorn.Config(
                create_app(container), log_config=None, access_log=False, lifespan="off"
            )
            self.server = uvicorn.Server(config)
            await self.server.serve(sockets=[self.sock])

    def start(self) -> None:
        """Start serving; return once the app answers."""
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.failure is not None:
                raise self.failure
            if self.server is not None and self.server.started:
                return
            time.sleep(0.05)
        raise TimeoutError("the app did not start within 30 s")

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture
def served(db_url: str, tmp_path: Path, webhook_key_file: Path) -> Iterator[ServedApp]:
    """The real app on a loopback port, over a fresh database."""
    app = ServedApp(integration.test_settings(db_url, tmp_path, webhook_key_file))
    app.start()
    try:
        yield app
    finally:
        app.stop()


def spec_of(served: ServedApp) -> dict[str, Any]:
    spec: dict[str, Any] = httpx.get(f"{served.url}/openapi.json").json()
    return spec


def test_the_openapi_document_declares_the_bearer_scheme_and_every_refusal(
    served: ServedApp,
) -> None:
    spec = spec_of(served)
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (gdo_ operator, gda_ auditor, gdp_ pwa).",
    }
    guarded = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            declared = Policy(operation[POLICY_KEY])
            if declared in ALLOWED:
                guarded += 1
                assert operation["security"] == [{"bearerAuth": []}], (method, path)
                assert REFUSALS <= operation["responses"].keys(), (method, path)
                problem = operation["responses"]["422"]["content"]["application/problem+json"]
                assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
            else:
                assert "security" not in operation, (method, path)
    assert guarded >= 30


def test_generated_requests_never_get_a_server_error_or_an_undeclared_status(
    served: ServedApp,
) -> None:
    session = requests.Session()
    session.headers.update(integration.auth(Role.OPERATOR))
    # Readiness is green only once the Odoo config check has run; it answers 503 until then.
    assert session.post(f"{served.url}/api/checks/odoo").status_code == 200
    schema = schemathesis.openapi.from_dict(spec_of(served))
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 35
    for operation, mode in [(op, mode) for op in operations for mode in EXAMPLES]:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES[mode],
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=served.url, session=session, timeout=30)
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])

        try:
            call()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation without input to get wrong
        except Exception as exc:  # every operation is tried; the failures are listed together
            failures.append(f"{operation.label} ({mode.value}): {exc!r}")
    assert not failures, "\n\n".join(failures)
