"""A faithful local simulator of an Odoo 16-19 server with `account` + `l10n_mx`.

Reproduces the protocol facts of `shared/docs/odoo.md` §10: JSON-RPC, JSON-2 (19+) and XML-RPC
envelopes, Odoo's exception names and texts, the Mexican chart seed, journal-entry validation,
naming and posting, the reversal wizard, and sandbox-only fault knobs under `/_sandbox`.
"""

from guardia.sandbox.odoo.app import create_app
from guardia.sandbox.odoo.simulator import OdooSimConfig, OdooSimulator

__all__ = ["OdooSimConfig", "OdooSimulator", "create_app"]
