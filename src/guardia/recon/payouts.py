"""Hop 2 of a payout: which Conekta entries, net of fees, a Conekta transfer paid out.

Conekta exposes no transfer → charges link (docs/providers.md §1.6), so it is inferred per
account, transfers in time order. A payout settles **one contiguous settlement window per
payment method**: every capture, refund, chargeback and Conekta fee whose instant falls between
two cut-offs (``model.CutoffRule``; weekends and bank holidays roll forward, ``bank_calendar``).
Nothing else is searched: no arbitrary subsets, because at a thousand charges a day a bounded
subset search finds coincidental sums to the cent (one false match mixed two days).

For a transfer created on payout day ``P``:

1. each rule (a group of payment methods) predicts its window: the settlement days whose payout
   day is ``P``;
2. the candidate windows of a rule are all pairs of its cut-offs within ``lookback_days`` before
   ``P``, ending no later than the transfer's creation, starting no earlier than the end of the
   window its previous explained payout took (or empty: a method may have nothing to pay);
3. the transfer is explained only when **exactly one** combination of windows (one per rule)
   sums to its amount to the cent: ``contiguous`` when that is the predicted one, ``window``
   when another boundary pair (e.g. a previous payout that never came). Windows are told apart
   by the entries they hold, so empty days do not make a payout ambiguous.

Anything else is ``unexplained`` (no window fits) or ``ambiguous`` (several do), with the
predicted window's residual and the closest windows as evidence; the predicted entries are
attributed to it. Cost per transfer: O(B²) windows per rule, B = cut-offs in the lookback;
with several rules, a sum table over all but the last rule (capped by ``max_work``).
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal

from guardia.core.clock import MEXICO_CITY
from guardia.recon.bank_calendar import BankCalendar
from guardia.recon.model import CutoffRule, PayoutConfig

Status = Literal["contiguous", "window", "unexplained", "ambiguous"]
MICROS: Final = 1_000_000
ANY: Final = "*"


@dataclass(frozen=True, slots=True)
class Charge:
    """A Conekta entry a payout nets (capture, refund, chargeback or fee), as hop 2 sees it."""

    entry_id: str
    account: str
    at_us: int
    net_cents: int
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    """A Conekta transfer (payout) as the payout search sees it."""

    entry_id: str
    account: str
    at_us: int
    amount_cents: int


@dataclass(frozen=True, slots=True)
class PayoutOutcome:
    """What hop 2 concluded for one transfer.

    ``members`` are the entries it explains (empty unless ``contiguous``/``window``);
    ``attributed`` are the entries its rules predicted for it when it is not explained.
    """

    transfer_id: str
    status: Status
    members: tuple[str, ...]
    attributed: tuple[str, ...]
    residual_cents: int
    evidence: str


def _local_date(at_us: int) -> date:
    return datetime.fromtimestamp(at_us / MICROS, UTC).astimezone(MEXICO_CITY).date()


def _us(moment: datetime) -> int:
    return int(moment.timestamp()) * MICROS


class Settlement:
    """Settlement days, payout days and cut-off instants under the configured rules."""

    def __init__(self, config: PayoutConfig) -> None:
        self.config = config
        self.calendar = BankCalendar(config.extra_holidays)

    def rule_for(self, account: str, channel: str | None) -> CutoffRule:
        """The first rule that fits the account and the payment method (default: midnight, T+1)."""
        for rule in self.config.rules:
            if rule.account in (ANY, account) and rule.channel in (ANY, channel or ANY):
                return rule
        return CutoffRule()

    @staticmethod
    def cut_us(day: date, rule: CutoffRule) -> int:
        """The instant that closes settlement day ``day`` (its window is the previous day's
        cut-off up to this one, exclusive)."""
        if rule.cutoff == time(0, 0):
            return _us(datetime.combine(day + timedelta(days=1), time(), MEXICO_CITY))
        return _us(datetime.combine(day, rule.cutoff, MEXICO_CITY))

    def payout_day(self, transfer: Transfer) -> date:
        """The bank business day a transfer pays on."""
        return self.calendar.roll_forward(_local_date(transfer.at_us))

    def predicted(self, pay_day: date, rule: CutoffRule) -> tuple[int, int] | None:
        """The [start, end) instants of the settlement days that pay out on ``pay_day``."""
        days = [
            pay_day - timedelta(days=back)
            for back in range(self.config.lookback_days, -1, -1)
            if self.calendar.pay_day(pay_day - timedelta(days=back), rule.lag) == pay_day
        ]
        if not days:
            return None
        return self.cut_us(days[0] - timedelta(days=1), rule), self.cut_us(days[-1], rule)

    def boundaries(self, pay_day: date, rule: CutoffRule) -> list[int]:
        """The rule's cut-offs from ``lookback_days`` before the payout day to its end."""
        return [
            self.cut_us(pay_day - timedelta(days=back), rule)
            for back in range(self.config.lookback_days + 1, -1, -1)
        ]


