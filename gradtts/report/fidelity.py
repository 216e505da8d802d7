"""Fidelity beside robustness: MCD and log-F0 RMSE of each arm at p = 0 and p > 0, paired against a reference arm.

Speaker similarity says whose voice a sample has, not how well it speaks. ``gradtts-score`` (with
``ref_same_text``, which the grid sets to ``EXP/fewshot/<pair>/ref_test``) writes ``fidelity.json`` beside a
``summary.json``: each generated test sentence against the target's real recording of it
(:mod:`gradtts.scoring.fidelity`). This module reads those files into the report rows (``MCD`` in dB,
``F0_RMSE`` in cents, ``VDE`` a fraction; NaN where a run has none) and builds ``fidelity.csv`` and its markdown
table: per arm × p × step the pair-level means, and the paired difference to the reference arm (L2 by default)
on the same pair, seed, p and step. At p = 0 that difference is the price of robustness on clean data; at p > 0 it says
whether the robust arm keeps the fine detail the paper worries about.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from gradtts.layout import FIDELITY_FILE
from gradtts.report.stats import p_key, pair_and_seed_intervals, unit_key

#: report metric -> key of fidelity.json's "mean"
METRICS = {"MCD": "mcd_db", "F0_RMSE": "log_f0_rmse_cents", "VDE": "vde"}
FIDELITY_COLUMNS = ("arm", "arm_id", "loss", "p", "step", "n_runs", "n_pairs", "MCD", "MCD_ci", "F0_RMSE",
                    "F0_RMSE_ci", "VDE", "VDE_ci", "reference", "dMCD", "dMCD_ci", "dMCD_n", "dF0_RMSE",
                    "dF0_RMSE_ci", "dF0_RMSE_n", "dVDE", "dVDE_ci", "dVDE_n")


def read_fidelity(summary: str | Path) -> dict[str, float]:
    """``{MCD, F0_RMSE, VDE}`` from the ``fidelity.json`` beside ``summary`` (NaN each when there is none)."""
    f = Path(summary).parent / FIDELITY_FILE
    if not f.is_file():
        return {m: math.nan for m in METRICS}
    try:
        mean = json.loads(f.read_text(encoding="utf-8"))["mean"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{f}: corrupt fidelity.json ({e}); delete it and re-run the scoring (stage 7)") from e
    out = {}
    for m, key in METRICS.items():
        v = mean.get(key)
        out[m] = math.nan if v is None else float(v)
    return out


def attach_fidelity(rows: list[dict]) -> int:
    """Add ``MCD``, ``F0_RMSE`` and ``VDE`` to every row in place; returns how many rows have a measurement."""
    n = 0
    for r in rows:
        r.update(read_fidelity(r["summary"]))
        n += not math.isnan(r["MCD"])
    return n


def fidelity_rows(runs: list[dict], reference_id: str | None, level: float = 0.95,
                  metrics: tuple[str, ...] = tuple(METRICS)) -> list[dict]:
    """Per arm × p × step with any of ``metrics`` (default MCD, F0 RMSE and VDE): their pair-level means, and Δ to
    ``reference_id``, paired (``gradtts.report.quality`` uses it for OVRL and WER)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        if any(not math.isnan(r.get(m, math.nan)) for m in metrics):
            groups[(r["arm_id"], p_key(r["p"]), int(r["step"]))].append(r)
    ref_units = {unit_key(r): r
                 for (arm_id, _, _), g in groups.items() if arm_id == reference_id for r in g}
    ref_label = next((g[0]["arm"] for (a, _, _), g in groups.items() if a == reference_id), None)
    out = []
    for (arm_id, p, step), g in sorted(groups.items(), key=lambda kv: (kv[1][0]["arm"], kv[0][1], kv[0][2])):
        row = {"arm": g[0]["arm"], "arm_id": arm_id, "loss": g[0]["loss"], "p": p, "step": step, "n_runs": len(g),
               "n_pairs": len({r["pair"] for r in g}), "reference": None if arm_id == reference_id else ref_label}
        for m in metrics:
            pair_ci, _ = pair_and_seed_intervals(((r["pair"], float(r[m])) for r in g), level)
            row.update({m: pair_ci.mean, f"{m}_ci": pair_ci.half})
            diffs = []
            if arm_id != reference_id:
                for r in g:
                    ref = ref_units.get(unit_key(r))
                    if ref is not None:
                        diffs.append((r["pair"], float(r[m]) - float(ref[m])))
            d_ci, _ = pair_and_seed_intervals(diffs, level)
            row.update({f"d{m}": d_ci.mean, f"d{m}_ci": d_ci.half, f"d{m}_n": d_ci.n})
        out.append(row)
    return out


