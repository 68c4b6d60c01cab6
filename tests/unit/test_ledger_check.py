"""The Odoo config check over the in-memory ledger: every right Guardia uses, and hints that name
the retry command of the cause a failure files dead letters under."""

from __future__ import annotations

from dataclasses import replace

import pytest

from guardia.adapters.odoo.errors import classify
from guardia.core.errors import ProviderRejected
from guardia.ledger.check import CheckReport, check_ledger
from guardia.ledger.fakes import InMemoryLedger
from guardia.ledger.service import LedgerConfig
from guardia.settings import Settings

CONFIG = LedgerConfig(
    journal_code="CSH1",
    credit_account_code="401.01.01",
    debit_account_code=None,
    analytic_account_id=1,
)
BILLING = "account.group_account_invoice"
CONTACTS = "base.group_partner_manager"


def failed(report: CheckReport, name: str) -> str:
    """The fix of the named failing item."""
    (item,) = [i for i in report.failures() if i.name == name]
    return item.fix


async def test_the_bot_the_readme_describes_passes_every_right() -> None:
    report = await check_ledger(InMemoryLedger(), CONFIG)
    assert report.ok, report.failures()
    assert any(i.name == "rights" and i.ok for i in report.items)


async def test_a_bot_without_contact_creation_fails_the_check_instead_of_every_posting() -> None:
    ledger = InMemoryLedger(groups={"base.group_user", BILLING})
    report = await check_ledger(ledger, CONFIG)
    assert not report.ok
    fix = failed(report, "rights")
    assert CONTACTS in fix
    assert "guardia dlq retry --cause permission" in fix
    with pytest.raises(ProviderRejected) as info:
        await ledger.ensure_partner("conekta:cus_1", "Ana", None)
    assert info.value.cause == "permission"


async def test_the_rights_check_writes_nothing() -> None:
    ledger = InMemoryLedger(groups={"base.group_user"})
    await check_ledger(ledger, CONFIG)
    assert (ledger.moves, ledger.partners) == ({}, {})


async def test_a_deprecated_account_is_unusable_and_its_hint_names_the_missing_account_retry() -> (
    None
):
    ledger = InMemoryLedger()
    ledger.accounts[36] = replace(ledger.accounts[36], deprecated=True)
    ledger.accounts[50] = replace(ledger.accounts[50], deprecated=True)
    debit = LedgerConfig("CSH1", "401.01.01", "101.01.01", 1)
    report = await check_ledger(ledger, debit)
    for name in ("credit_account", "debit_account"):
        assert "guardia dlq retry --cause missing_account" in failed(report, name)


async def test_each_catalogue_hint_names_the_retry_of_its_own_cause() -> None:
    ledger = InMemoryLedger(groups={"base.group_user", CONTACTS})
    report = await check_ledger(ledger, LedgerConfig("NOPE", "401.01.01", None, 99))
    assert "--cause permission" in failed(report, "permissions")
    assert "--cause missing_journal" in failed(report, "journal")
    assert "--cause missing_analytic" in failed(report, "analytic_account")


@pytest.mark.parametrize(
    "message",
    [
        "The account Ventas y/o servicios gravados a la tasa general (401.01.01) is deprecated.",
        "A line of this move is using a deprecated account, you cannot post it.",
    ],
)
def test_odoo_refusing_a_deprecated_account_is_missing_account_not_validation(
    message: str,
) -> None:
    error = classify("odoo.exceptions.UserError", message)
    assert isinstance(error, ProviderRejected)
    assert error.cause == "missing_account"


def test_an_empty_analytic_account_setting_means_no_analytic_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GUARDIA_ODOO_ANALYTIC_ACCOUNT_ID", "")  # as copied from .env.example
    assert Settings(_env_file=None).odoo_analytic_account_id is None  # type: ignore[call-arg]