class _Group:
    """The entries of one account under one rule, in time order, with prefix sums."""

    def __init__(self, rule: CutoffRule, entries: list[Charge]) -> None:
        self.rule = rule
        self.entries = sorted(entries, key=lambda c: (c.at_us, c.entry_id))
        self.ats = [c.at_us for c in self.entries]
        self.prefix = [0, *itertools.accumulate(c.net_cents for c in self.entries)]
        self.floor = 0  # first index a later window may take: what explained payouts left

    def index(self, at_us: int) -> int:
        return bisect.bisect_left(self.ats, at_us)

    def total(self, lo: int, hi: int) -> int:
        return self.prefix[hi] - self.prefix[lo]


Window = tuple[int, int] | None  # index range [lo, hi) in a group; None = nothing of this group
Combo = tuple[Window, ...]


class _Account:
    """Sequential hop-2 state for one account."""

    def __init__(self, account: str, entries: list[Charge], settlement: Settlement) -> None:
        self.settlement = settlement
        by_rule: dict[CutoffRule, list[Charge]] = {}
        for entry in entries:
            by_rule.setdefault(settlement.rule_for(account, entry.channel), []).append(entry)
        rules = [r for r in settlement.config.rules if r in by_rule]
        rules += sorted((r for r in by_rule if r not in rules), key=lambda r: r.name)
        self.groups = [_Group(rule, by_rule[rule]) for rule in rules]
        self.claimed: set[tuple[int, int]] = set()
        self.attributed: dict[tuple[int, int], str] = {}

    def _options(self, group: _Group, pay_day: date, transfer: Transfer) -> list[Window]:
        cuts = [b for b in self.settlement.boundaries(pay_day, group.rule) if b <= transfer.at_us]
        indexes = sorted({max(group.floor, group.index(b)) for b in cuts})
        windows: list[Window] = [None]
        windows += [(lo, hi) for lo, hi in itertools.combinations(indexes, 2)]
        return windows

    def _predicted(self, group: _Group, pay_day: date) -> Window:
        span = self.settlement.predicted(pay_day, group.rule)
        if span is None:
            return None
        lo, hi = max(group.floor, group.index(span[0])), group.index(span[1])
        return (lo, hi) if lo < hi else None

    def _sum(self, combo: Combo) -> int:
        return sum(g.total(*w) for g, w in zip(self.groups, combo, strict=True) if w is not None)

    def explain(self, transfer: Transfer) -> PayoutOutcome:
        """Explain one transfer (the next one in time order for this account)."""
        config = self.settlement.config
        pay_day = self.settlement.payout_day(transfer)
        if not self.groups:
            empty: dict[str, object] = {"payout_day": pay_day.isoformat(), "search": "no_entries"}
            return self._outcome(transfer, "unexplained", [], [], transfer.amount_cents, empty)
        options = [self._options(g, pay_day, transfer) for g in self.groups]
        predicted: Combo = tuple(self._predicted(g, pay_day) for g in self.groups)
        residual = transfer.amount_cents - self._sum(predicted)
        head, last = options[:-1], options[-1]
        work = 1
        for group_options in head:
            work *= len(group_options)
        evidence: dict[str, object] = {
            "payout_day": pay_day.isoformat(),
            "rules": [g.rule.name for g in self.groups],
            "residual_cents": residual,
            "predicted": self._describe(predicted),
        }
        if work * len(last) > config.max_work:
            evidence["search"] = "too_large"
            return self._fail(transfer, "unexplained", predicted, residual, evidence)
        table: dict[int, list[Combo]] = {}
        for partial in itertools.product(*head):
            total = sum(
                g.total(*w) for g, w in zip(self.groups, partial, strict=False) if w is not None
            )
            table.setdefault(total, []).append(partial)
        solutions: list[Combo] = []
        near: list[tuple[int, Combo]] = []
        sums = sorted(table)
        last_group = self.groups[-1]
        for window in last:
            own = last_group.total(*window) if window else 0
            need = transfer.amount_cents - own
            for partial in table.get(need, []):
                combo = (*partial, window)
                if any(w is not None for w in combo):
                    solutions.append(combo)
            at = bisect.bisect_left(sums, need)
            for probe in (at - 1, at):
                if 0 <= probe < len(sums) and sums[probe] != need:
                    combo = (*table[sums[probe]][0], window)
                    if any(w is not None for w in combo):
                        near.append((abs(need - sums[probe]), combo))
        if len(solutions) == 1:
            combo = solutions[0]
            status: Status = "contiguous" if combo == predicted else "window"
            members = self._members(combo)
            self.claimed.update(members)
            for key in members:
                self.attributed.pop(key, None)
            for group, window in zip(self.groups, combo, strict=True):
                if window is not None:
                    group.floor = max(group.floor, window[1])
            return self._outcome(transfer, status, members, [], 0, evidence)
        near.sort(key=lambda item: (item[0], item[1] != predicted))
        evidence["search"] = "window_boundaries"
        evidence["solutions"] = [self._describe(c) for c in solutions[:2]]
        evidence["closest_windows"] = [
            {"gap_cents": gap, **self._describe(c)} for gap, c in near[: config.evidence_windows]
        ]
        status = "ambiguous" if solutions else "unexplained"
        return self._fail(transfer, status, predicted, residual, evidence)

    def _fail(
        self,
        transfer: Transfer,
        status: Status,
        predicted: Combo,
        residual: int,
        evidence: dict[str, object],
    ) -> PayoutOutcome:
        attributed = [key for key in self._members(predicted) if key not in self.claimed]
        for key in attributed:
            self.attributed[key] = transfer.entry_id
        return self._outcome(transfer, status, [], attributed, residual, evidence)

    def _members(self, combo: Combo) -> list[tuple[int, int]]:
        return [
            (g_index, i)
            for g_index, window in enumerate(combo)
            if window is not None
            for i in range(*window)
        ]

    def _describe(self, combo: Combo) -> dict[str, object]:
        """A window by its bounds, size and net (listing a thousand ids helps nobody)."""
        parts = []
        for group, window in zip(self.groups, combo, strict=True):
            if window is None:
                continue
            lo, hi = window
            parts.append(
                {
                    "rule": group.rule.name,
                    "first": group.entries[lo].entry_id,
                    "last": group.entries[hi - 1].entry_id,
                    "entries": hi - lo,
                    "net_cents": group.total(lo, hi),
                }
            )
        return {"windows": parts, "net_cents": self._sum(combo)}

    def unsettled(self) -> list[str]:
        """Return the entries neither claimed nor attributed to any transfer."""
        return [
            entry.entry_id
            for g_index, group in enumerate(self.groups)
            for i, entry in enumerate(group.entries)
            if (g_index, i) not in self.claimed and (g_index, i) not in self.attributed
        ]

    def entry_id(self, key: tuple[int, int]) -> str:
        return self.groups[key[0]].entries[key[1]].entry_id

    def _outcome(
        self,
        transfer: Transfer,
        status: Status,
        members: Iterable[tuple[int, int]],
        attributed: Iterable[tuple[int, int]],
        residual: int,
        evidence: dict[str, object],
    ) -> PayoutOutcome:
        return PayoutOutcome(
            transfer_id=transfer.entry_id,
            status=status,
            members=tuple(sorted(self.entry_id(k) for k in members)),
            attributed=tuple(sorted(self.entry_id(k) for k in attributed)),
            residual_cents=residual,
            evidence=json.dumps(evidence, sort_keys=True),
        )


