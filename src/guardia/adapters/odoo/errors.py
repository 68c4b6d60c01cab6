"""Classifying Odoo failures (docs/odoo.md §4): retryable, or permanent with a cause.

Causes: auth, missing_account, missing_journal, missing_analytic, permission, payload_incomplete,
validation, unknown. Odoo answers errors with HTTP 200 over JSON-RPC, so classification keys on
the exception class name (`data.name`), never on `code`; JSON-2 adds HTTP statuses.
"""

from __future__ import annotations

from guardia.core.errors import GuardiaError, ProviderRejected, ProviderUnavailable

RETRYABLE_NAMES = (
    "odoo.exceptions.LockError",
    "psycopg2.errors.SerializationFailure",
    "psycopg2.errors.DeadlockDetected",
    "psycopg2.errors.LockNotAvailable",
    "psycopg2.extensions.TransactionRollbackError",
)
RETRYABLE_TEXT = (
    "could not serialize access",
    "deadlock detected",
    "could not obtain lock",
    "concurrent update",
)


def classify(name: str, message: str, *, http_status: int | None = None) -> GuardiaError:
    """Turn an Odoo error (exception class name + message) into Guardia's error."""
    text = message or ""
    lowered = text.lower()
    if name in RETRYABLE_NAMES or any(t in lowered for t in RETRYABLE_TEXT) or http_status == 409:
        return ProviderUnavailable(f"Odoo busy (lock/serialization): {text[:300]}")
    if name == "psycopg2.OperationalError":
        if "does not exist" in lowered and "database" in lowered:
            # A missing database is configuration, not an outage, despite the class name.
            return ProviderRejected(f"Odoo database does not exist: {text[:300]}", cause="auth")
        return ProviderUnavailable(f"Odoo database error: {text[:300]}")
    if name.endswith("AccessDenied") or http_status == 401:
        return ProviderRejected(f"Odoo refused the credentials: {text[:300]}", cause="auth")
    if name.endswith("AccessError") or http_status == 403:
        if "private method" in lowered:
            return ProviderRejected(f"Odoo: {text[:300]}", cause="unknown")
        return ProviderRejected(f"Odoo permission denied: {text[:300]}", cause="permission")
    if "account_move_line_account_id_fkey" in text:
        # Odoo reports a non-existent account as a misleading foreign-key text (odoo.md §4.2).
        return ProviderRejected(
            f"Odoo: an account of the entry does not exist: {text[:300]}", cause="missing_account"
        )
    if "deprecated" in lowered and "account" in lowered:
        # "The account X (401.01.01) is deprecated." at create, "…using a deprecated account…"
        # at posting: the configured account is unusable, fixed in the chart like a missing one.
        return ProviderRejected(
            f"Odoo: an account of the entry is deprecated: {text[:300]}", cause="missing_account"
        )
    if "missing required account" in lowered or "mandatory field is not set" in lowered:
        return ProviderRejected(f"Odoo: incomplete entry: {text[:300]}", cause="payload_incomplete")
    if name.endswith(("ValidationError", "UserError", "MissingError")):
        if "doesn't exist" in lowered and lowered.startswith("object "):
            return ProviderRejected(f"Odoo model missing: {text[:300]}", cause="unknown")
        return ProviderRejected(f"Odoo rejected the entry: {text[:300]}", cause="validation")
    if http_status is not None and http_status in (502, 503, 504):
        return ProviderUnavailable(f"Odoo unavailable (HTTP {http_status})")
    if name.startswith("builtins."):
        return ProviderRejected(f"Odoo: {name}: {text[:300]}", cause="unknown")
    if http_status is not None and http_status >= 500:
        return ProviderUnavailable(f"Odoo server error (HTTP {http_status}): {text[:300]}")
    return ProviderRejected(f"Odoo: {name}: {text[:300]}", cause="unknown")
