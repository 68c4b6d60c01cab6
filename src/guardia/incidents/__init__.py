"""Incidents: the record the runbooks ask for, its lifecycle, MTTR figures and evidence bundles."""