@dataclass(frozen=True, slots=True)
class PayoutReport:
    """Hop-2 outcomes per transfer, and the entries no transfer accounts for."""

    outcomes: tuple[PayoutOutcome, ...]
    unsettled: tuple[str, ...]
    attributed: dict[str, str]


def explain_payouts(
    charges: Sequence[Charge], transfers: Sequence[Transfer], config: PayoutConfig
) -> PayoutReport:
    """Explain every transfer by settlement windows, per account, in time order."""
    settlement = Settlement(config)
    outcomes: list[PayoutOutcome] = []
    unsettled: list[str] = []
    attributed: dict[str, str] = {}
    accounts = sorted({c.account for c in charges} | {t.account for t in transfers})
    for account in accounts:
        state = _Account(account, [c for c in charges if c.account == account], settlement)
        ordered = sorted(
            (t for t in transfers if t.account == account), key=lambda t: (t.at_us, t.entry_id)
        )
        for transfer in ordered:
            outcomes.append(state.explain(transfer))
        unsettled.extend(state.unsettled())
        for key, transfer_id in state.attributed.items():
            if key not in state.claimed:
                attributed[state.entry_id(key)] = transfer_id
    return PayoutReport(tuple(outcomes), tuple(sorted(unsettled)), attributed)


@dataclass(frozen=True, slots=True)
class Calibration:
    """How many of an account's past transfers one cut-off rule explains exactly."""

    account: str
    rule: CutoffRule
    explained: int
    transfers: int


