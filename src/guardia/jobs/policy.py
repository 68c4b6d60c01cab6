"""Retry policy for background jobs: exponential backoff with jitter and a cap."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from procrastinate import BaseRetryStrategy, RetryDecision

from guardia.core.errors import ProviderUnavailable, is_retryable


@dataclass
class BackoffPolicy(BaseRetryStrategy):
    """Retry retryable failures up to `max_attempts` runs, waiting base·2ⁿ (capped), jittered.

    The jitter is "equal jitter": half the delay is fixed and half random, so a burst of failures
    spreads out without ever retrying immediately. A provider's Retry-After is a floor.
    """

    max_attempts: int = 8
    base_seconds: float = 2.0
    cap_seconds: float = 600.0

    def delay(self, attempts: int) -> float:
        """Return the wait before the next run after `attempts` failed runs (0-based)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0**attempts)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto

    def will_retry(self, exception: BaseException, attempts: int) -> bool:
        """Tell whether a run that failed with `exception` gets another run."""
        return is_retryable(exception) and attempts + 1 < self.max_attempts

    def get_retry_decision(self, *, exception: BaseException, job: Any) -> RetryDecision | None:
        """Procrastinate hook: when (if ever) to run the job again."""
        if not self.will_retry(exception, job.attempts):
            return None
        wait = self.delay(job.attempts)
        if isinstance(exception, ProviderUnavailable) and exception.retry_after is not None:
            wait = max(wait, exception.retry_after)
        return RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=max(wait, 0.05)))
