"""What the runs mean: medians, spread, whether timings can be trusted, and
paired comparisons with a bootstrap interval of the ratio of medians.

Busy-poll timings under TCG (or on a shared host) are bimodal or spread
2-8x: every summary and comparison carries a ``trust`` word for that.
"""
from __future__ import annotations

import random
import statistics

from .results import Comparison, RunRecord, Summary


def trust(values: list[float]) -> str:
    """Can a median of these runs be believed?

    "bimodal": the sorted runs split at a gap wider than half the median
    into two groups of at least two runs each (busy-poll ringtest under TCG
    does this); "spread": (max - min) / median above 20 %.
    """
    if len(values) < 2:
        return "ok"
    v = sorted(values)
    med = statistics.median(v)
    if med <= 0:
        return "ok"
    if len(v) >= 4:
        gaps = [(v[i + 1] - v[i], i) for i in range(len(v) - 1)]
        gap, i = max(gaps)
        if gap > 0.5 * med and i + 1 >= 2 and len(v) - i - 1 >= 2:
            return "bimodal"
    if (v[-1] - v[0]) / med > 0.2:
        return "spread"
    return "ok"


def iqr(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[2] - q[0]


def summarise(records: list[RunRecord], variants: list[str] | None = None,
              sides: list[str] | None = None) -> list[Summary]:
    order = variants or sorted({r.variant for r in records})
    side_order = sides or list(dict.fromkeys(r.side for r in records))
    out = []
    for v in order:
        for side in side_order:
            rs = [r for r in records if r.variant == v and r.side == side]
            if not rs:
                continue
            ok = [r.wall_s for r in rs if r.status == 0]
            names = sorted({k for r in rs if r.status == 0 for k in r.counters})
            counters = {k: statistics.median([r.counters[k] for r in rs if r.status == 0 and k in r.counters])
                        for k in names}
            out.append(Summary(v, side, len(rs), len(rs) - len(ok),
                               statistics.median(ok) if ok else None, min(ok) if ok else None,
                               max(ok) if ok else None, iqr(ok), trust(ok) if ok else "failed", counters,
                               sorted({r.status for r in rs if r.status != 0})))
    return out


def bootstrap_ratio(a: list[float], b: list[float], *, rounds: int = 2000, seed: int = 1) -> tuple[float, float]:
    """95 % interval of median(a) / median(b) by resampling each side."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(rounds):
        ma = statistics.median(rng.choices(a, k=len(a)))
        mb = statistics.median(rng.choices(b, k=len(b)))
        if mb > 0:
            ratios.append(ma / mb)
    ratios.sort()
    return ratios[int(0.025 * (len(ratios) - 1))], ratios[int(0.975 * (len(ratios) - 1))]


def compare(records_a: list[RunRecord], records_b: list[RunRecord], a: str, b: str,
            variants: list[str] | None = None, counter: str | None = None) -> list[Comparison]:
    """Median wall time (or ``counter``, where a run printed it) of a against b, per variant."""
    order = variants or list(dict.fromkeys([r.variant for r in records_a] + [r.variant for r in records_b]))

    def values(records, v):
        return [r.wall_s if counter is None else r.counters[counter] for r in records
                if r.variant == v and r.status == 0 and (counter is None or counter in r.counters)]

    out = []
    for v in order:
        xa, xb = values(records_a, v), values(records_b, v)
        if not xa or not xb:
            out.append(Comparison(v, a, b, None, None, None, "failed" if (xa or xb) else "missing"))
            continue
        ratio = statistics.median(xa) / statistics.median(xb)
        lo, hi = bootstrap_ratio(xa, xb)
        t = "ok"
        for vals in (xa, xb):
            if trust(vals) != "ok":
                t = trust(vals)
        out.append(Comparison(v, a, b, ratio, lo, hi, t))
    return out
