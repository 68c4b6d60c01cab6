"""Hop 2 of a payout: which Conekta charges, net of fees, a Conekta transfer paid out.

Conekta exposes no transfer → charges link, so it is inferred per account, transfers in time order
(docs/reconciliation.md §1.5, §6.1 pass 3(b)). For a transfer with cut-off ``c_k`` after a
previous cut-off ``c_{k-1}``:

1. **anchored window**: the unclaimed charges paid in ``(c_{k-1}, c_k]`` plus any charges the
   previous transfer explicitly left out. If their nets sum to the transfer amount: done
   (``contiguous`` when nothing was carried over, else ``subset``).
2. **longer contiguous run**: the run that ends at the cut-off and starts at or before the window,
   reaching back at most ``lookback`` over unclaimed charges (a previous payout that was never
   explained, or charges older than the data). Its sum is monotone in the start, so at most one
   run fits; it is still refused when a charge just outside its start has the same net as a
   member just inside (swapping them explains the payout equally well).
3. **bounded subset-sum at the boundaries** (meet-in-the-middle): charges paid within
   ``straddle_window`` before ``c_k`` may have settled in the next payout (subtract), and charges
   of an unexplained previous payout paid within ``straddle_window`` before ``c_{k-1}`` may have
   settled in this one (add). At most ``max_candidates`` candidates, ``max_members`` members and
   ``max_work`` enumerated subsets; a second distinct solution means ``ambiguous``.

Anything else is ``unexplained``, with the residual and the closest subsets as evidence. The
boundary windows are kept narrow on purpose: the more subsets there are, the likelier a refund
residual is hit by chance, and a wrong explanation is worse than an exception.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from guardia.recon.model import PayoutConfig

Status = Literal["contiguous", "subset", "unexplained", "ambiguous"]
MICROS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Charge:
    """A Conekta charge as the payout search sees it."""

    entry_id: str
    account: str
    at_us: int
    net_cents: int


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

    ``members`` are the charges it explains (empty unless ``contiguous``/``subset``);
    ``attributed`` are the charges that would have been its own when it is not explained.
    """

    transfer_id: str
    status: Status
    members: tuple[str, ...]
    attributed: tuple[str, ...]
    residual_cents: int
    evidence: str


def _subsets(
    items: Sequence[tuple[int, int]], max_members: int
) -> list[tuple[int, tuple[int, ...]]]:
    """All (sum, indexes) of subsets of ``items`` with at most ``max_members`` members."""
    out: list[tuple[int, tuple[int, ...]]] = [(0, ())]
    for index, value in items:
        out += [(total + value, (*ids, index)) for total, ids in out if len(ids) < max_members]
    return out


def subset_sum(
    items: Sequence[tuple[int, int]],
    target: int,
    *,
    max_members: int,
    max_work: int,
    keep_closest: int = 3,
) -> tuple[list[frozenset[int]], list[tuple[int, tuple[int, ...]]], bool]:
    """Find up to two distinct non-empty subsets of (id, value) items summing to ``target``.

    Meet-in-the-middle over two halves. Returns (solutions, closest (residual, ids), exhausted);
    ``exhausted`` is true when ``max_work`` would be exceeded, and then nothing is searched.
    """
    half = len(items) // 2
    left_items, right_items = items[:half], items[half:]
    work = sum(
        math.comb(len(part), k)
        for part in (left_items, right_items)
        for k in range(min(max_members, len(part)) + 1)
    )
    if work > max_work:
        return [], [], True
    left = _subsets(left_items, max_members)
    right = _subsets(right_items, max_members)
    right.sort()
    right_sums = [value for value, _ in right]
    found: list[frozenset[int]] = []
    near: list[tuple[int, tuple[int, ...]]] = []
    for value, ids in left:
        need = target - value
        at = bisect.bisect_left(right_sums, need)
        while at < len(right) and right_sums[at] == need:
            other = right[at][1]
            if ids or other:
                chosen = frozenset(ids + other)
                if len(chosen) <= max_members and chosen not in found:
                    found.append(chosen)
                    if len(found) == 2:
                        return found, [], False
            at += 1
        for probe in (at - 1, at):
            if 0 <= probe < len(right) and (ids or right[probe][1]):
                ids_all = ids + right[probe][1]
                if len(ids_all) <= max_members:
                    near.append((abs(need - right_sums[probe]), tuple(sorted(ids_all))))
    return found, sorted(set(near))[:keep_closest], False


