"""`python -m guardia.entrypoints` runs the CLI."""

from guardia.entrypoints.cli import main

main()
