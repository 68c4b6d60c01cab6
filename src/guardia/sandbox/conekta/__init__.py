"""A faithful local simulator of Conekta (api.conekta.io) for `make up` and e2e tests.

Reproduces the protocol in `shared/docs/providers.md` §1: orders and charges in integer cents,
events with snapshots, RSA-signed webhooks in `DIGEST`, retries, cursor paging, Conekta's error
shape, and sandbox-only fault knobs under `/_sandbox`.
"""

from guardia.sandbox.conekta.app import create_app
from guardia.sandbox.conekta.simulator import ConektaSimConfig, ConektaSimulator

__all__ = ["ConektaSimConfig", "ConektaSimulator", "create_app"]
