"""Guardia: incident prevention, detection, recovery and evidence for the HU25 payments pilot."""

__version__ = "0.1.0"
