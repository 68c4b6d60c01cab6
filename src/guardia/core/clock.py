"""Clocks: the system one, and a fake one that tests move by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

MEXICO_CITY = ZoneInfo("America/Mexico_City")


class Clock(Protocol):
    """Source of the current time, always timezone-aware UTC."""

    def now(self) -> datetime:
        """Return the current time in UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """Return the current time in UTC."""
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        """Return the fake current time."""
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward."""
        self._now += delta


def local_date(moment: datetime) -> date:
    """Return the business date of an instant in America/Mexico_City."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(MEXICO_CITY).date()


def from_unix(seconds: int | float | None) -> datetime | None:
    """Convert provider Unix seconds to an aware UTC datetime."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def ago(clock: Clock, **delta: float) -> datetime:
    """Return the instant a given duration before now."""
    return clock.now() - timedelta(**delta)
