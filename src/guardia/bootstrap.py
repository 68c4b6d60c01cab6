"""The one place that wires settings → adapters → services."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from procrastinate import App, PsycopgConnector
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guardia.adapters.conekta.client import ConektaClient
from guardia.adapters.odoo.client import OdooClient
from guardia.adapters.postgres.database import Database
from guardia.auth.tokens import TokenBook
from guardia.backups.config import config_from_settings
from guardia.backups.context import BackupContext
from guardia.backups.health import BackupGauges
from guardia.backups.health import readiness as backup_readiness
from guardia.core.clock import Clock, SystemClock
from guardia.core.errors import InvalidInput
from guardia.ingest.service import WebhookReceiver
from guardia.ingest.signature import ConektaKeyring
from guardia.jobs import deadletters
from guardia.jobs import tasks as task_module
from guardia.jobs.policy import BackoffPolicy
from guardia.ledger.ports import LedgerGateway
from guardia.ledger.service import LedgerConfig, PostingDeps, TargetResolver
from guardia.observability.metrics import Metrics
from guardia.payments.ports import ConektaGateway
from guardia.settings import Settings

log = structlog.get_logger(__name__)

SANDBOX_DIR = "sandbox"
SIM_PUBLIC_KEY = "conekta_webhook_public.pem"
SIM_PRIVATE_KEY = "conekta_webhook_private.pem"
SIM_API_KEY = "key_sandbox_guardia"
SIM_ODOO_KEY = "odoo-test-api-key"


def sandbox_dir(settings: Settings) -> Path:
    """Where the local simulators keep their keys."""
    return settings.data_dir / SANDBOX_DIR


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def check_conekta_config(settings: Settings) -> None:
    """Refuse a half-real Conekta configuration, naming the setting to fix.

    Any real webhook key or API key means the real Conekta: then the simulator's webhook key and
    the hard-coded sandbox API key must never be trusted, so the other real setting is required
    too (a missing one would otherwise fall back to the simulator's), and neither may point at
    the simulator.
    """
    api_key = settings.conekta_api_key.get_secret_value() if settings.conekta_api_key else None
    key_files = [Path(p.strip()) for p in settings.conekta_webhook_keys.split(",") if p.strip()]
    if api_key is None and not key_files:
        return
    if api_key is None:
        raise InvalidInput(
            "GUARDIA_CONEKTA_API_KEY is not set while GUARDIA_CONEKTA_WEBHOOK_KEYS is: set the "
            "real API key too (or neither, for the local simulator)"
        )
    if api_key == SIM_API_KEY:
        raise InvalidInput(
            "GUARDIA_CONEKTA_API_KEY is the simulator's sandbox key: set the real API key"
        )
    if not key_files:
        raise InvalidInput(
            "GUARDIA_CONEKTA_WEBHOOK_KEYS is not set while GUARDIA_CONEKTA_API_KEY is: set the "
            "real webhook public keys too (or neither, for the local simulator)"
        )
    simulator_key = (sandbox_dir(settings) / SIM_PUBLIC_KEY).resolve()
    if any(path.resolve() == simulator_key for path in key_files):
        raise InvalidInput(
            "GUARDIA_CONEKTA_WEBHOOK_KEYS lists the simulator's key: list Conekta's public keys"
        )
    url = urlsplit(settings.conekta_api_url)
    if url.hostname in _LOOPBACK and url.port == settings.sandbox_conekta_port:
        raise InvalidInput(
            "GUARDIA_CONEKTA_API_URL points at the local simulator while a real key is set: "
            "use Conekta's API URL"
        )


def load_keyring(settings: Settings) -> ConektaKeyring:
    """Load Conekta's active webhook public keys (files), plus the simulator's in sandbox mode."""
    pems: dict[str, str] = {}
    for raw in filter(None, (p.strip() for p in settings.conekta_webhook_keys.split(","))):
        path = Path(raw)
        pems[path.stem] = path.read_text()
    sim_key = sandbox_dir(settings) / SIM_PUBLIC_KEY
    if settings.uses_simulators() and sim_key.exists():
        pems["sandbox"] = sim_key.read_text()
    return ConektaKeyring.from_pem_texts(pems, livemode=settings.conekta_livemode)


def conekta_base_url(settings: Settings) -> str:
    """The Conekta API root: the real one, or the local simulator."""
    if settings.uses_simulators():
        return f"http://127.0.0.1:{settings.sandbox_conekta_port}"
    return settings.conekta_api_url


def odoo_base_url(settings: Settings) -> str:
    """The Odoo root: the configured one, or the local simulator."""
    return settings.odoo_url or f"http://127.0.0.1:{settings.sandbox_odoo_port}"


def build_odoo(settings: Settings) -> OdooClient:
    """The production-side Odoo client."""
    secret = settings.odoo_api_key.get_secret_value() if settings.odoo_api_key else SIM_ODOO_KEY
    return OdooClient(
        base_url=odoo_base_url(settings),
        database=settings.odoo_database,
        login=settings.odoo_login,
        secret=secret,
        version=settings.odoo_version,
        company_id=settings.odoo_company_id,
        timeout=settings.odoo_timeout_seconds,
    )


def build_odoo_staging(settings: Settings) -> OdooClient | None:
    """The staging Odoo of the daily posting test (the simulator in sandbox mode)."""
    if settings.odoo_staging_url is None:
        return build_odoo(settings) if settings.uses_odoo_simulator() else None
    key = settings.odoo_staging_api_key
    return OdooClient(
        base_url=settings.odoo_staging_url,
        database=settings.odoo_staging_database,
        login=settings.odoo_login,
        secret=key.get_secret_value() if key else "",
        version=settings.odoo_version,
        company_id=settings.odoo_company_id,
        timeout=settings.odoo_timeout_seconds,
    )


def ledger_config(settings: Settings) -> LedgerConfig:
    """Journal and account codes from settings."""
    return LedgerConfig(
        journal_code=settings.odoo_journal_code,
        credit_account_code=settings.odoo_credit_account_code,
        debit_account_code=settings.odoo_debit_account_code,
        analytic_account_id=settings.odoo_analytic_account_id,
    )


@dataclass
class Container:
    """Everything a request or a job needs, built once per process."""

    settings: Settings
    database: Database
    engine: AsyncEngine
    jobs: App
    conekta: ConektaGateway
    keyring: ConektaKeyring
    receiver: WebhookReceiver
    tokens: TokenBook
    metrics: Metrics
    clock: Clock
    policy: BackoffPolicy
    odoo: LedgerGateway
    odoo_staging: LedgerGateway | None
    ledger_config: LedgerConfig
    resolver: TargetResolver
    http: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False
        )
    )
    extras: dict[str, Any] = field(default_factory=dict)

    def backup_context(self) -> BackupContext:
        """A backup context on the direct URL (close it after use)."""
        return BackupContext(
            self.database.direct_url, config_from_settings(self.settings), clock=self.clock
        )

    def posting_deps(self) -> PostingDeps:
        """What a posting run needs."""
        return PostingDeps(self.engine, self.odoo, self.resolver, self.conekta, self.conekta)

    async def defer_postings(
        self, order_id: str, correlation_id: str, posting_ids: tuple[int, ...]
    ) -> int:
        """Enqueue postings (one queued job per posting at most)."""
        queued = 0
        for posting_id in posting_ids:
            job = await self.defer(
                task_module.POST_ENTRY,
                {"posting_id": posting_id, "order_id": order_id, "correlation_id": correlation_id},
                queueing_lock=f"posting:{posting_id}",
            )
            queued += job is not None
        return queued

    async def defer(self, task_name: str, kwargs: dict[str, Any], **options: Any) -> int | None:
        """Enqueue a job by task name."""
        return await task_module.defer_with(self.jobs, task_name, kwargs, **options)

    async def defer_process_event(
        self, event_pk: int, correlation_id: str, order_id: str | None
    ) -> int | None:
        """Enqueue the processing of a stored event.

        Events of one order are serialised by the transaction advisory lock in
        `payments.service.apply_snapshot`, not by a procrastinate `lock`: a queue lock would hold
        each later event until the next poll (seconds), and the join makes order irrelevant.
        """
        return await self.defer(
            task_module.PROCESS_EVENT,
            {"event_pk": event_pk, "correlation_id": correlation_id, "order_id": order_id},
            queueing_lock=f"event:{event_pk}",
        )

    async def enqueue_in_transaction(
        self, conn: AsyncConnection, event_pk: int, correlation_id: str, order_id: str | None
    ) -> None:
        """Defer an event's processing on the caller's connection (commits with the event)."""
        raw = await conn.get_raw_connection()
        await self.jobs.configure_task(
            task_module.PROCESS_EVENT,
            connection=raw.driver_connection,
            queueing_lock=f"event:{event_pk}",
        ).defer_async(event_pk=event_pk, correlation_id=correlation_id, order_id=order_id)

    async def defer_retry(self, task_name: str, kwargs: dict[str, Any]) -> int:
        """Re-enqueue a dead letter's job (no queueing lock: an operator asked for it)."""
        order_id = kwargs.get("order_id")
        job_id = await self.defer(task_name, kwargs, lock=f"order:{order_id}" if order_id else None)
        return int(job_id or 0)

    async def aclose(self) -> None:
        """Release connections (the embedded server is released by the caller)."""
        await self.conekta.aclose()
        await self.odoo.aclose()
        await self.http.aclose()
        if self.odoo_staging is not None:
            await self.odoo_staging.aclose()
        await self.engine.dispose()


def schedules(settings: Settings) -> dict[str, str]:
    """Every periodic task and its cron."""
    # croniter reads a 6th field as SECONDS (the last field, not the first):
    # "* * * * * */5" is every 5 s, while "*/5 * * * * *" would fire every second of every
    # fifth minute.
    return {
        task_module.SWEEP: settings.sweep_cron,
        task_module.RELAY_INBOX: "* * * * * */10",
        task_module.RECOVER_STALLED: "* * * * * */5",
        task_module.EVALUATE_ALERTS: settings.alert_eval_cron,
        task_module.RELAY_POSTINGS: "* * * * * */5",
        task_module.CHECK_ODOO: settings.config_check_cron,
        task_module.POSTING_TEST: settings.posting_test_cron,
        task_module.BACKUP: settings.backup_cron,
        task_module.RESTORE_DRILL: settings.backup_drill_cron,
        task_module.CHECK_BACKUPS: settings.backup_check_cron,
    }


def build_jobs_app(url: str, settings: Settings, policy: BackoffPolicy) -> App:
    """Create the procrastinate app on the session-capable URL, with tasks and schedules."""
    app = App(
        connector=PsycopgConnector(conninfo=url, min_size=1, max_size=settings.worker_pool_size)
    )
    task_module.register(app, retry=policy)
    for name, cron in schedules(settings).items():
        app.periodic(cron=cron, periodic_id=name.split(":")[-1])(app.tasks[name])
    return app


def build_container(
    settings: Settings,
    database: Database,
    *,
    clock: Clock | None = None,
    conekta: ConektaGateway | None = None,
    odoo: LedgerGateway | None = None,
) -> Container:
    """Wire a Container from settings (fakes may replace the clock or the Conekta client)."""
    check_conekta_config(settings)
    api_key = (
        settings.conekta_api_key.get_secret_value() if settings.conekta_api_key else SIM_API_KEY
    )
    conekta = conekta or ConektaClient(
        base_url=conekta_base_url(settings),
        api_key=api_key,
        api_version=settings.conekta_api_version,
        timeout=settings.conekta_timeout_seconds,
    )
    policy = BackoffPolicy(
        max_attempts=settings.retry_max_attempts,
        base_seconds=settings.retry_base_seconds,
        cap_seconds=settings.retry_cap_seconds,
    )
    engine = database.async_engine(pool_size=settings.db_pool_size)
    keyring = load_keyring(settings)
    clock = clock or SystemClock()
    odoo = odoo or build_odoo(settings)
    cfg = ledger_config(settings)
    container = Container(
        settings=settings,
        database=database,
        engine=engine,
        jobs=build_jobs_app(database.direct_url, settings, policy),
        conekta=conekta,
        keyring=keyring,
        receiver=WebhookReceiver(engine, keyring, livemode=settings.conekta_livemode),
        tokens=TokenBook.parse(settings.api_tokens),
        metrics=Metrics(database.direct_url),
        clock=clock,
        policy=policy,
        odoo=odoo,
        odoo_staging=build_odoo_staging(settings),
        ledger_config=cfg,
        resolver=TargetResolver(odoo, cfg, clock),
    )
    container.metrics.registry.register(BackupGauges(database.direct_url))
    backup_policy = config_from_settings(settings).health_policy
    container.extras.setdefault("readiness", {})["backups"] = lambda: backup_readiness(
        container.engine, backup_policy, container.clock.now()
    )
    container.receiver = WebhookReceiver(
        engine,
        keyring,
        livemode=settings.conekta_livemode,
        enqueue=container.enqueue_in_transaction,
    )
    return container


async def run_worker(container: Container, *, concurrency: int | None = None) -> None:
    """Run a procrastinate worker (with the scheduler) until cancelled."""
    await container.jobs.run_worker_async(
        concurrency=concurrency or container.settings.worker_concurrency,
        additional_context={"container": container},
        worker_middleware=[
            deadletters.middleware(
                lambda ctx: ctx.additional_context["container"].engine,
                lambda ctx: ctx.additional_context["container"].clock,
            )
        ],
        install_signal_handlers=False,
        fetch_job_polling_interval=1.0,
        stalled_worker_timeout=container.settings.stalled_worker_seconds,
        update_heartbeat_interval=max(1.0, container.settings.stalled_worker_seconds / 6),
    )
