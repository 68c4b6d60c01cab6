"""Retry policy and token rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardia.auth.tokens import Policy, Role, TokenBook, hash_token, new_token
from guardia.core.errors import (
    Forbidden,
    InvalidInput,
    ProviderRejected,
    ProviderUnavailable,
    Unauthorized,
)
from guardia.jobs.policy import BackoffPolicy


@given(st.integers(min_value=0, max_value=40))
def test_backoff_stays_between_half_and_the_capped_exponential(attempts: int) -> None:
    policy = BackoffPolicy(max_attempts=50, base_seconds=2.0, cap_seconds=600.0)
    ceiling = min(600.0, 2.0 * 2**attempts)
    assert ceiling / 2 <= policy.delay(attempts) <= ceiling


def test_permanent_failures_are_never_retried_and_retryable_ones_stop_at_the_limit() -> None:
    policy = BackoffPolicy(max_attempts=3)
    assert not policy.will_retry(ProviderRejected("no", cause="auth"), 0)
    assert policy.will_retry(ProviderUnavailable("down"), 0)
    assert policy.will_retry(ProviderUnavailable("down"), 1)
    assert not policy.will_retry(ProviderUnavailable("down"), 2)


def test_tokens_authenticate_by_hash_and_roles_gate_policies() -> None:
    operator, auditor = new_token(Role.OPERATOR), new_token(Role.AUDITOR)
    book = TokenBook.parse(
        f"ana:operator:{hash_token(operator)}, luis:auditor:{hash_token(auditor)}"
    )
    assert book.authorize(operator, Policy.ACT) is not None
    assert book.authorize(auditor, Policy.READ) is not None
    with pytest.raises(Forbidden):
        book.authorize(auditor, Policy.ACT)
    with pytest.raises(Unauthorized):
        book.authorize("gdo_wrong", Policy.READ)
    with pytest.raises(Unauthorized):
        book.authorize(None, Policy.PWA_READ)
    assert book.authorize(None, Policy.PUBLIC) is None


@pytest.mark.parametrize("spec", ["ana:operator", "ana:root:" + "0" * 64, "ana:operator:xyz"])
def test_malformed_token_configuration_is_refused(spec: str) -> None:
    with pytest.raises(InvalidInput):
        TokenBook.parse(spec)