def step0_fidelity(step0_rows: list[dict]) -> dict[str, float]:
    """Mean MCD, F0 RMSE and VDE of the step-0 models (base model with the new speaker row) over the pairs.

    Each metric averages the pairs that have it: a model whose speech pyin finds no frame voiced together with
    the recording has no F0 RMSE, and leaves that mean, not the others, with one pair fewer.
    """
    by_pair: dict[str, list[dict]] = defaultdict(list)
    for r in step0_rows:
        if not math.isnan(r.get("MCD", math.nan)):
            by_pair[r["pair"]].append(r)
    out = {"n_pairs": len(by_pair)}
    for m in METRICS:
        # The pair-level mean of the report's intervals: pairs averaged first, NaNs dropped.
        pair_ci, _ = pair_and_seed_intervals((pair, float(r[m])) for pair, g in by_pair.items() for r in g)
        out[m], out[f"{m}_pairs"] = pair_ci.mean, pair_ci.n
    return out


def fidelity_markdown(rows: list[dict], step0: dict[str, float] | None, n_runs: int, depth: int = 1,
                      level: float = 0.95) -> str:
    """The fidelity section: a table per step (or a line saying no run was measured)."""
    from gradtts.report.tables import fmt_interval

    h = "#" * depth
    md = [f"\n{h}# Fidelity to the target's recordings\n\n"]
    if not rows:
        md.append(f"No `{FIDELITY_FILE}` beside any of the {n_runs} fine-tuning summaries: fidelity was not measured "
                  "(score with `ref_same_text=EXP/fewshot/<pair>/ref_test`; the grid's stage 7 does it when the "
                  "pair has `ref_test/`).\n")
        return "".join(md)
    pct = f"{level * 100:g} %"
    measured = sum(r["n_runs"] for r in rows)
    md.append(f"Each generated test sentence against the target's real recording of the same sentence: MCD "
              f"(dB, 24 mel-cepstra after DTW), log-F0 RMSE (cents, over the path's frames that pyin finds voiced "
              f"in both; a run's value averages its sentences that have such frames) and the voicing decision "
              f"error VDE (% of path frames voiced in one signal only); lower is closer "
              f"(`gradtts/scoring/fidelity.py`). {measured} of {n_runs} scored fine-tuning checkpoints have "
              f"fidelity; arms without it are not listed. Cells: mean ± {pct} pair-level interval; Δ is paired "
              f"with the reference arm on pair, seed, p and step (Δ > 0: further from the recording than the "
              f"reference). At p = 0, Δ is the price of the loss on clean data.\n\n")
    if step0 and step0.get("n_pairs"):
        md.append(f"Step 0 (base model with the new speaker row), mean over {step0['n_pairs']} pairs: MCD "
                  f"{step0['MCD']:.2f} dB, log-F0 RMSE {step0['F0_RMSE']:.0f} cents ({step0['F0_RMSE_pairs']} pairs "
                  f"with voiced frames in common), VDE {100 * step0['VDE']:.1f} %.\n\n")
    for step in sorted({r["step"] for r in rows}):
        sel = [r for r in rows if r["step"] == step]
        ref = next((r["reference"] for r in sel if r["reference"]), None)
        md += [f"**Step {step}**" + (f" (reference: {ref})" if ref else "") + "\n\n",
               "| arm | p | pairs | MCD (dB) | ΔMCD vs reference | log-F0 RMSE (cents) | ΔF0 vs reference | VDE (%) "
               "| ΔVDE vs reference |\n"
               "|---|---:|---:|---|---|---|---|---|---|\n"]
        for r in sel:
            n, has_ref = r["n_pairs"], r["reference"] is not None
            mcd = fmt_interval(r["MCD"], r["MCD_ci"], n, digits=2, signed=False)
            f0 = fmt_interval(r["F0_RMSE"], r["F0_RMSE_ci"], n, digits=0, signed=False)
            d_mcd = fmt_interval(r["dMCD"], r["dMCD_ci"], r["dMCD_n"], digits=2) if has_ref else "–"
            d_f0 = fmt_interval(r["dF0_RMSE"], r["dF0_RMSE_ci"], r["dF0_RMSE_n"], digits=0) if has_ref else "–"
            vde = fmt_interval(100 * r["VDE"], 100 * r["VDE_ci"], n, digits=1, signed=False)
            d_vde = fmt_interval(100 * r["dVDE"], 100 * r["dVDE_ci"], r["dVDE_n"], digits=1) if has_ref else "–"
            md.append(f"| {r['arm']} | {r['p']:.2f} | {n} | {mcd} | {d_mcd} | {f0} | {d_f0} | {vde} | {d_vde} |\n")
        md.append("\n")
    return "".join(md)
