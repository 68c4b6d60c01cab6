"""Identifiers Guardia mints."""

from __future__ import annotations

import uuid


def new_correlation_id() -> str:
    """Return a fresh correlation id (32 hex characters)."""
    return uuid.uuid4().hex
