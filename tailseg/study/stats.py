"""A study's numbers: each row's mean ± spread over seeds, its difference to the previous row and
whether that difference is real (larger than the seed spread) and goes the report's way.

Rules (the README's "Ablations" section states them for readers):

- spread = the sample standard deviation over seeds (n - 1); one seed has none.
- Δ = the mean over the seeds both rows ran of (this row - the previous row): the seeds pair up,
  as both rows train from the same seed's initial weights and data order.
- a Δ no larger than the larger of the two rows' spreads is "within noise", never a win; with
  fewer than 2 seeds in either row there is no noise estimate and no verdict.
- the report agrees when our Δ is real and has the sign of the report's Δ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    """One row × metric: per-seed values (seed → value, in percent)."""

    values: dict[int, float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return sum(self.values.values()) / self.n if self.values else None

    @property
    def sd(self) -> float | None:
        if self.n < 2:
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values.values()) / (self.n - 1))


@dataclass(frozen=True)
class Step:
    """The difference of a row to the previous one, for one metric."""

    delta: float | None  # paired mean difference over common seeds
    seeds: int  # how many seeds pair up
    noise: float | None  # the larger of the two rows' spreads
    verdict: str  # "higher", "lower", "within noise", "no noise estimate" or "—"
    report_delta: float | None
    agreement: str  # "agrees", "disagrees", "within noise", "—"


def step(prev: Cell, cur: Cell, report_prev: float | None, report_cur: float | None) -> Step:
    common = sorted(set(prev.values) & set(cur.values))
    report_delta = (
        None if report_prev is None or report_cur is None else round(report_cur - report_prev, 6)
    )
    if not common:
        return Step(None, 0, None, "—", report_delta, "—")
    delta = sum(cur.values[s] - prev.values[s] for s in common) / len(common)
    if prev.sd is None or cur.sd is None:
        return Step(delta, len(common), None, "no noise estimate", report_delta, "—")
    noise = max(prev.sd, cur.sd)
    if abs(delta) <= noise:
        verdict = "within noise"
        agreement = "within noise"
    else:
        verdict = "higher" if delta > 0 else "lower"
        if report_delta is None or report_delta == 0:
            agreement = "—"
        else:
            agreement = "agrees" if (delta > 0) == (report_delta > 0) else "disagrees"
    return Step(delta, len(common), noise, verdict, report_delta, agreement)


def fmt(cell: Cell) -> str:
    """ "12.3 ± 0.4" (one seed: "12.3", no seeds: "—")."""
    if cell.mean is None:
        return "—"
    return f"{cell.mean:.1f}" if cell.sd is None else f"{cell.mean:.1f} ± {cell.sd:.1f}"
