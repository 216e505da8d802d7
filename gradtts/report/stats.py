"""Resilience, leakage, adaptation and paired-comparison arithmetic of docs/method.md §7.2 and §8, with t-intervals.

Every function works on *rows*: one dict per scored fine-tuning checkpoint with at least
``arm_id, arm, loss, pair, p, seed, step, S_T, S_C`` (``gradtts.report.cli.collect`` builds them from
``summary.json`` files). Seeds of one (target, intruder) pair share its few-shot set, references and test
noise, so they are not independent draws: the primary interval averages seeds within each pair and takes
the t-interval over pairs (df = n_pairs − 1); the seed-level interval over every pair × seed unit
(df = n − 1) is reported beside it, never instead of it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, NamedTuple, Sequence

import numpy as np

# A fine-tuning run at p = 0 is the clean partner of every run that shares these fields.
PARTNER_KEYS = ("arm_id", "step", "seed", "pair")


class Interval(NamedTuple):
    """Mean and half-width of a two-sided t confidence interval over ``n`` values (``half`` NaN for n < 2)."""

    mean: float
    half: float
    n: int

    @property
    def df(self) -> int:
        """Degrees of freedom of the t quantile (n − 1; 0 when there is no interval)."""
        return max(self.n - 1, 0)


def t_interval(values: Iterable[float], level: float = 0.95) -> Interval:
    """Mean ± t(0.5 + level/2, n − 1)·s/√n over the finite ``values``; NaNs are dropped, not counted."""
    from scipy import stats

    x = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    if n < 2:
        return Interval(float(x.mean()), math.nan, n)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return Interval(float(x.mean()), float(half), n)


def pair_and_seed_intervals(units: Iterable[tuple[str, float]], level: float = 0.95) -> tuple[Interval, Interval]:
    """(pair-level, seed-level) intervals of ``(pair, value)`` units, one unit per pair × seed.

    Pair level: the values of each pair are averaged first (NaNs dropped), then the t-interval is taken
    over the pair means. Seed level: the t-interval over every finite unit.
    """
    by_pair: dict[str, list[float]] = defaultdict(list)
    flat = []
    for pair, v in units:
        if not math.isnan(v):
            by_pair[pair].append(v)
            flat.append(v)
    pair_means = [float(np.mean(vs)) for _, vs in sorted(by_pair.items())]
    return t_interval(pair_means, level), t_interval(flat, level)


def p_key(p) -> float:
    """A corruption level as a comparable key."""
    # Nominal fractions travel through JSON and directory names; 0.3 and 0.30000000000000004 are one level.
    return round(float(p), 6)


def unit_key(r: dict) -> tuple:
    """The unit every paired comparison matches two arms on: (pair, seed, p, step)."""
    return (r["pair"], int(r["seed"]), p_key(r["p"]), int(r["step"]))


def resilience_rows(rows: Iterable[dict]) -> list[dict]:
    """Copies of ``rows`` with R = S_T(p) − S_T(p=0) and L = S_C(p) − S_C(p=0) added.

    The p = 0 partner is the run with the same ``arm_id``, step, seed and pair (so two arms of one loss
    family, e.g. two δ, never share a partner). Rows without a partner get NaN; p = 0 rows get 0.
    """
    rows = list(rows)
    clean = {tuple(r[k] for k in PARTNER_KEYS): r for r in rows if p_key(r["p"]) == 0.0}
    out = []
    for r in rows:
        base = clean.get(tuple(r[k] for k in PARTNER_KEYS))
        row = dict(r)
        row["R"] = float(r["S_T"]) - float(base["S_T"]) if base else math.nan
        row["L"] = float(r["S_C"]) - float(base["S_C"]) if base else math.nan
        out.append(row)
    return out


def adaptation_rows(rows: Iterable[dict], step0: dict[str, dict]) -> list[dict]:
    """Copies of ``rows`` with the adaptation gain A = S_T(run at its step) − S_T(step 0 of its pair).

    ``step0`` maps a pair to its step-0 row (``S_T`` of the base model with the new speaker row, before
    any update). Rows of a pair without a step-0 row get NaN.
    """
    out = []
    for r in rows:
        base = step0.get(r["pair"])
        out.append({**r, "A": float(r["S_T"]) - float(base["S_T"]) if base else math.nan})
    return out


def _ordered_groups(groups: dict[tuple, list[dict]]) -> list[tuple]:
    # Keys mix str/float/int; sort by (type name, value) per position so mixed types never compare.
    return sorted(groups, key=lambda k: tuple((type(v).__name__, v) for v in k))


def aggregate(rows: Iterable[dict], metrics: Sequence[str] = ("S_T", "S_C", "R", "L", "A"),
              level: float = 0.95) -> list[dict]:
    """Per arm × p × step: each metric's pair-level interval and its seed-level one.

    Columns: ``arm, arm_id, loss, p, step, n_runs, n_pairs, n_seeds, p_actual`` and, per metric ``m``,
    ``m, m_ci, m_n, m_df`` (pair level: seeds averaged within pair first) and ``m_seed, m_seed_ci,
    m_seed_n, m_seed_df`` (every pair × seed unit). ``p_actual`` is the mean fraction actually trained
    on (NaN when no summary recorded it).
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["arm_id"], p_key(r["p"]), int(r["step"]))].append(r)
    out = []
    for key in _ordered_groups(groups):
        g = groups[key]
        actual = [float(r["p_actual"]) for r in g if r.get("p_actual") is not None]
        row = {"arm": g[0]["arm"], "arm_id": key[0], "loss": g[0]["loss"], "p": key[1], "step": key[2],
               "n_runs": len(g), "n_pairs": len({r["pair"] for r in g}), "n_seeds": len({r["seed"] for r in g}),
               "p_actual": float(np.mean(actual)) if actual else math.nan}
        for m in metrics:
            pair_ci, seed_ci = pair_and_seed_intervals(((r["pair"], float(r.get(m, math.nan))) for r in g), level)
            row.update({m: pair_ci.mean, f"{m}_ci": pair_ci.half, f"{m}_n": pair_ci.n, f"{m}_df": pair_ci.df,
                        f"{m}_seed": seed_ci.mean, f"{m}_seed_ci": seed_ci.half, f"{m}_seed_n": seed_ci.n,
                        f"{m}_seed_df": seed_ci.df})
        out.append(row)
    out.sort(key=lambda r: (r["arm"], r["p"], r["step"]))
    return out