def candidate_rules(step_minutes: int = 30, max_lag: int = 3) -> list[CutoffRule]:
    """Cut-offs every ``step_minutes`` of the day, each at lags 0..``max_lag`` business days."""
    return [
        CutoffRule(cutoff=time(minute // 60, minute % 60), lag=lag)
        for lag in range(max_lag + 1)
        for minute in range(0, 24 * 60, step_minutes)
    ]


def calibrate(
    charges: Sequence[Charge],
    transfers: Sequence[Transfer],
    config: PayoutConfig,
    candidates: Sequence[CutoffRule] | None = None,
) -> list[Calibration]:
    """Per account, each candidate rule (one for every method) against past transfers.

    A transfer counts as explained when the rule's predicted window, ending no later than the
    transfer was created, nets to its amount to the cent. Best rule first per account.
    """
    settlement = Settlement(config)
    out: list[Calibration] = []
    for account in sorted({t.account for t in transfers}):
        group = _Group(CutoffRule(), [c for c in charges if c.account == account])
        own = [t for t in transfers if t.account == account]
        rows = []
        for rule in candidates or candidate_rules():
            explained = 0
            for transfer in own:
                span = settlement.predicted(settlement.payout_day(transfer), rule)
                if span is None or span[1] > transfer.at_us:
                    continue
                lo, hi = group.index(span[0]), group.index(span[1])
                if lo < hi and group.total(lo, hi) == transfer.amount_cents:
                    explained += 1
            rows.append(Calibration(account, rule, explained, len(own)))
        rows.sort(key=lambda c: (-c.explained, c.rule.lag, c.rule.cutoff))
        out.extend(rows)
    return out
