"""Speaker similarity S(gen, ref) and the resilience/leakage arithmetic of METHOD §6."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np


def centroid(embeddings: np.ndarray) -> np.ndarray:
    """L2-normalised mean of (already normalised) embeddings ``[N, D]``."""
    if len(embeddings) == 0:
        raise ValueError("a reference set needs at least one embedding")
    c = np.asarray(embeddings, dtype=np.float64).mean(0)
    return c / np.linalg.norm(c)


def cosine_to(embeddings: np.ndarray, ref_centroid: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``embeddings`` with the centroid."""
    e = np.asarray(embeddings, dtype=np.float64)
    return e @ ref_centroid / np.linalg.norm(e, axis=1)


def similarity(gen: np.ndarray, ref: np.ndarray) -> float:
    """S(gen, ref): mean over generated utterances of the cosine to the reference centroid."""
    return float(cosine_to(gen, centroid(ref)).mean())


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the two-sided t confidence interval, n); half-width is NaN for n < 2."""
    from scipy import stats

    x = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n < 2:
        return float(x.mean()), math.nan, n
    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


RUN_KEYS = ("loss", "step", "seed", "pair")


def resilience_rows(runs: Iterable[dict]) -> list[dict]:
    """Add R = S_T(p) - S_T(0) and L = S_C(p) - S_C(0) to every run that has a p = 0 partner.

    Runs are dicts with ``loss, p, step, seed, pair, S_T, S_C``; the partner is the run with the same
    loss, step, seed and pair at p = 0. Runs without one get NaN.
    """
    runs = list(runs)
    clean = {tuple(r[k] for k in RUN_KEYS): r for r in runs if float(r["p"]) == 0.0}
    out = []
    for r in runs:
        base = clean.get(tuple(r[k] for k in RUN_KEYS))
        row = dict(r)
        row["R"] = float(r["S_T"]) - float(base["S_T"]) if base else math.nan
        row["L"] = float(r["S_C"]) - float(base["S_C"]) if base else math.nan
        out.append(row)
    return out


def aggregate(rows: Iterable[dict], metrics: Sequence[str] = ("S_T", "S_C", "R", "L"),
              by: Sequence[str] = ("loss", "p", "step"), level: float = 0.95) -> list[dict]:
    """Mean and CI half-width of each metric over seeds and pairs, per (loss, p, step)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in by)].append(r)
    out = []
    for key in sorted(groups, key=lambda k: tuple((str(type(v)), v) for v in k)):
        g = groups[key]
        row = dict(zip(by, key))
        for m in metrics:
            mean, half, n = t_interval([float(r[m]) for r in g], level)
            row[m], row[f"{m}_ci"] = mean, half
            row[f"{m}_n"] = n
        row["n"] = len(g)
        out.append(row)
    return out