def arm_order(rows: Iterable[dict], reference: str | None = None) -> list[tuple[str, str]]:
    """``(arm_id, arm)`` of every arm, the reference first, the rest by label.

    The reference is the arm whose label or id equals ``reference``; by default the first arm of the
    ``l2`` loss family (the paper's baseline), else the first arm by label.
    """
    arms = sorted({(r["arm"], r["arm_id"], r["loss"]) for r in rows})
    if not arms:
        return []
    if reference is not None:
        ref = next((a for a in arms if reference in (a[0], a[1])), None)
        if ref is None:
            raise ValueError(f"reference arm {reference!r} is not one of {[a[0] for a in arms]}")
    else:
        ref = next((a for a in arms if a[2] == "l2"), arms[0])
    return [(ref[1], ref[0])] + [(a[1], a[0]) for a in arms if a != ref]


def paired_rows(rows: Iterable[dict], reference: str | None = None, level: float = 0.95) -> list[dict]:
    """ΔR(A, B) = R_A − R_B and ΔL(A, B) = L_A − L_B for every pair of arms, per p > 0 and step.

    Units are (pair, seed) with both arms' R (resp. L) defined at the same p and step. B is the earlier
    arm of :func:`arm_order` (so the reference arm is always B), A the later one. Columns: ``arm_A,
    arm_B, arm_id_A, arm_id_B, p, step`` and, for ``dR`` and ``dL``, the pair-level ``m, m_ci, m_n,
    m_df`` and seed-level ``m_seed, m_seed_ci, m_seed_n, m_seed_df``.
    """
    rows = [r for r in rows if p_key(r["p"]) > 0]
    order = arm_order(rows, reference)
    by_arm: dict[str, dict[tuple, dict]] = defaultdict(dict)
    for r in rows:
        by_arm[r["arm_id"]][unit_key(r)] = r
    out = []
    for i, (id_b, arm_b) in enumerate(order):
        for id_a, arm_a in order[i + 1:]:
            shared = by_arm[id_a].keys() & by_arm[id_b].keys()
            for p, step in sorted({(k[2], k[3]) for k in shared}):
                units = sorted(k for k in shared if (k[2], k[3]) == (p, step))
                row = {"arm_A": arm_a, "arm_B": arm_b, "arm_id_A": id_a, "arm_id_B": id_b, "p": p, "step": step}
                for name, m in (("dR", "R"), ("dL", "L")):
                    diffs = ((k[0], float(by_arm[id_a][k][m]) - float(by_arm[id_b][k][m])) for k in units)
                    pair_ci, seed_ci = pair_and_seed_intervals(diffs, level)
                    row.update({name: pair_ci.mean, f"{name}_ci": pair_ci.half, f"{name}_n": pair_ci.n,
                                f"{name}_df": pair_ci.df, f"{name}_seed": seed_ci.mean,
                                f"{name}_seed_ci": seed_ci.half, f"{name}_seed_n": seed_ci.n,
                                f"{name}_seed_df": seed_ci.df})
                out.append(row)
    return out
