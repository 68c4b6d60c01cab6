"""Every setting Guardia reads, from `GUARDIA_*` environment variables (or `.env`).

`.env.example` lists them all; the README's configuration table explains them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Guardia's configuration."""

    model_config = SettingsConfigDict(env_prefix="GUARDIA_", env_file=".env", extra="ignore")

    # --- database -------------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None,
        description="Pooled URL for short request transactions (Neon: the -pooler endpoint). "
        "Unset: an embedded PostgreSQL is started under data_dir.",
    )
    database_direct_url: SecretStr | None = Field(
        default=None,
        description="Direct (unpooled) URL for workers, migrations and pg_dump. Defaults to "
        "database_url.",
    )
    data_dir: Path = Field(default=Path(".guardia"), description="Local state directory.")
    db_pool_size: int = Field(default=10, description="API connection pool size.")
    worker_pool_size: int = Field(default=5, description="Worker connection pool size.")

    # --- HTTP -----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where providers reach Guardia (webhook URLs are built from it).",
    )
    webhook_max_body_bytes: int = Field(default=256 * 1024, description="Larger bodies get 413.")
    api_max_body_bytes: int = Field(
        default=1024 * 1024,
        description="Every other route: larger request bodies get 413 (after authentication).",
    )

    # --- auth -----------------------------------------------------------------------------
    api_tokens: str = Field(
        default="",
        description="Operator API tokens as comma-separated name:role:sha256hex "
        "(roles: operator, auditor, pwa). Only hashes, never tokens.",
    )

    # --- Conekta --------------------------------------------------------------------------
    conekta_api_key: SecretStr | None = Field(
        default=None, description="Private API key. Unset: the local simulator is used."
    )
    conekta_api_url: str = "https://api.conekta.io"
    conekta_api_version: str = "2.2.0"
    conekta_webhook_keys: str = Field(
        default="",
        description="Active webhook public keys: comma-separated paths of PEM files "
        "(several during rotation).",
    )
    conekta_livemode: bool = False
    conekta_webhook_ids: str = Field(
        default="", description="Webhook ids for resend; empty: every webhook pointing at us."
    )
    conekta_timeout_seconds: float = 10.0

    # --- Odoo -----------------------------------------------------------------------------
    odoo_url: str | None = Field(
        default=None, description="Odoo base URL. Unset: the local Odoo simulator is used."
    )
    odoo_database: str = "mxtest"
    odoo_login: str = "guardia-bot"
    odoo_api_key: SecretStr | None = Field(
        default=None, description="Bot user's API key (or password on 16-18)."
    )
    odoo_version: str = Field(
        default="auto", description="auto (detected), or 16.0 / 17.0 / 18.0 / 19.0."
    )
    odoo_company_id: int = 1
    odoo_journal_code: str = Field(
        default="CSH1", description="Journal of the entries; its default account is the debit."
    )
    odoo_debit_account_code: str | None = Field(
        default=None, description="Debit account code (overrides the journal's default account)."
    )
    odoo_credit_account_code: str = Field(
        default="401.01.01", description="Income account credited (SAT 401; 405 does not exist)."
    )
    odoo_analytic_account_id: int | None = Field(
        default=1, description="Analytic account on both lines; checked at start-up."
    )
    odoo_timeout_seconds: float = 15.0
    odoo_staging_url: str | None = Field(
        default=None, description="Staging Odoo for the daily posting test (unset: not run)."
    )
    odoo_staging_database: str = "staging"
    odoo_staging_api_key: SecretStr | None = None
    posting_test_cron: str = Field(
        default="0 6 * * *", description="Daily staging posting test schedule."
    )
    config_check_cron: str = Field(
        default="* * * * *", description="Odoo config check schedule (readiness): every minute."
    )

    # --- simulators -----------------------------------------------------------------------
    sandbox_conekta_port: int = 8101
    sandbox_odoo_port: int = 8102

    # --- jobs -----------------------------------------------------------------------------
    worker_concurrency: int = 8
    retry_max_attempts: int = Field(default=8, description="Attempts before a dead letter.")
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 600.0
    stalled_worker_seconds: float = Field(
        default=60.0, description="A worker silent this long is dead; its jobs are retried."
    )
    sweep_cron: str = Field(
        default="* * * * * */30",
        description="Sweeper schedule (cron; a 6th field is seconds: every 30 s).",
    )
    sweep_pending_age_seconds: float = Field(
        default=600.0, description="Pull orders still pending after this long."
    )
    sweep_lookback_hours: float = Field(default=72.0, description="Oldest pending order swept.")
    sweep_grace_seconds: float = Field(
        default=10.0,
        description="Orders Conekta changed this recently are left to their webhook; what the "
        "sweeper heals after that opens a runbook-1 incident.",
    )
    inbox_relay_seconds: float = Field(
        default=15.0, description="Re-enqueue stored events left unprocessed this long."
    )

    # --- alerts ---------------------------------------------------------------------------
    alert_webhook_failure_ratio: float = Field(
        default=0.05, description="Failed-webhook share that fires the alert (X%)."
    )
    alert_webhook_window_seconds: float = 300.0
    alert_webhook_min_attempts: int = 5
    alert_eval_cron: str = Field(
        default="* * * * * */15", description="Alert evaluation (cron; 6th field = seconds)."
    )
    alert_dead_letter_growth: int = Field(
        default=1, description="New dead letters within the window that fire the alert."
    )
    alert_dead_letter_window_seconds: float = 900.0
    recon_kpi_threshold: float = Field(
        default=0.95, description="ReconKpiLow fires when a run matches less than this share."
    )
    recon_approval_threshold_cents: int = Field(
        default=1_000_000,
        description="A manual match moving more than this (cents) needs a second operator.",
    )
    recon_cutoff_rules: str = Field(
        default="00:00+1bd",
        description="Conekta payout cut-off rules, [ACCOUNT/][METHOD=]HH:MM+Nbd, comma-separated.",
    )
    recon_extra_holidays: str = Field(
        default="", description="Bank closures beyond the CNBV calendar (YYYY-MM-DD, comma list)."
    )
    alert_clear_seconds: float = Field(
        default=300.0, description="A condition must stay clear this long before auto-resolve."
    )
    slack_webhook_url: SecretStr | None = Field(
        default=None, description="Slack-compatible incoming webhook for incident notifications."
    )
    incidents_dir: Path = Field(
        default=Path(".guardia/evidence"), description="Where evidence bundles are written."
    )
    runbook_base_url: str = "https://github.com/hu25/guardia/blob/main/docs/runbooks.md"
    runbook_create_accounts: bool = Field(
        default=False,
        description="Runbook 2 may create a missing Odoo account (--apply, and only when the "
        "bot has account.group_account_manager); otherwise it guides the accountant.",
    )

    # --- backups (runbook 7) ----------------------------------------------------------------
    backup_target: str = Field(
        default="local", description="local (a directory; the embedded default) or s3."
    )
    backup_local_dir: Path | None = Field(
        default=None, description="Local backups. Unset: data_dir/backups."
    )
    backup_staging_dir: Path | None = Field(
        default=None,
        description="Downloads for verify/drills (needs 2x the last backup free). "
        "Unset: data_dir/backup-staging.",
    )
    backup_s3_bucket: str | None = Field(
        default=None, description="Bucket (target s3); versioned, ideally Object Lock."
    )
    backup_s3_prefix: str = Field(default="guardia/", description="Key prefix; one per database.")
    backup_s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, R2...). Unset: AWS."
    )
    backup_s3_region: str | None = None
    backup_s3_sse: str | None = Field(
        default=None, description="ServerSideEncryption: AES256 or aws:kms."
    )
    backup_s3_sse_kms_key_id: str | None = Field(
        default=None, description="SSEKMSKeyId with aws:kms."
    )
    backup_s3_access_key_id: SecretStr | None = Field(
        default=None, description="Unset: the boto3 chain (AWS_* env, profile, role)."
    )
    backup_s3_secret_access_key: SecretStr | None = None
    backup_s3_session_token: SecretStr | None = None
    backup_s3_part_size_mb: int = Field(default=32, description="Multipart part size (>= 5).")
    backup_s3_max_concurrency: int = Field(default=3, description="Parts uploaded at once.")
    backup_pg_dump: str | None = Field(
        default=None,
        description="pg_dump path or name (pg_restore/pg_amcheck beside it). "
        "Unset: newest bundled client, else PATH.",
    )
    backup_compress: str | None = Field(
        default=None, description="pg_dump --compress (e.g. zstd:3). Unset: gzip."
    )
    backup_keep_daily: int = Field(default=14, description="Daily backups kept.")
    backup_keep_weekly: int = Field(
        default=8, description="Weekly backups kept (newest verified always kept)."
    )
    backup_max_age_hours: float = Field(default=24.0, description="BackupStale after this.")
    backup_min_size_ratio: float = Field(
        default=0.5, description="BackupTooSmall below this x median of previous 7."
    )
    backup_drill_max_age_days: float = Field(
        default=8.0, description="RestoreDrillStale after this."
    )
    backup_rto_seconds: float = Field(default=1800.0, description="Drill check D5 target.")
    backup_scratch_url: SecretStr | None = Field(
        default=None,
        description="Server where drills create/drop a scratch DB. Unset: the backed-up "
        "server (prefer a staging server or Neon branch in production).",
    )
    backup_cron: str = Field(
        default="30 8 * * *", description="Daily backup (08:30 UTC = 02:30 Mexico City)."
    )
    backup_drill_cron: str = Field(default="0 10 * * 0", description="Weekly restore drill.")
    backup_check_cron: str = Field(
        default="* * * * * */30",
        description="Backup preflight (target writable, pg_dump, space): every 30 s, so a "
        "broken target is detected within a minute, not at the nightly run.",
    )

    # --- logging --------------------------------------------------------------------------
    log_json: bool = True
    log_level: str = "INFO"

    @field_validator(
        "database_url",
        "database_direct_url",
        "conekta_api_key",
        "odoo_url",
        "odoo_api_key",
        "odoo_debit_account_code",
        "odoo_analytic_account_id",
        "odoo_staging_url",
        "odoo_staging_api_key",
        "slack_webhook_url",
        "backup_local_dir",
        "backup_staging_dir",
        "backup_s3_bucket",
        "backup_s3_endpoint_url",
        "backup_s3_region",
        "backup_s3_sse",
        "backup_s3_sse_kms_key_id",
        "backup_s3_access_key_id",
        "backup_s3_secret_access_key",
        "backup_s3_session_token",
        "backup_pg_dump",
        "backup_compress",
        "backup_scratch_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """Treat `GUARDIA_X=` (as copied from .env.example) as not set."""
        return None if value == "" else value

    def direct_url(self) -> SecretStr | None:
        """Return the session-capable URL: the direct one, else the pooled one."""
        return self.database_direct_url or self.database_url

    def uses_simulators(self) -> bool:
        """Tell whether Guardia talks to the local Conekta simulator: only when no real Conekta
        setting (API key or webhook key) is configured."""
        return self.conekta_api_key is None and not self.conekta_webhook_keys.strip()

    def uses_odoo_simulator(self) -> bool:
        """Tell whether Guardia posts to the local Odoo simulator."""
        return self.odoo_url is None
