"""The tamper-evident audit log of operator actions."""
