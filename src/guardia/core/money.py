"""Money as integer minor units (centavos) plus an ISO 4217 currency code."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of one currency; never a float."""

    cents: int
    currency: str = "MXN"

    def __post_init__(self) -> None:
        if not isinstance(self.cents, int) or isinstance(self.cents, bool):
            raise TypeError("Money.cents must be an int")
        if len(self.currency) != 3 or not self.currency.isupper():
            raise ValueError(f"not an ISO 4217 currency code: {self.currency!r}")

    def to_decimal(self) -> Decimal:
        """Return the amount in major units (pesos) as an exact Decimal."""
        return (Decimal(self.cents) / 100).quantize(Decimal("0.01"))

    @classmethod
    def from_decimal(cls, amount: Decimal | str, currency: str = "MXN") -> Money:
        """Build money from a decimal amount in major units, refusing sub-cent precision."""
        value = Decimal(amount)
        cents = value * 100
        if cents != cents.to_integral_value():
            raise ValueError(f"amount has more than two decimals: {amount}")
        return cls(int(cents), currency)
