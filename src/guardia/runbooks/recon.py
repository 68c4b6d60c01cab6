"""Runbook 3, "Conciliación no encuentra match (dinero huérfano)", as code."""

from __future__ import annotations

from guardia.incidents.model import Runbook as RunbookId
from guardia.runbooks.model import RunbookSpec

SPEC = RunbookSpec(
    name="recon-orphan",
    runbook=RunbookId.RECONCILIATION_NO_MATCH,
    title="Conciliación no encuentra match (dinero huérfano)",
    checks=(),
    actions=(),
    verification=(),
    prevention=(
        "Normalisation of references (SPEI clave de rastreo, OXXO, Conekta ids)",
        "Unique hash per (amount, reference, date, account) on imported lines",
    ),
    needs="line",
)
