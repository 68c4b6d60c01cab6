"""A circuit breaker for async provider calls, on top of pybreaker's state machine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import pybreaker

from guardia.core.errors import ProviderUnavailable, is_retryable

T = TypeVar("T")


class AsyncBreaker:
    """Open after `fail_max` consecutive retryable failures; probe again after `reset_timeout`.

    Permanent rejections (a 4xx the provider means) say nothing about the provider's health, so
    they never trip the breaker.
    """

    def __init__(self, name: str, *, fail_max: int = 5, reset_timeout: float = 30.0) -> None:
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            name=name,
            exclude=[lambda exc: not is_retryable(exc)],
        )

    @property
    def state(self) -> str:
        """Return closed, open or half-open."""
        return str(self._breaker.current_state)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run fn through the breaker; an open breaker fails fast as ProviderUnavailable."""
        try:
            # pybreaker's `calling()` is a sync context manager around the state machine, so the
            # awaited call inside it is counted as one success or failure.
            with self._breaker.calling():
                return await fn()
        except pybreaker.CircuitBreakerError as exc:
            raise ProviderUnavailable(f"circuit {self._breaker.name} is open") from exc
