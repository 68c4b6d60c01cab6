"""Seeded synthetic reconciliation data with ground truth (docs/reconciliation.md §8).

``generate(lines, seed, noise)`` is a pure function of its arguments. It builds one world of
economic events and renders it three ways:

- **bank** (NEON): ``STATEMENT_SCHEMA`` lines in two dialects (BBVA-like ``1,234.56`` with signed
  cargos, Banorte-like ``$1,234.56``), with a running balance;
- **ledger**: ``LEDGER_SCHEMA`` rows: Odoo moves for direct bank movements, Conekta charges
  (gross ``amount_cents`` and ``fee_cents`` = commission + 16 % IVA) and Conekta transfers
  (payouts the next business morning, ``reference`` = ``statement_reference``), refunds and
  chargebacks (negative ``amount_cents``);
- **truth**: ``TRUTH_SCHEMA``, one row per bank line plus one per ledger entry that must end as
  an exception, each with the expected outcome and its noise labels.

World, per default ``WorldConfig``:

- direct bank movements, each booked once in Odoo: SPEI received (clave de rastreo in the
  reference column, referencia numérica in the concept), SPEI sent (loan disbursements),
  CIE cash deposits (20-digit reference) and cash deposits without any reference;
- Conekta charges (card 60 %, SPEI 25 %, cash 15 %), refunds and chargebacks, paid out into the
  first company account the next bank business morning for the previous local days (weekend
  and CNBV holidays roll forward, ``bank_calendar``); the transfer appears on the statement as
  ``SPEI RECIBIDO STP CONEKTA <statement_reference>``;
- bank-only lines: commission + IVA pairs and out-of-scope debits (payroll, rent, suppliers).

Labels are the ``Noise`` values; ``mangled_ref`` rows also carry ``mangled_ref:<operation>``
(``case``, ``spaces``, ``dashes``, ``zeros``, ``truncated_10``, ``truncated_16``, ``concept``,
``ocr``, ``conekta_label``). Truth ``expected`` is ``"match"`` (the line must be auto-matched to
exactly ``ledger_ids``) or an exception reason (``guardia.recon.model.Reason``); a payout row's
``hop2_ids`` are the settlement entries it must be explained by (hop 2), the rest of its
``ledger_ids`` is its transfer (hop 1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Final

import polars as pl

from guardia.core.clock import MEXICO_CITY
from guardia.recon.bank_calendar import BankCalendar
from guardia.recon.model import LEDGER_SCHEMA, STATEMENT_SCHEMA, Reason
from guardia.recon.normalize import BANKS, clabe_check_digit

TRUTH_SCHEMA = pl.Schema(
    {
        "bank_line_id": pl.String(),
        "ledger_ids": pl.List(pl.String()),
        "expected": pl.String(),
        "labels": pl.List(pl.String()),
        "kind": pl.String(),
        "hop2_ids": pl.List(pl.String()),
    }
)

MATCH: Final = "match"
SPIKES_CENTS: Final = (10_000, 20_000, 25_000, 50_000, 100_000, 150_000, 200_000, 500_000)
FIRST_NAMES: Final = ("ANA", "LUIS", "MARIA", "JOSE", "SOFIA", "CARLOS", "LAURA", "JORGE")
LAST_NAMES: Final = ("LOPEZ", "GARCIA", "HERNANDEZ", "MARTINEZ", "PEREZ", "SANCHEZ", "RAMIREZ")
RASTREO_PREFIXES: Final = ("MBAN01", "BNET01", "SANT", "BNTE", "HSBC", "NU")
CIE_AGREEMENT: Final = "2409992"
SECONDS_PER_DAY: Final = 86_400
MICROS: Final = 1_000_000


class Noise(StrEnum):
    """Noise labels carried by truth rows."""

    FEE = "fee"
    BATCHING = "batching"
    MANGLED_REF = "mangled_ref"
    UNIT_SWAP = "unit_swap"
    TZ_SHIFT = "tz_shift"
    NEXT_BUSINESS_DAY = "next_business_day"
    DUPLICATE_REIMPORT = "duplicate_reimport"
    GENUINE_REPEAT = "genuine_repeat"
    MISSING_IN_BANK = "missing_in_bank"
    MISSING_IN_LEDGER = "missing_in_ledger"
    REFUND = "refund"
    CUTOFF_STRADDLE = "cutoff_straddle"
    AMOUNT_NOISE = "amount_noise"
    PARTIAL_PAYMENT = "partial_payment"
    RETENTION = "retention"
    BANK_FEE = "bank_fee"
    OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True, slots=True)
class NoiseConfig:
    """Rates of each noise operator; ``fees`` toggles Conekta commission + IVA.

    Rates are per direct event unless noted: ``refund`` is per charge (a refund or, one time in
    five, a lost chargeback, netted in the payout of its own day), ``retention`` per payout (an
    amount withheld that nothing in the data explains), ``cutoff_straddle`` per charge paid in
    the 30 minutes before midnight that Conekta settles a payout later, ``tz_shift`` per event
    booked between 18:00 and 23:59 local time (the only ones a UTC date moves); ``bank_fee``
    (a commission + IVA pair of debits) and ``out_of_scope`` (payroll, rent, suppliers) add
    statement lines with no ledger entry.
    """

    fees: bool = True
    mangled_ref: float = 0.05
    unit_swap: float = 0.001
    tz_shift: float = 0.03
    next_business_day: float = 0.03
    duplicate_reimport: float = 0.005
    genuine_repeat: float = 0.001
    missing_in_bank: float = 0.005
    missing_in_ledger: float = 0.005
    refund: float = 0.02
    cutoff_straddle: float = 0.02
    amount_noise: float = 0.002
    partial_payment: float = 0.001
    retention: float = 0.02
    bank_fee: float = 0.01
    out_of_scope: float = 0.02

    @classmethod
    def none(cls) -> NoiseConfig:
        """Return a clean world: no fees and no noise."""
        rates: dict[str, Any] = {f.name: 0.0 for f in fields(cls) if f.name != "fees"}
        return cls(fees=False, **rates)

    @classmethod
    def only(cls, label: Noise | str, rate: float = 0.05) -> NoiseConfig:
        """Return a world with a single noise operator on (``fee``/``batching`` need no rate)."""
        label = Noise(label)
        clean = cls.none()
        if label is Noise.FEE:
            return replace(clean, fees=True)
        if label is Noise.BATCHING:
            return clean
        change: dict[str, Any] = {label.value: rate}
        return replace(clean, **change)


@dataclass(frozen=True, slots=True)
class WorldConfig:
    """Shape of the synthetic world (not noise)."""

    start: date = date(2025, 4, 14)  # Holy week: Thursday and Friday are bank holidays
    lines_per_day: int = 2_700
    min_days: int = 8
    charges_per_line: float = 0.06
    payout_time: time = time(7, 0)  # transfers are created between 07:00 and 11:00 local
    lag: int = 1  # payout on the next bank business day
    extra_holidays: tuple[date, ...] = ()
    straddle_minutes: int = 30
    refless_share: float = 0.03
    direct_mix: tuple[tuple[str, int], ...] = (("spei_in", 60), ("spei_out", 20), ("cash_in", 17))
    channel_mix: tuple[tuple[str, int], ...] = (("card", 60), ("spei", 25), ("cash", 15))
    fee_rates: tuple[tuple[str, int, int], ...] = (("card", 360, 300), ("spei", 0, 1250))
    cash_fee: tuple[int, int] = (390, 0)


@dataclass(frozen=True, slots=True)
class SyntheticSet:
    """A generated statement, ledger and truth table."""

    statement: pl.DataFrame
    ledger: pl.DataFrame
    truth: pl.DataFrame
    accounts: tuple[str, ...] = field(default=())


def make_clabe(rng: random.Random, bank_code: str | None = None) -> str:
    """Return a random CLABE with a valid check digit."""
    code = bank_code or rng.choice(sorted(BANKS))
    body = f"{code}{rng.randrange(1000):03d}{rng.randrange(10**11):011d}"
    return body + str(clabe_check_digit(body))


def _pesos(cents: int, dialect: int) -> str:
    text = f"{abs(cents) // 100:,}.{abs(cents) % 100:02d}"
    if dialect == 1:
        text = "$" + text
    return "-" + text if cents < 0 else text


def _amount(rng: random.Random) -> int:
    if rng.random() < 0.08:
        return rng.choice(SPIKES_CENTS)
    low = 10 ** rng.randrange(3, 7)
    return rng.randrange(low, low * 10)


def _fee(world: WorldConfig, channel: str, gross: int) -> int:
    rates = {name: (bp, fixed) for name, bp, fixed in world.fee_rates}
    bp, fixed = rates.get(channel, world.cash_fee)
    base = (gross * bp + 5_000) // 10_000 + fixed
    return base + (base * 16 + 50) // 100


class _World:
    """Mutable accumulator for one generation run (kept private: ``generate`` is the API)."""

    def __init__(self, lines: int, seed: int, noise: NoiseConfig, world: WorldConfig) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
        self.noise = noise
        self.world = world
        self.days = max(world.min_days, -(-lines // world.lines_per_day))
        self.dates = [world.start + timedelta(days=d) for d in range(self.days)]
        self.midnights = [
            int(datetime.combine(d, time(), MEXICO_CITY).timestamp()) for d in self.dates
        ]
        self.accounts = (make_clabe(self.rng, "012"), make_clabe(self.rng, "072"))
        self.bank: list[dict[str, object]] = []
        self.ledger: dict[str, list[object]] = {name: [] for name in LEDGER_SCHEMA.names()}
        self.truth: dict[str, list[object]] = {name: [] for name in TRUTH_SCHEMA.names()}
        self.n_moves = 0
        self.n_lines = 0
        self.used_refs: set[int] = set()

    # ----------------------------------------------------------------------------- helpers
    def chance(self, rate: float) -> bool:
        """Return true with probability ``rate``."""
        return rate > 0 and self.rng.random() < rate

    def next_business_day(self, day: date) -> date:
        """Return the next Monday-to-Friday date after ``day``."""
        day += timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return day

    def instant(self) -> tuple[int, int]:
        """Return (day index, UTC epoch seconds) of a random local time of day."""
        day = self.rng.randrange(self.days)
        pick = self.rng.random()
        if pick < 0.7:
            second = self.rng.randrange(8 * 3600, 18 * 3600)
        elif pick < 0.9:
            second = self.rng.randrange(18 * 3600, SECONDS_PER_DAY)
        else:
            second = self.rng.randrange(0, 8 * 3600)
        return day, self.midnights[day] + second

    def rastreo(self, day: date, prefix: str | None = None) -> str:
        """Return a clave de rastreo: sender prefix, yymmdd, digits (24, 26 or 30 chars)."""
        head = prefix or self.rng.choice(RASTREO_PREFIXES)
        length = self.rng.choice((24, 26, 30))
        body = f"{head}{day:%y%m%d}"
        return body + self.digits(length - len(body))

    def digits(self, count: int) -> str:
        """Return ``count`` random digits."""
        return f"{self.rng.randrange(10**count):0{count}d}"

    def name(self) -> str:
        """Return a payer name."""
        return f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"

    def statement_reference(self) -> str:
        """Return a fresh 7-digit Conekta statement_reference."""
        while True:
            value = self.rng.randrange(1_000_000, 10_000_000)
            if value not in self.used_refs:
                self.used_refs.add(value)
                return str(value)

    def mangle(self, reference: str, concept: str) -> tuple[str | None, str, str]:
        """Damage a reference the way bank exports do: (reference cell, concept, operation)."""
        op = self.rng.choice(("case", "spaces", "dashes", "zeros", "truncate", "concept", "ocr"))
        if op == "zeros" and reference.isdigit():
            if reference.startswith("0"):
                return reference.lstrip("0"), concept, "zeros"
            return "000" + reference, concept, "zeros"
        if op == "truncate" and len(reference) >= 17:
            keep = self.rng.choice((10, 16))
            return reference[:keep], concept, f"truncated_{keep}"
        if op == "concept":
            label = "REF " if reference.isdigit() and len(reference) <= 7 else ""
            return None, f"{concept} {label}{reference}", "concept"
        if op == "ocr" and ("0" in reference or "1" in reference):
            digit = "0" if "0" in reference else "1"
            spots = [i for i, c in enumerate(reference) if c == digit]
            at = self.rng.choice(spots)
            swapped = reference[:at] + {"0": "O", "1": "I"}[digit] + reference[at + 1 :]
            return swapped, concept, "ocr"
        if op == "dashes":
            dashed = "-".join(reference[i : i + 4] for i in range(0, len(reference), 4))
            return dashed, concept, "dashes"
        if op == "spaces":
            spaced = " ".join(reference[i : i + 5] for i in range(0, len(reference), 5))
            return " " + spaced, concept, "spaces"
        return reference.lower(), concept, "case"

    def add_line(
        self,
        account: str,
        epoch: int,
        day: date,
        amount: int,
        concept: str,
        reference: str | None,
    ) -> str:
        """Record a bank line (before rendering) and return its id."""
        self.n_lines += 1
        line_id = f"NEON-{self.n_lines:08d}"
        self.bank.append(
            {
                "line_id": line_id,
                "account": account,
                "epoch": epoch,
                "operation_date": day,
                "concept": concept,
                "reference": reference,
                "amount": amount,
                "copy": False,
                "drop": False,
            }
        )
        return line_id

    def add_ledger(
        self,
        entry_id: str,
        *,
        source: str,
        kind: str,
        account: str,
        amount: int,
        fee: int | None = None,
        epoch: int | None = None,
        booked: date | None = None,
        reference: str | None = None,
        memo: str | None = None,
        channel: str | None = None,
    ) -> None:
        """Append one ledger row."""
        row: dict[str, object] = {
            "entry_id": entry_id,
            "source": source,
            "kind": kind,
            "account": account,
            "amount_cents": amount,
            "fee_cents": fee,
            "occurred_at": None if epoch is None else epoch * MICROS,
            "booked_date": booked,
            "reference": reference,
            "memo": memo,
            "channel": channel,
        }
        for name, value in row.items():
            self.ledger[name].append(value)

    def add_truth(
        self,
        line_id: str | None,
        ledger_ids: list[str],
        expected: str,
        labels: set[str],
        kind: str,
        hop2_ids: list[str] | None = None,
    ) -> None:
        """Append one truth row (``hop2_ids``: the settlement entries a payout line explains)."""
        self.truth["hop2_ids"].append("|".join(sorted(hop2_ids or [])))
        self.truth["bank_line_id"].append(line_id)
        # Joined text, split by polars later: building list columns row by row is slow.
        self.truth["ledger_ids"].append("|".join(sorted(ledger_ids)))
        self.truth["expected"].append(expected)
        self.truth["labels"].append("|".join(sorted(labels)))
        self.truth["kind"].append(kind)

    # ----------------------------------------------------------------------------- direct
    def direct_events(self, count: int) -> None:
        """Generate ``count`` direct bank movements, each booked once in Odoo."""
        kinds = [name for name, _ in self.world.direct_mix]
        weights = [weight for _, weight in self.world.direct_mix]
        for _ in range(count):
            if self.chance(self.noise.bank_fee):
                self.bank_fee_pair()
            if self.chance(self.noise.out_of_scope):
                self.out_of_scope_line()
            if self.rng.random() < self.world.refless_share:
                self.refless_event()
            else:
                self.referenced_event(self.rng.choices(kinds, weights)[0])

    def referenced_event(self, kind: str) -> None:
        """Generate one SPEI in/out or CIE deposit with its noise."""
        rng, noise = self.rng, self.noise
        day_index, epoch = self.instant()
        day = self.dates[day_index]
        account = self.accounts[0] if rng.random() < 0.7 else self.accounts[1]
        amount = _amount(rng)
        payer = self.name()
        if kind == "spei_in":
            clabe = make_clabe(rng)
            ref_num = rng.randrange(1, 10_000_000) if rng.random() < 0.9 else rng.choice((1, 2))
            reference = self.rastreo(day)
            with_clabe = f" {clabe}" if rng.random() < 0.5 else ""
            bank_name = BANKS[clabe[:3]][0]
            concept = f"SPEI RECIBIDO {bank_name}{with_clabe} REF {ref_num:07d} {payer}"
            memo = f"Pago SPEI {payer} REF {ref_num}{with_clabe}"
            ledger_ref: str | None = reference
        elif kind == "spei_out":
            amount = -amount
            clabe = make_clabe(rng)
            reference = self.rastreo(day, "GUARDIA")
            concept = f"SPEI ENVIADO {BANKS[clabe[:3]][0]} {clabe}"
            memo = f"Dispersion credito CR-{rng.randrange(10**6):06d} {payer}"
            ledger_ref = reference
        else:
            reference = "1000" + self.digits(16)
            concept = f"DEPOSITO CIE {CIE_AGREEMENT} {reference}"
            memo = f"Pago en efectivo convenio {CIE_AGREEMENT} {payer}"
            ledger_ref = reference
        labels: set[str] = set()
        fate = self.fate()
        bank_amount, ledger_amount = amount, amount
        if fate is Noise.UNIT_SWAP:
            ledger_amount = amount // 100 if amount % 100 == 0 else amount * 100
        elif fate is Noise.PARTIAL_PAYMENT:
            delta = rng.randrange(max(200, abs(amount) // 50), max(201, abs(amount) // 5))
            ledger_amount = amount + (delta if rng.random() < 0.5 else -delta)
            if ledger_amount == 0 or abs(ledger_amount) * 100 == abs(amount):
                ledger_amount = amount + 777
        elif fate is Noise.AMOUNT_NOISE:
            bank_amount = amount + rng.choice((-1, 1))
        if fate is not None:
            labels.add(fate.value)
        cell: str | None = reference
        if self.chance(noise.mangled_ref):
            cell, concept, op = self.mangle(reference, concept)
            labels.update((Noise.MANGLED_REF.value, f"{Noise.MANGLED_REF.value}:{op}"))
        booked = day
        if epoch - self.midnights[day_index] >= 18 * 3600 and self.chance(noise.tz_shift):
            booked = datetime.fromtimestamp(epoch, UTC).date()
            labels.add(Noise.TZ_SHIFT.value)
        if self.chance(noise.next_business_day):
            booked = self.next_business_day(booked)
            labels.add(Noise.NEXT_BUSINESS_DAY.value)
        self.emit_direct(
            kind,
            account,
            epoch,
            day,
            bank_amount,
            concept,
            cell,
            ledger_amount,
            booked,
            ledger_ref,
            memo,
            fate,
            labels,
        )

    def refless_event(self) -> None:
        """Generate one cash deposit without reference (twice for a genuine repeat)."""
        rng = self.rng
        day_index, epoch = self.instant()
        day = self.dates[day_index]
        account = self.accounts[0] if rng.random() < 0.7 else self.accounts[1]
        amount = _amount(rng)
        concept = f"DEPOSITO EN EFECTIVO SUC {rng.randrange(10_000):04d}"
        memo = "Deposito en efectivo"
        repeat = self.chance(self.noise.genuine_repeat / self.world.refless_share)
        fate = None if repeat else self.fate(referenced=False)
        labels = {fate.value} if fate is not None else set()
        copies = 2 if repeat else 1
        if repeat:
            labels.add(Noise.GENUINE_REPEAT.value)
        for _ in range(copies):
            self.emit_direct(
                "cash_deposit",
                account,
                epoch,
                day,
                amount,
                concept,
                None,
                amount,
                day,
                None,
                memo,
                fate,
                labels,
                expected=Reason.AMBIGUOUS.value if repeat else MATCH,
            )

    def fate(self, *, referenced: bool = True) -> Noise | None:
        """Pick at most one amount-or-presence noise for an event (they do not compose)."""
        noise = self.noise
        options = [
            (Noise.MISSING_IN_BANK, noise.missing_in_bank),
            (Noise.MISSING_IN_LEDGER, noise.missing_in_ledger),
        ]
        if referenced:
            options += [
                (Noise.UNIT_SWAP, noise.unit_swap),
                (Noise.PARTIAL_PAYMENT, noise.partial_payment),
                (Noise.AMOUNT_NOISE, noise.amount_noise),
            ]
        pick = self.rng.random()
        for label, rate in options:
            if pick < rate:
                return label
            pick -= rate
        return None

    def emit_direct(
        self,
        kind: str,
        account: str,
        epoch: int,
        day: date,
        bank_amount: int,
        concept: str,
        cell: str | None,
        ledger_amount: int,
        booked: date,
        ledger_ref: str | None,
        memo: str,
        fate: Noise | None,
        labels: set[str],
        expected: str = MATCH,
    ) -> None:
        """Write the bank line, the Odoo move and the truth rows of one direct event."""
        line_id = self.add_line(account, epoch, day, bank_amount, concept, cell)
        if fate is Noise.MISSING_IN_BANK:
            self.bank[-1]["drop"] = True
        elif self.chance(self.noise.duplicate_reimport):
            self.bank[-1]["copy"] = True
        if fate is Noise.MISSING_IN_LEDGER:
            self.add_truth(line_id, [], Reason.MISSING_IN_LEDGER.value, labels, kind)
            return
        self.n_moves += 1
        move_id = f"odoo-{self.n_moves:08d}"
        self.add_ledger(
            move_id,
            source="odoo",
            kind="move",
            account=account,
            amount=ledger_amount,
            booked=booked,
            reference=ledger_ref,
            memo=memo,
        )
        if fate is Noise.MISSING_IN_BANK:
            self.add_truth(None, [move_id], Reason.MISSING_IN_BANK.value, labels, kind)
        elif fate in (Noise.UNIT_SWAP, Noise.PARTIAL_PAYMENT):
            reason = Reason.UNIT_MISMATCH if fate is Noise.UNIT_SWAP else Reason.AMOUNT_MISMATCH
            self.add_truth(line_id, [move_id], reason.value, labels, kind)
            self.add_truth(None, [move_id], reason.value, labels, kind)
        else:
            self.add_truth(line_id, [move_id], expected, labels, kind)
            if expected != MATCH:
                self.add_truth(None, [move_id], expected, labels, kind)

    # ----------------------------------------------------------------------------- conekta
    def conekta(self, count: int) -> None:
        """Generate charges, refunds and chargebacks, and their payouts.

        Settlement follows the pilot's observed cadence: an entry's settlement day is its local
        date; it is paid out on the next bank business day (weekends and CNBV holidays roll
        forward, so Friday to Sunday land together on Monday), in a transfer created that
        morning. Payouts due after the last statement day are not made (unsettled).
        """
        rng, noise, world = self.rng, self.noise, self.world
        account = self.accounts[0]
        calendar = BankCalendar(world.extra_holidays)
        channels = [name for name, _ in world.channel_mix]
        weights = [weight for _, weight in world.channel_mix]
        end = self.midnights[-1] + SECONDS_PER_DAY
        by_pay_day: dict[date, list[tuple[str, int]]] = {}
        straddled: set[date] = set()
        unsettled: list[str] = []

        def settle(entry_id: str, epoch: int, net: int, *, may_straddle: bool) -> None:
            day = datetime.fromtimestamp(epoch, MEXICO_CITY).date()
            pay = calendar.pay_day(day, world.lag)
            before_midnight = end_of_day(day) - epoch < world.straddle_minutes * 60
            if may_straddle and before_midnight and self.chance(noise.cutoff_straddle):
                later = calendar.pay_day(day + timedelta(days=1), world.lag)
                if later != pay:
                    straddled.update((pay, later))
                    pay = later
            if pay > self.dates[-1]:
                unsettled.append(entry_id)
            else:
                by_pay_day.setdefault(pay, []).append((entry_id, net))

        def end_of_day(day: date) -> int:
            return int(datetime.combine(day + timedelta(days=1), time(), MEXICO_CITY).timestamp())

        charges = sorted((self.instant()[1], n) for n in range(count))
        refunds = 0
        for n, (epoch, _) in enumerate(charges):
            channel = rng.choices(channels, weights)[0]
            gross = _amount(rng)
            fee = _fee(world, channel, gross) if noise.fees else 0
            if fee >= gross:
                gross += fee * 2
            charge_id = f"chg_{n + 1:08d}"
            day = datetime.fromtimestamp(epoch, MEXICO_CITY).date()
            if channel == "spei":
                reference: str | None = self.rastreo(day)
            elif channel == "cash":
                reference = "93000" + self.digits(9)
            else:
                reference = None
            self.add_ledger(
                charge_id,
                source="conekta",
                kind="charge",
                account=account,
                amount=gross,
                fee=fee,
                epoch=epoch,
                reference=reference,
                memo=f"Pago orden ord_{n + 1:08d}",
                channel=channel,
            )
            settle(charge_id, epoch, gross - fee, may_straddle=True)
            later = epoch + rng.randrange(3_600, 3 * SECONDS_PER_DAY)
            if later < end and self.chance(noise.refund):
                refunds += 1
                chargeback = rng.random() < 0.2
                kind = "chargeback" if chargeback else "refund"
                amount = -(gross if rng.random() < 0.5 else rng.randrange(100, gross))
                # A lost chargeback also costs a dispute fee (commission + IVA).
                cb_fee = _fee(world, "card", 0) + 17_400 if chargeback and noise.fees else 0
                entry_id = f"{'cbk' if chargeback else 'rfd'}_{refunds:08d}"
                self.add_ledger(
                    entry_id,
                    source="conekta",
                    kind=kind,
                    account=account,
                    amount=amount,
                    fee=cb_fee,
                    epoch=later,
                    reference=reference,
                    memo=f"{kind} of {charge_id}",
                    channel=channel,
                )
                settle(entry_id, later, amount - cb_fee, may_straddle=False)
        for entry_id in unsettled:
            self.add_truth(
                None, [entry_id], Reason.UNSETTLED_CHARGE.value, {Noise.BATCHING.value}, "charge"
            )
        for pay, group in sorted(by_pay_day.items()):
            created = datetime.combine(pay, world.payout_time, MEXICO_CITY)
            epoch = int(created.timestamp()) + rng.randrange(0, 4 * 3600)
            if sum(net for _, net in group) <= 0:
                # Conekta pays nothing out of a negative window; nothing here explains it.
                for entry_id, _ in group:
                    reason = Reason.UNSETTLED_CHARGE.value
                    self.add_truth(None, [entry_id], reason, {Noise.REFUND.value}, "charge")
                continue
            self.payout(account, epoch, group, straddled=pay in straddled)

    def payout(
        self, account: str, created: int, group: list[tuple[str, int]], *, straddled: bool
    ) -> None:
        """Write one transfer, its bank line and its truth rows."""
        rng, noise = self.rng, self.noise
        total = sum(net for _, net in group)
        labels = {Noise.BATCHING.value}
        if noise.fees:
            labels.add(Noise.FEE.value)
        if any(not entry_id.startswith("chg_") for entry_id, _ in group):
            labels.add(Noise.REFUND.value)
        if straddled:
            labels.add(Noise.CUTOFF_STRADDLE.value)
        retained = total > 4_000 and self.chance(noise.retention)
        amount = total
        if retained:
            amount -= rng.randrange(1_000, min(500_000, total // 2))
            labels.add(Noise.RETENTION.value)
        explained = not (retained or straddled)
        ref = self.statement_reference()
        transfer_id = f"tr_{ref}"
        self.add_ledger(
            transfer_id,
            source="conekta",
            kind="transfer",
            account=account,
            amount=amount,
            epoch=created,
            reference=ref,
            memo=f"Conekta {ref}",
        )
        charge_ids = [charge_id for charge_id, _ in group]
        day = datetime.fromtimestamp(created, MEXICO_CITY).date()
        concept = f"SPEI RECIBIDO STP CONEKTA {ref}"
        if self.chance(noise.missing_in_bank):
            self.add_line(account, created, day, amount, concept, ref)
            self.bank[-1]["drop"] = True
            labels.add(Noise.MISSING_IN_BANK.value)
            self.add_truth(None, [transfer_id], Reason.MISSING_IN_BANK.value, labels, "transfer")
            reason = Reason.PAYOUT_UNMATCHED if explained else Reason.UNEXPLAINED_PAYOUT_RESIDUAL
            for charge_id in charge_ids:
                self.add_truth(None, [charge_id], reason.value, labels, "charge")
            return
        cell: str | None = ref
        if self.chance(noise.mangled_ref):
            labels.add(Noise.MANGLED_REF.value)
            if rng.random() < 0.5:
                cell, concept, op = self.mangle(ref, concept)
            else:
                label = rng.choice(("Conekta ", "CONEKTA", "conekta  ", "Conekta: "))
                concept, cell, op = f"SPEI RECIBIDO STP {label}{ref}", None, "conekta_label"
            labels.add(f"{Noise.MANGLED_REF.value}:{op}")
        line_id = self.add_line(account, created, day, amount, concept, cell)
        if self.chance(noise.duplicate_reimport):
            self.bank[-1]["copy"] = True
        if explained:
            self.add_truth(line_id, [transfer_id, *charge_ids], MATCH, labels, "payout", charge_ids)
        else:
            self.add_truth(line_id, [transfer_id], MATCH, labels, "payout")
            for charge_id in charge_ids:
                unexplained = Reason.UNEXPLAINED_PAYOUT_RESIDUAL.value
                self.add_truth(None, [charge_id], unexplained, labels, "charge")

    # ----------------------------------------------------------------------------- bank only
    def bank_fee_pair(self) -> None:
        """A bank commission and its 16 % IVA, two debits that only explain each other."""
        day_index, epoch = self.instant()
        day = self.dates[day_index]
        account = self.rng.choice(self.accounts)
        commission = self.rng.choice((500, 650, 800, 1_000, 1_250))
        iva = (commission * 16 + 50) // 100
        what = self.rng.choice(("SPEI", "MANEJO DE CUENTA", "TRANSFERENCIA"))
        first = self.add_line(account, epoch, day, -commission, f"COMISION {what}", None)
        second = self.add_line(account, epoch + 1, day, -iva, f"IVA COMISION {what}", None)
        labels = {Noise.BANK_FEE.value}
        self.add_truth(first, [second], MATCH, labels, "bank_fee")
        self.add_truth(second, [first], MATCH, labels, "bank_fee")

    def out_of_scope_line(self) -> None:
        """A company expense the conciliación does not cover: payroll, rent, a supplier."""
        day_index, epoch = self.instant()
        day = self.dates[day_index]
        account = self.rng.choice(self.accounts)
        concept = self.rng.choice(
            (
                "PAGO NOMINA QUINCENAL",
                f"RENTA OFICINA {day:%m/%Y}",
                f"PAGO A PROVEEDOR {self.rng.choice(LAST_NAMES)} SA DE CV",
            )
        )
        line_id = self.add_line(account, epoch, day, -_amount(self.rng), concept, None)
        labels = {Noise.OUT_OF_SCOPE.value}
        self.add_truth(line_id, [], Reason.OUT_OF_SCOPE.value, labels, "out_of_scope")

    # ----------------------------------------------------------------------------- render
    def render_statement(self) -> pl.DataFrame:
        """Render bank lines per account in time order with a running balance."""
        rows: list[dict[str, object]] = []
        ordered = sorted(
            self.bank, key=lambda r: (str(r["account"]), int(str(r["epoch"])), str(r["line_id"]))
        )
        balances = {account: 1_000_000_00 + self.rng.randrange(10**8) for account in self.accounts}
        copies = 0
        for row in ordered:
            account = str(row["account"])
            amount = int(str(row["amount"]))
            balances[account] += amount
            dialect = self.accounts.index(account)
            empty = "-" if dialect == 1 else ""
            debit = _pesos(amount if dialect == 0 else -amount, dialect)
            cargo = debit if amount < 0 else empty
            abono = _pesos(amount, dialect) if amount >= 0 else empty
            rendered = {
                "line_id": row["line_id"],
                "account": account,
                "operation_date": row["operation_date"],
                "concept": row["concept"],
                "reference": row["reference"],
                "cargo": cargo,
                "abono": abono,
                "balance": _pesos(balances[account], dialect),
            }
            if row["drop"]:
                continue
            rows.append(rendered)
            if row["copy"]:
                copies += 1
                copy_id = f"NEON-D{copies:07d}"
                rows.append({**rendered, "line_id": copy_id})
                self.add_truth(
                    copy_id,
                    [],
                    Reason.DUPLICATE_LINE.value,
                    {Noise.DUPLICATE_REIMPORT.value},
                    "copy",
                )
        per_account: dict[str, int] = {}
        for rendered in rows:
            account = str(rendered["account"])
            per_account[account] = per_account.get(account, 0) + 1
            rendered["row_no"] = per_account[account]
        return pl.DataFrame(rows, schema=STATEMENT_SCHEMA)

    def render_ledger(self) -> pl.DataFrame:
        """Render the ledger rows with UTC instants."""
        columns = {
            name: self.ledger[name] for name in LEDGER_SCHEMA.names() if name != "occurred_at"
        }
        frame = pl.DataFrame(
            columns, schema={k: v for k, v in LEDGER_SCHEMA.items() if k in columns}
        )
        instants = pl.Series("occurred_at", self.ledger["occurred_at"], dtype=pl.Int64)
        frame = frame.with_columns(instants.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        return frame.select(pl.col(c).cast(t) for c, t in LEDGER_SCHEMA.items())


def generate(
    lines: int, seed: int, noise: NoiseConfig, *, world: WorldConfig | None = None
) -> SyntheticSet:
    """Generate about ``lines`` statement lines, their ledger entries and the truth table."""
    if lines < 1:
        raise ValueError("lines must be positive")
    state = _World(lines, seed, noise, world or WorldConfig())
    calendar = BankCalendar(state.world.extra_holidays)
    payouts = sum(1 for day in state.dates if calendar.is_business_day(day))
    direct = max(1, lines - payouts)
    state.direct_events(direct)
    state.conekta(max(1, round(direct * state.world.charges_per_line)))
    statement = state.render_statement()
    ledger = state.render_ledger().sort("entry_id")
    as_list = pl.element().filter(pl.element() != "")
    truth = pl.DataFrame(state.truth).select(
        pl.col("bank_line_id").cast(pl.String),
        pl.col("ledger_ids").str.split("|").list.eval(as_list),
        pl.col("expected"),
        pl.col("labels").str.split("|").list.eval(as_list),
        pl.col("kind"),
        pl.col("hop2_ids").str.split("|").list.eval(as_list),
    )
    truth = truth.sort("bank_line_id", pl.col("ledger_ids").list.first(), nulls_last=True)
    return SyntheticSet(statement, ledger, truth, state.accounts)
