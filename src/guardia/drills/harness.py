"""What every drill needs: the local simulators' control endpoints, waiting for the running
stack (API, worker, scheduler) to detect and heal, and closing the drill's incident with its
evidence.

A drill plays the fault and, where a person is part of the runbook, the on-call engineer who
follows it (`guardia runbook run … --apply`); detection, automatic fixes and the verification
that resolves the incident are the running Guardia's own (`make up`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from guardia.bootstrap import SIM_API_KEY, Container, conekta_base_url, odoo_base_url
from guardia.core.errors import Conflict, GuardiaError, InvalidInput
from guardia.drills.model import DrillReport
from guardia.incidents import service as incidents
from guardia.incidents.model import (
    ActionItem,
    Incident,
    IncidentStatus,
    PostMortem,
    missing_for_close,
)
from guardia.runbooks import runner
from guardia.runbooks.model import RunbookSpec

CONEKTA_ACCEPT = "application/vnd.conekta-v2.2.0+json"
OPERATOR = "drill:on-call"


class DrillFailed(GuardiaError):
    """The drill could not finish."""


@dataclass
class Simulators:
    """The control endpoints of the local Conekta and Odoo simulators."""

    http: httpx.AsyncClient
    conekta_url: str
    odoo_url: str

    async def call(self, method: str, url: str, **kwargs: Any) -> Any:
        """One control call; DrillFailed when the simulator is down or refuses."""
        try:
            response = await self.http.request(method, url, timeout=15.0, **kwargs)
        except httpx.HTTPError as exc:
            raise DrillFailed(
                f"{url} unreachable ({type(exc).__name__}): is Guardia running (`make up`)?"
            ) from exc
        if response.status_code >= 400:
            raise DrillFailed(f"{method} {url}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    async def create_order(self, amount_cents: int = 150_000) -> str:
        """Create a SPEI order in the Conekta simulator; return its id."""
        body = {
            "currency": "MXN",
            "customer_info": {
                "name": "Drill Customer",
                "email": "drill@example.mx",
                "phone": "+525512345678",
            },
            "line_items": [{"name": "Drill", "unit_price": amount_cents, "quantity": 1}],
            "charges": [{"payment_method": {"type": "spei"}}],
        }
        order = await self.call(
            "POST",
            f"{self.conekta_url}/orders",
            json=body,
            headers={"Authorization": f"Bearer {SIM_API_KEY}", "Accept": CONEKTA_ACCEPT},
        )
        return str(order["id"])

    async def pay(self, order_id: str) -> None:
        """The customer pays the order."""
        await self.call("POST", f"{self.conekta_url}/_sandbox/orders/{order_id}/pay")

    async def payout(self) -> dict[str, Any]:
        """Conekta pays out every available transaction to the business account: the transfer."""
        transfer: dict[str, Any] = await self.call("POST", f"{self.conekta_url}/_sandbox/payouts")
        return transfer

    async def conekta_fault(self, body: dict[str, Any]) -> None:
        """Install a Conekta fault."""
        await self.call("POST", f"{self.conekta_url}/_sandbox/faults", json=body)

    async def clear_conekta_faults(self) -> None:
        """Remove every Conekta fault."""
        await self.call("DELETE", f"{self.conekta_url}/_sandbox/faults")

    async def odoo_fault(self, body: dict[str, Any]) -> None:
        """Install an Odoo fault."""
        await self.call("POST", f"{self.odoo_url}/_sandbox/faults", json=body)

    async def odoo_account(self, code: str, name: str, account_type: str) -> None:
        """Create an account in Odoo as the accountant would."""
        await self.call(
            "POST",
            f"{self.odoo_url}/_sandbox/accounts",
            json={"code": code, "name": name, "account_type": account_type},
        )

    async def restore_odoo(self) -> None:
        """Undo Odoo removals still installed."""
        await self.call("POST", f"{self.odoo_url}/_sandbox/restore")


@dataclass
class DrillEnv:
    """A drill's surroundings."""

    container: Container
    sims: Simulators
    timeout: float
    poll: float = 1.0

    def now(self) -> datetime:
        """The container's clock."""
        return self.container.clock.now()

    async def wait_for(
        self, what: str, probe: Callable[[], Awaitable[Any]], timeout: float | None = None
    ) -> Any:
        """Poll `probe` until it returns something truthy; DrillFailed after the timeout."""
        deadline = asyncio.get_running_loop().time() + (timeout or self.timeout)
        while True:
            found = await probe()
            if found:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise DrillFailed(
                    f"timed out after {timeout or self.timeout:g} s waiting for {what}"
                )
            await asyncio.sleep(self.poll)

    async def incident_for(
        self, spec: RunbookSpec, since: datetime, provider_field: str | None, value: str | None
    ) -> Incident | None:
        """The first incident of the runbook detected at or after `since` (about `value`)."""
        async with self.container.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT id FROM incidents WHERE runbook = :r AND detected_at >= :since "
                    "ORDER BY detected_at, id"
                ),
                {"r": spec.runbook.value, "since": since},
            )
            ids = [int(r.id) for r in rows]
            for incident_id in ids:
                incident = await incidents.get(conn, incident_id)
                if provider_field is None or incident.external_ids.contains(
                    provider_field, value or ""
                ):
                    return incident
        return None

    async def detected(
        self,
        spec: RunbookSpec,
        report: DrillReport,
        what: str,
        provider_field: str | None = None,
        value: str | None = None,
    ) -> int:
        """Wait for the runbook's incident (about `value`) detected since the injection; put it
        on the report and return its id."""
        incident: Incident = await self.wait_for(
            what, lambda: self.incident_for(spec, report.injected_at, provider_field, value)
        )
        assert incident.id is not None  # noqa: S101 - a stored incident has an id
        report.incident_id = incident.id
        # The drill knows its impact start exactly: it injected the fault. Tagged as a drill,
        # the incident joins the MTTR statistics without passing for production.
        async with self.container.engine.begin() as conn:
            await incidents.mark_drill(
                conn,
                incident.id,
                injected_at=report.injected_at,
                at=self.now(),
                actor=f"drill:{report.name}",
            )
        report.step(f"incident {incident.id} opened by {incident.fingerprint}")
        return incident.id

    async def apply(self, spec: RunbookSpec, report: DrillReport, **subject: Any) -> None:
        """The on-call runs the runbook with --apply on the drill's incident."""
        applied = await runner.run(
            self.container,
            spec.name,
            apply=True,
            actor=OPERATOR,
            incident_id=report.incident_id,
            **subject,
        )
        report.step(
            "runbook --apply: "
            + "; ".join(f"{a.name}: {', '.join(a.changes) or '-'}" for a in applied.actions)
        )

    async def incident(self, incident_id: int) -> Incident:
        """An incident by id."""
        async with self.container.engine.connect() as conn:
            return await incidents.get(conn, incident_id)


