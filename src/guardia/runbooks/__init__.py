"""Runbooks as code: ordered checks with evidence, idempotent actions with a dry run."""