class _Account:
    """Sequential hop-2 state for one account."""

    def __init__(self, charges: list[Charge], config: PayoutConfig) -> None:
        self.charges = sorted(charges, key=lambda c: (c.at_us, c.entry_id))
        self.ats = [c.at_us for c in self.charges]
        self.config = config
        self.claimed: set[int] = set()
        self.carry: list[int] = []  # left out by the previous explained transfer: must come now
        self.optional: list[int] = []  # tail of the previous unexplained transfer: may come now
        self.pos = 0
        self.prev_cut: int | None = None
        self.attributed: dict[int, str] = {}

    def explain(self, transfer: Transfer) -> PayoutOutcome:
        """Explain one transfer (the next one in time order for this account)."""
        config = self.config
        cut = transfer.at_us
        lookback = int(config.lookback.total_seconds() * MICROS)
        straddle = int(config.straddle_window.total_seconds() * MICROS)
        start = bisect.bisect_right(self.ats, cut - lookback) if self.prev_cut is None else self.pos
        start = max(start, self.pos)
        end = bisect.bisect_right(self.ats, cut)
        window = [i for i in range(start, end) if i not in self.claimed]
        base = [i for i in self.carry if i not in self.claimed] + window
        residual = transfer.amount_cents - self._sum(base)
        members: list[int] | None = None
        status: Status = "unexplained"
        evidence: dict[str, object] = {}
        if residual == 0 and base:
            members, status = base, "contiguous" if not self.carry else "subset"
        if members is None and not self.carry:
            members = self._longer_run(transfer, window, end, cut - lookback, straddle)
            if members is not None:
                status = "contiguous"
        if members is None:
            plus = [i for i in self.optional if i not in self.claimed and i not in base]
            plus = plus[-config.max_candidates // 2 :] if plus else []
            minus = [i for i in window if self.charges[i].at_us > cut - straddle]
            room = config.max_candidates - len(plus)
            minus = minus[-room:] if room > 0 else []
            items = [(i, self.charges[i].net_cents) for i in plus]
            items += [(i, -self.charges[i].net_cents) for i in minus]
            found, closest, exhausted = subset_sum(
                items,
                residual,
                max_members=config.max_members,
                max_work=config.max_work,
                keep_closest=config.evidence_subsets,
            )
            if len(found) == 1:
                chosen = found[0]
                members = [i for i in base if i not in chosen] + [i for i in plus if i in chosen]
                status = "subset"
                self._finish(members, carry=[i for i in minus if i in chosen], end=end, cut=cut)
                return self._outcome(transfer, status, members, [], 0, evidence)
            status = "ambiguous" if len(found) > 1 else "unexplained"
            evidence = {
                "residual_cents": residual,
                "window_charges": len(base),
                "window_net_cents": self._sum(base),
                "search": "too_large" if exhausted else "bounded_subset_sum",
                "solutions": [self._ids(sorted(s)) for s in found],
                "closest_subsets": [
                    {"residual_cents": gap, "charge_ids": self._ids(ids)} for gap, ids in closest
                ],
            }
            attributed = [i for i in base if i not in self.claimed]
            for i in attributed:
                self.attributed[i] = transfer.entry_id
            self._pass_over(end, cut, window, straddle)
            return self._outcome(transfer, status, [], attributed, residual, evidence)
        self._finish(members, carry=[], end=end, cut=cut)
        return self._outcome(transfer, status, members, [], 0, evidence)

    def _longer_run(
        self, transfer: Transfer, window: list[int], end: int, floor: int, straddle: int
    ) -> list[int] | None:
        """A run ending at the cut-off that reaches back past the window, if exactly one fits.

        A run is refused when a charge just outside its start has the same net as a member just
        inside it: swapping the two gives another explanation with the same sum.
        """
        total = self._sum(window)
        if total >= transfer.amount_cents:
            return None
        run = list(window)
        first = window[0] if window else end
        hits: list[list[int]] = []
        for i in range(first - 1, -1, -1):
            if self.charges[i].at_us <= floor:
                break
            if i in self.claimed:
                continue
            total += self.charges[i].net_cents
            run.append(i)
            if total == transfer.amount_cents:
                hits.append(sorted(run))
        if len(hits) != 1 or self._swappable(hits[0], end, straddle):
            return None
        return hits[0]

    def _swappable(self, members: list[int], end: int, straddle: int) -> bool:
        start_at = self.charges[members[0]].at_us
        inside = set(members)
        zone = range(
            bisect.bisect_right(self.ats, start_at - straddle),
            min(end, bisect.bisect_right(self.ats, start_at + straddle)),
        )
        nets_in = {self.charges[i].net_cents for i in zone if i in inside}
        nets_out = {
            self.charges[i].net_cents for i in zone if i not in inside and i not in self.claimed
        }
        return bool(nets_in & nets_out)

    def _finish(self, members: list[int], *, carry: list[int], end: int, cut: int) -> None:
        self.claimed.update(members)
        for i in members:
            self.attributed.pop(i, None)
        self.carry = carry
        self.optional = []
        self.pos = max(self.pos, end)
        self.prev_cut = cut

    def _pass_over(self, end: int, cut: int, window: list[int], straddle: int) -> None:
        """Move past an unexplained transfer, keeping its tail as optional carry."""
        self.carry = []
        self.optional = [i for i in window if self.charges[i].at_us > cut - straddle]
        self.pos = max(self.pos, end)
        self.prev_cut = cut

    def unsettled(self) -> list[str]:
        """Return the charges neither claimed nor attributed to any transfer."""
        return [
            charge.entry_id
            for i, charge in enumerate(self.charges)
            if i not in self.claimed and i not in self.attributed
        ]

    def _sum(self, indexes: Iterable[int]) -> int:
        return sum(self.charges[i].net_cents for i in indexes)

    def _ids(self, indexes: Iterable[int]) -> list[str]:
        return sorted(self.charges[i].entry_id for i in indexes)

    def _outcome(
        self,
        transfer: Transfer,
        status: Status,
        members: list[int],
        attributed: list[int],
        residual: int,
        evidence: dict[str, object],
    ) -> PayoutOutcome:
        return PayoutOutcome(
            transfer_id=transfer.entry_id,
            status=status,
            members=tuple(self._ids(members)),
            attributed=tuple(self._ids(attributed)),
            residual_cents=residual,
            evidence=json.dumps(evidence, sort_keys=True),
        )


@dataclass(frozen=True, slots=True)
class PayoutReport:
    """Hop-2 outcomes per transfer, and the charges no transfer accounts for."""

    outcomes: tuple[PayoutOutcome, ...]
    unsettled: tuple[str, ...]
    attributed: dict[str, str]


def explain_payouts(
    charges: Sequence[Charge], transfers: Sequence[Transfer], config: PayoutConfig
) -> PayoutReport:
    """Explain every transfer by charges, per account, in time order (deterministic)."""
    outcomes: list[PayoutOutcome] = []
    unsettled: list[str] = []
    attributed: dict[str, str] = {}
    accounts = sorted({c.account for c in charges} | {t.account for t in transfers})
    for account in accounts:
        state = _Account([c for c in charges if c.account == account], config)
        ordered = sorted(
            (t for t in transfers if t.account == account), key=lambda t: (t.at_us, t.entry_id)
        )
        for transfer in ordered:
            outcomes.append(state.explain(transfer))
        unsettled.extend(state.unsettled())
        for i, transfer_id in state.attributed.items():
            if i not in state.claimed:
                attributed[state.charges[i].entry_id] = transfer_id
    return PayoutReport(tuple(outcomes), tuple(sorted(unsettled)), attributed)
