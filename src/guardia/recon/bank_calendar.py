"""Mexican bank business days: when SPEI and the banks settle, so when a payout can be made.

Source: the CNBV's yearly "días inhábiles" calendar, published each December in the Diario
Oficial de la Federación for the next year (https://www.gob.mx/cnbv, search "días inhábiles";
docs/reconciliation.md §2.1). On those days Banxico closes SPEI to banks and a payout due then
rolls forward to the next business day. The list is computed per year from the rules the CNBV
calendars have followed; a one-off closure the rules do not know is added through configuration
(``PayoutConfig.extra_holidays``), and a year whose DOF publication differs is corrected the same
way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous "Meeus/Jones/Butcher" algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_monday(year: int, month: int, nth: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(7 - first.weekday()) % 7 + 7 * (nth - 1))


@lru_cache(maxsize=64)
def mexican_bank_holidays(year: int) -> frozenset[date]:
    """The days Mexican banks and SPEI are closed in ``year`` (weekends aside)."""
    easter = easter_sunday(year)
    days = {
        date(year, 1, 1),
        _nth_monday(year, 2, 1),  # Constitution day
        _nth_monday(year, 3, 3),  # Benito Juárez
        easter - timedelta(days=3),  # Holy Thursday
        easter - timedelta(days=2),  # Good Friday
        date(year, 5, 1),
        date(year, 9, 16),
        date(year, 11, 2),
        _nth_monday(year, 11, 3),  # Revolution day
        date(year, 12, 12),
        date(year, 12, 25),
    }
    if (year - 2024) % 6 == 0:  # presidential inauguration, 1 October every six years (2024, 2030)
        days.add(date(year, 10, 1))
    return frozenset(days)


class BankCalendar:
    """Business days (Monday to Friday, not a bank holiday), with configured extra closures."""

    def __init__(self, extra_holidays: Iterable[date] = ()) -> None:
        self._extra = frozenset(extra_holidays)

    def is_business_day(self, day: date) -> bool:
        """True when banks settle on ``day``."""
        return (
            day.weekday() < 5
            and day not in self._extra
            and day not in mexican_bank_holidays(day.year)
        )

    def roll_forward(self, day: date) -> date:
        """``day`` itself if it is a business day, else the next one."""
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def pay_day(self, day: date, lag: int) -> date:
        """The payout day of a settlement day: lag 0 rolls forward, lag n is the n-th business
        day strictly after ``day`` (so Friday, Saturday and Sunday all pay on Monday at lag 1)."""
        if lag <= 0:
            return self.roll_forward(day)
        for _ in range(lag):
            day = self.roll_forward(day + timedelta(days=1))
        return day