async def await_stack(env: DrillEnv) -> None:
    """Refuse to start unless the API answers and the simulators are the ones Guardia uses."""
    settings = env.container.settings
    if not (settings.uses_simulators() and settings.uses_odoo_simulator()):
        raise InvalidInput(
            "drills inject faults into the local simulators: unset GUARDIA_CONEKTA_API_KEY and "
            "GUARDIA_ODOO_URL (never drill against real providers)"
        )
    api = f"http://127.0.0.1:{settings.port}/healthz"
    for url in (
        api,
        f"{env.sims.conekta_url}/_sandbox/faults",
        f"{env.sims.odoo_url}/_sandbox/faults",
    ):
        await env.sims.call("GET", url)


def simulators(container: Container) -> Simulators:
    """Clients for the simulators Guardia's settings point at."""
    return Simulators(
        container.http, conekta_base_url(container.settings), odoo_base_url(container.settings)
    )


async def finish(env: DrillEnv, spec: RunbookSpec, report: DrillReport) -> None:
    """Wait for the verified recovery, then write the post-mortem and close the incident,
    recording which mandatory fields it lacked (evidence completeness)."""
    if report.incident_id is None:
        raise DrillFailed("no incident was opened")
    incident_id = report.incident_id

    async def resolved() -> Incident | None:
        current = await env.incident(incident_id)
        return current if current.lifecycle.resolved_at is not None else None

    done: Incident = await env.wait_for(f"incident {incident_id} to be resolved", resolved)
    life = done.lifecycle
    report.detected_at, report.mitigated_at = life.detected_at, life.mitigated_at
    report.recovered_at, report.verified = life.resolved_at, life.resolved_verified
    now = env.now()
    async with env.container.engine.begin() as conn:
        if done.postmortem is None or not done.postmortem.action_items:
            await incidents.amend(
                conn,
                incident_id,
                at=now,
                actor=f"drill:{report.name}",
                postmortem=PostMortem(
                    summary=f"Drill {report.name}: {report.fault}",
                    root_cause=f"Injected by `guardia drill {report.name}`: {report.fault}",
                    detection=f"detected {report.time_to_detect} s after injection",
                    resolution="; ".join(a.description for a in done.corrective_actions),
                    action_items=tuple(
                        ActionItem(p, "on-call", (now + timedelta(days=7)).date())
                        for p in spec.prevention
                    ),
                ),
                reason="drill post-mortem",
            )
        amended = await incidents.get(conn, incident_id)
        report.evidence_missing = missing_for_close(amended)
        if not report.evidence_missing:
            try:
                await incidents.move(
                    conn,
                    incident_id,
                    IncidentStatus.CLOSED,
                    at=now,
                    actor=f"drill:{report.name}",
                    reason="drill finished with complete evidence",
                )
            except Conflict as exc:
                report.step(f"could not close: {exc.message}")
