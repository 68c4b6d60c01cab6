"""What every CLI module shares: settings with logging, and running a use case in a Container."""

from __future__ import annotations

import asyncio
import os
import pwd
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console

from guardia.adapters.postgres.database import Database
from guardia.bootstrap import Container, build_container
from guardia.core.errors import GuardiaError
from guardia.core.logging import configure_logging
from guardia.entrypoints.runtime import opened
from guardia.settings import Settings

T = TypeVar("T")
err = Console(stderr=True)


def load_settings() -> Settings:
    """Settings from the environment, with logging configured from them."""
    settings = Settings()
    configure_logging(json=settings.log_json, level=settings.log_level)
    return settings


def operator_identity() -> str:
    """Who acts through the CLI: `cli:` and the operating-system account running it.

    Taken from the process's user id, not from an option, a setting or LOGNAME/USER (which
    `getpass.getuser` reads first), so one call cannot claim another operator's name: the
    second operator of a manual-match approval must really be somebody else.
    """
    return f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"


def with_container(fn: Callable[[Container], Awaitable[T]]) -> T:
    """Run `fn` with a ready Container; a GuardiaError becomes a one-line error and exit 1."""
    settings = load_settings()
    database = Database.open(settings)

    async def run() -> T:
        container = build_container(settings, database)
        async with opened(container):
            return await fn(container)

    try:
        return asyncio.run(run())
    except GuardiaError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=1) from exc
    finally:
        database.close()
