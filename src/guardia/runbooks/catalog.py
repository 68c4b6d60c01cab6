"""Every runbook encoded so far, by name and by the seed's runbook number.

Runbooks 4-6 (KYC, Mifiel, scoring) join the same way when those capabilities exist: a module
with its checks, actions and a `SPEC`, added to `SPECS`.
"""

from __future__ import annotations

from guardia.incidents.model import Runbook as RunbookId
from guardia.runbooks import backups, conekta, odoo, recon
from guardia.runbooks.model import RunbookSpec

SPECS: tuple[RunbookSpec, ...] = (conekta.SPEC, odoo.SPEC, recon.SPEC, backups.SPEC)

RUNBOOKS: dict[str, RunbookSpec] = {spec.name: spec for spec in SPECS}
BY_RUNBOOK: dict[RunbookId, RunbookSpec] = {spec.runbook: spec for spec in SPECS}
