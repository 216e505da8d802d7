"""Tidy CSV, paper-style markdown tables and the RESULTS.md block of the aggregated results."""

from __future__ import annotations

import csv
import math
import os
from typing import Sequence

BEGIN_MARKER = "<!-- BEGIN GENERATED REPORT (gradtts-report; do not edit between these markers) -->"
END_MARKER = "<!-- END GENERATED REPORT -->"


def read_csv(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def fmt(mean: float, half: float, digits: int = 3) -> str:
    """``mean ± half`` (or the mean alone when the interval is undefined)."""
    if math.isnan(mean):
        return "–"
    return f"{mean:+.{digits}f}" + ("" if math.isnan(half) else f" ± {half:.{digits}f}")


def fmt_interval(mean: float, half: float, n: int, show_n: bool = False, digits: int = 3,
                 signed: bool = True) -> str:
    """A table cell: ``mean ± half`` (with ``(n = …, df = …)`` if ``show_n``), or why there is no interval.

    ``signed`` prints the mean's sign (differences such as R); probabilities such as an AUC go without.
    """
    mean, half, n = float(mean), float(half), int(n)
    if n == 0 or math.isnan(mean):
        return "–"
    value = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    if n == 1 or math.isnan(half):
        # Say it in words: a bare mean reads like a precise value, "± nan" like a bug.
        return f"{value} (n = {n}, no interval)"
    return f"{value} ± {half:.{digits}f}" + (f" (n = {n}, df = {n - 1})" if show_n else "")


def _same_step(rows: Sequence[dict], step) -> list[dict]:
    return [r for r in rows if int(r["step"]) == int(step)]


def markdown_table(agg: Sequence[dict], metric: str, step, ps: Sequence[float] | None = None) -> str:
    """Rows: arm (with its loss family); columns: p; cells: pair-level mean ± CI of ``metric`` at ``step``.

    When every filled cell has the same number of pairs it is said once under the table; otherwise each
    cell carries its own n and df.
    """
    rows = _same_step(agg, step)
    ps = sorted({float(r["p"]) for r in rows}) if ps is None else list(ps)
    cells = {(r["arm"], float(r["p"])): r for r in rows if float(r["p"]) in ps}
    ns = {int(r[f"{metric}_n"]) for r in cells.values() if int(r[f"{metric}_n"]) > 0}
    arms = sorted({(r["arm"], r["loss"]) for r in rows})
    head = "| arm | loss | " + " | ".join(f"p = {p:.2f}" for p in ps) + " |\n" + "|---|---|" + "---|" * len(ps) + "\n"
    body = ""
    for arm, loss in arms:
        vals = []
        for p in ps:
            r = cells.get((arm, p))
            vals.append("–" if r is None else
                        fmt_interval(r[metric], r[f"{metric}_ci"], r[f"{metric}_n"], show_n=len(ns) > 1))
        body += f"| {arm} | {loss} | " + " | ".join(vals) + " |\n"
    caption = f"\nn = {ns.pop()} pairs per cell (df = n − 1).\n" if len(ns) == 1 else ""
    return head + body + caption


def paired_table(paired: Sequence[dict], step) -> str:
    """ΔR and ΔL of every arm pair at ``step``: pair-level and seed-level intervals, each with n and df."""
    rows = _same_step(paired, step)   # kept in the given order: comparisons with the reference arm first
    out = ("| A − B | p | ΔR, pair level | ΔR, seed level | ΔR pair-level CI excludes 0 | ΔL, pair level "
           "| ΔL, seed level |\n|---|---|---|---|---|---|---|\n")
    for r in rows:
        half, mean = float(r["dR_ci"]), float(r["dR"])
        verdict = "–" if math.isnan(half) else ("yes" if abs(mean) > half else "no")
        out += (f"| {r['arm_A']} − {r['arm_B']} | {float(r['p']):.2f} "
                f"| {fmt_interval(r['dR'], r['dR_ci'], r['dR_n'], True)} "
                f"| {fmt_interval(r['dR_seed'], r['dR_seed_ci'], r['dR_seed_n'], True)} | {verdict} "
                f"| {fmt_interval(r['dL'], r['dL_ci'], r['dL_n'], True)} "
                f"| {fmt_interval(r['dL_seed'], r['dL_seed_ci'], r['dL_seed_n'], True)} |\n")
    return out


def ranking_table(agg: Sequence[dict]) -> str:
    """Rows: arm; columns: p × step; cells: AUC and precision@k of the residual ranking, pair-level mean ± CI.

    As in :func:`markdown_table`, a number of pairs shared by every filled cell is said once under the table.
    """
    cols = sorted({(float(r["p"]), int(r["step"])) for r in agg})
    cells = {(r["arm"], float(r["p"]), int(r["step"])): r for r in agg}
    ns = {int(r[f"{m}_n"]) for r in agg for m in ("auc", "precision_at_k") if int(r[f"{m}_n"]) > 0}
    out = ("| arm | loss | " + " | ".join(f"p = {p:.2f}, step {step}" for p, step in cols) + " |\n"
           + "|---|---|" + "---|" * len(cols) + "\n")
    for arm, loss in sorted({(r["arm"], r["loss"]) for r in agg}):
        vals = []
        for p, step in cols:
            r = cells.get((arm, p, step))
            vals.append("–" if r is None else " · ".join(
                f"{name} {fmt_interval(r[m], r[f'{m}_ci'], r[f'{m}_n'], show_n=len(ns) > 1, signed=False)}"
                for name, m in (("AUC", "auc"), ("P@k", "precision_at_k"))))
        out += f"| {arm} | {loss} | " + " | ".join(vals) + " |\n"
    return out + (f"\nn = {ns.pop()} pairs per cell (df = n − 1).\n" if len(ns) == 1 else "")


def step0_table(step0: Sequence[dict]) -> str:
    """S_T(0) and S_C(0) of the base model with the new speaker row, one row per pair."""
    out = "| pair | S_T(0) | S_C(0) | n_gen |\n|---|---|---|---|\n"
    for r in sorted(step0, key=lambda r: r["pair"]):
        out += f"| {r['pair']} | {float(r['S_T']):.3f} | {float(r['S_C']):.3f} | {r.get('n_gen', '')} |\n"
    return out


def p_table(levels: Sequence[dict]) -> str:
    """Nominal corruption fraction beside what the trainer actually trained on."""
    out = ("| p (nominal) | p_actual (mean) | p_actual range | n_corrupt / n_train (mean) | fine-tunings "
           "(recorded) |\n|---|---|---|---|---|\n")
    for lv in levels:
        if lv["n_recorded"]:
            actual, rng = f"{lv['p_actual']:.3f}", f"{lv['p_actual_min']:.3f}–{lv['p_actual_max']:.3f}"
        else:
            actual, rng = "not recorded", "–"
        counts = (f"{lv['n_corrupt']:.1f} / {lv['n_train']:.1f}" if not math.isnan(lv["n_train"]) else "–")
        out += f"| {lv['p']:.2f} | {actual} | {rng} | {counts} | {lv['n_fine_tunings']} ({lv['n_recorded']}) |\n"
    return out


def splice_generated(existing: str | None, block: str) -> str:
    """``existing`` with the text between the report markers replaced by ``block``.

    Text outside the markers is kept byte for byte; without markers the block is appended after a blank
    line; without a file (``None``) the result is just the block. Malformed markers raise rather than
    guess, since a guess could delete hand-written text.
    """
    body = block if block.endswith("\n") else block + "\n"
    wrapped = f"{BEGIN_MARKER}\n{body}{END_MARKER}\n"
    if existing is None or existing == "":
        return wrapped
    n_begin, n_end = existing.count(BEGIN_MARKER), existing.count(END_MARKER)
    if n_begin == 0 and n_end == 0:
        return existing + ("\n" if existing.endswith("\n") else "\n\n") + wrapped
    start, end = existing.find(BEGIN_MARKER), existing.find(END_MARKER)
    if n_begin != 1 or n_end != 1 or end < start:
        raise ValueError(f"malformed report markers: need exactly one {BEGIN_MARKER!r} followed by one "
                         f"{END_MARKER!r} (found {n_begin} and {n_end})")
    # The END line's own newline belongs to the wrapped block; everything after it is curated text.
    tail = existing[end + len(END_MARKER):]
    tail = tail[1:] if tail.startswith("\n") else tail
    return existing[:start] + wrapped + tail
