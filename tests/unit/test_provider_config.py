"""Production safety: with any real Conekta setting, the simulator's keys are never trusted, and a
half-real configuration refuses to start, naming the setting to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from guardia.bootstrap import (
    SIM_API_KEY,
    SIM_PUBLIC_KEY,
    check_conekta_config,
    load_keyring,
    sandbox_dir,
)
from guardia.core.errors import InvalidInput
from guardia.settings import Settings
from tests.conftest import Signer


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "guardia", **values)  # type: ignore[call-arg]


@pytest.fixture
def real_key(tmp_path: Path, signer: Signer) -> str:
    path = tmp_path / "conekta_2026.pem"
    path.write_text(signer.public_pem())
    return str(path)


@pytest.fixture
def simulator_key(tmp_path: Path) -> Path:
    """The simulator's public key where `guardia up` leaves it."""
    path = tmp_path / "guardia" / "sandbox" / SIM_PUBLIC_KEY
    path.parent.mkdir(parents=True)
    path.write_text(Signer().public_pem())
    return path


def test_nothing_configured_is_the_sandbox_and_trusts_the_simulator(
    tmp_path: Path, simulator_key: Path
) -> None:
    settings = _settings(tmp_path)

    check_conekta_config(settings)

    assert settings.uses_simulators()
    assert load_keyring(settings).active_keys(livemode=False)


def test_a_real_configuration_starts_and_trusts_only_the_real_key(
    tmp_path: Path, real_key: str, simulator_key: Path
) -> None:
    settings = _settings(
        tmp_path, conekta_api_key="key_live_0123456789abcdef", conekta_webhook_keys=real_key
    )

    check_conekta_config(settings)

    assert not settings.uses_simulators()
    assert [k.key_id for k in load_keyring(settings).active_keys(livemode=False)] == [
        "conekta_2026"
    ]


def test_a_real_webhook_key_alone_never_trusts_the_simulators_key(
    tmp_path: Path, real_key: str, simulator_key: Path
) -> None:
    settings = _settings(tmp_path, conekta_webhook_keys=real_key)

    assert not settings.uses_simulators()
    assert [k.key_id for k in load_keyring(settings).active_keys(livemode=False)] == [
        "conekta_2026"
    ]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"webhook": True}, "GUARDIA_CONEKTA_API_KEY"),
        ({"api_key": "key_live_0123456789abcdef"}, "GUARDIA_CONEKTA_WEBHOOK_KEYS"),
        ({"webhook": True, "api_key": SIM_API_KEY}, "GUARDIA_CONEKTA_API_KEY"),
        (
            {
                "webhook": True,
                "api_key": "key_live_0123456789abcdef",
                "api_url": "http://127.0.0.1:8101",
            },
            "GUARDIA_CONEKTA_API_URL",
        ),
        (
            {"simulator_webhook": True, "api_key": "key_live_0123456789abcdef"},
            "GUARDIA_CONEKTA_WEBHOOK_KEYS",
        ),
    ],
    ids=[
        "webhook-keys-without-api-key",
        "api-key-without-webhook-keys",
        "sandbox-api-key",
        "simulator-url",
        "simulator-webhook-key",
    ],
)
def test_a_mixed_configuration_is_refused_naming_the_setting(
    tmp_path: Path, real_key: str, simulator_key: Path, values: dict[str, Any], named: str
) -> None:
    config: dict[str, Any] = {}
    if values.get("webhook"):
        config["conekta_webhook_keys"] = real_key
    if values.get("simulator_webhook"):
        config["conekta_webhook_keys"] = str(simulator_key)
    if "api_key" in values:
        config["conekta_api_key"] = values["api_key"]
    if "api_url" in values:
        config["conekta_api_url"] = values["api_url"]

    with pytest.raises(InvalidInput, match=named):
        check_conekta_config(_settings(tmp_path, **config))


def test_guardia_serve_refuses_a_mixed_configuration_in_one_line_before_touching_a_database(
    tmp_path: Path, real_key: str
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GUARDIA_")}
    env.update(
        {
            "GUARDIA_DATA_DIR": str(tmp_path / "guardia"),
            "GUARDIA_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
            "GUARDIA_CONEKTA_WEBHOOK_KEYS": real_key,
            "GUARDIA_PORT": "9",
        }
    )

    done = subprocess.run(
        [sys.executable, "-m", "guardia.entrypoints", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "GUARDIA_CONEKTA_API_KEY" in lines[0]
    assert not (tmp_path / "guardia" / "pg").exists()
    assert sandbox_dir(_settings(tmp_path)).exists() is False
