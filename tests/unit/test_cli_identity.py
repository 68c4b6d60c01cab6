"""Who acts through the CLI: the operating-system account, never a name chosen per call."""

from __future__ import annotations

import os
import pwd
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from guardia.entrypoints.cli import app
from guardia.entrypoints.cli_support import operator_identity


def _commands(command: Any, path: str = "guardia") -> list[tuple[str, Any]]:
    found = [(path, command)]
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            found += _commands(sub, f"{path} {name}")
    return found


def test_no_cli_command_lets_the_caller_name_who_acts() -> None:
    commands = _commands(typer.main.get_command(app))

    choosing = [
        (path, opt)
        for path, command in commands
        for param in command.params
        for opt in param.opts
        if opt in ("--actor", "--approver", "--as", "--operator")
    ]

    assert len(commands) > 40
    assert choosing == []


def test_the_cli_acts_as_the_os_account_whatever_the_login_variables_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, "someone-else")

    assert operator_identity() == f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"


def test_approving_a_match_as_a_free_text_actor_is_refused() -> None:
    result = CliRunner().invoke(
        app, ["recon", "approve", "7", "--reason", "CEP checked", "--actor", "luis"]
    )

    assert result.exit_code == 2
    assert "No such option" in result.output
