"""Drills: inject a runbook's fault into the local stack and measure detection, mitigation and
verified recovery (`guardia drill NAME|all`)."""
