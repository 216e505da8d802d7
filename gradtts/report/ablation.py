"""The schedule and robust-loss ablations: each δ(t) schedule and each robust loss against the paper's choice.

The paper's scheduled pseudo-Huber uses the exponential schedule δ(t) = δ_min^t. Its open questions are how the
other schedules (linear, step, constant, increasing, snr) and other robust losses (Cauchy, Tukey's biweight)
compare. A run's loss comes from its ``run.json`` (``identity.loss``: name, schedule, delta_min, step_t), found
two levels above its ``summary.json`` (``<run>/score/step_N/summary.json``). Only plain arms enter: a run with a
filter, an adaptive δ or LoRA is another question.

- **Schedule ablation**: every pseudo-Huber arm (``scheduled_huber`` with any schedule; constant-δ ``huber`` is
  the ``constant`` schedule, the same function) against ``scheduled_huber`` with the exponential schedule and
  the same δ_min.
- **Loss ablation**: every Cauchy and Tukey arm against pseudo-Huber with the same schedule and δ_min, and
  against L2.

Comparisons are paired on pair × seed × p × step (ΔR = R_arm − R_reference, ΔL likewise), with the pair-level
t-interval (seeds averaged within a pair) of :mod:`gradtts.report.stats`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from gradtts.report.stats import p_key, pair_and_seed_intervals, unit_key

ABLATION_COLUMNS = ("table", "arm", "arm_id", "loss", "schedule", "delta_min", "reference", "reference_id", "p",
                    "step", "n_pairs", "R", "R_ci", "L", "L_ci", "dR", "dR_ci", "dR_n", "dL", "dL_ci", "dL_n",
                    "dR_seed", "dR_seed_ci", "dR_seed_n")
LOSS_NAMES = {"scheduled_huber": "pseudo-Huber", "huber": "pseudo-Huber", "cauchy": "Cauchy", "tukey": "Tukey"}
REFERENCE_SCHEDULE = "exponential"


def _run_record(summary: str | Path, cache: dict[Path, dict]) -> dict:
    run = Path(summary).parent.parent.parent
    if run not in cache:
        f = run / "run.json"
        try:
            cache[run] = json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            cache[run] = {}
    return cache[run]


def loss_spec(row: dict, cache: dict[Path, dict]) -> dict | None:
    """``{loss, schedule, delta_min, label}`` of a plain (no filter/adaptive/LoRA) run's loss, else None.

    ``huber`` with constant δ is reported as the ``constant`` schedule at δ_min = δ; the step schedule's label
    carries its switch time.
    """
    from gradtts.losses import canonical_schedule

    if row.get("filter") or row.get("adaptive") or row.get("lora"):
        return None
    ident = _run_record(row["summary"], cache).get("identity") or {}
    if ident.get("filter") or ident.get("adapt", {}).get("method") not in (None, "full"):
        return None
    loss = ident.get("loss") or {}
    name = loss.get("name")
    if name == "l2":
        return {"loss": "l2", "schedule": None, "delta_min": None, "label": "l2"}
    if name == "huber":
        schedule, delta = "constant", loss.get("delta")
    elif name in LOSS_NAMES:
        schedule, delta = canonical_schedule(loss.get("schedule", REFERENCE_SCHEDULE)), loss.get("delta_min")
    else:
        return None
    if delta is None:
        return None
    sched = f"step at t = {loss.get('step_t', 0.5):g}" if schedule == "step" else schedule
    return {"loss": name, "schedule": schedule, "delta_min": float(delta),
            "label": f"{LOSS_NAMES[name]}, {sched}, δ_min = {float(delta):g}"}


def _units(rows: list[dict]) -> dict[tuple, dict]:
    return {unit_key(r): r for r in rows}


def _row(table: str, arm: dict, ref: dict | None, runs: list[dict], ref_runs: list[dict], p: float, step: int,
         level: float) -> dict:
    mine = [r for r in runs if p_key(r["p"]) == p and int(r["step"]) == step]
    out = {"table": table, "arm": arm["label"], "arm_id": arm["arm_id"], "loss": arm["loss"],
           "schedule": arm["schedule"], "delta_min": arm["delta_min"], "reference": ref["label"] if ref else None,
           "reference_id": ref["arm_id"] if ref else None, "p": p, "step": step,
           "n_pairs": len({r["pair"] for r in mine})}
    for m in ("R", "L"):
        pair_ci, _ = pair_and_seed_intervals(((r["pair"], float(r[m])) for r in mine), level)
        out.update({m: pair_ci.mean, f"{m}_ci": pair_ci.half})
    a, b = _units(mine), _units(ref_runs)
    shared = sorted(a.keys() & b.keys())
    for m in ("R", "L"):
        diffs = ((k[0], float(a[k][m]) - float(b[k][m])) for k in shared)
        pair_ci, seed_ci = pair_and_seed_intervals(diffs, level)
        out.update({f"d{m}": pair_ci.mean, f"d{m}_ci": pair_ci.half, f"d{m}_n": pair_ci.n})
        if m == "R":
            out.update({"dR_seed": seed_ci.mean, "dR_seed_ci": seed_ci.half, "dR_seed_n": seed_ci.n})
    return out


def ablation_rows(runs: list[dict], level: float = 0.95) -> list[dict]:
    """The schedule and loss ablation rows (``ABLATION_COLUMNS``) of the runs with R and L at p > 0."""
    cache: dict[Path, dict] = {}
    arms: dict[str, dict] = {}
    by_arm: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        if p_key(r["p"]) == 0 or math.isnan(float(r.get("R", math.nan))):
            continue
        spec = loss_spec(r, cache)
        if spec is None:
            continue
        arms.setdefault(r["arm_id"], {**spec, "arm_id": r["arm_id"]})
        by_arm[r["arm_id"]].append(r)
    cells = sorted({(p_key(r["p"]), int(r["step"])) for g in by_arm.values() for r in g})

    def find(loss: str | tuple, schedule: str | None, delta: float | None) -> dict | None:
        losses = (loss,) if isinstance(loss, str) else loss
        found = [a for a in arms.values() if a["loss"] in losses and a["schedule"] == schedule
                 and (delta is None or (a["delta_min"] is not None and math.isclose(a["delta_min"], delta)))]
        return sorted(found, key=lambda a: a["arm_id"])[0] if found else None

    def order(a: dict) -> tuple:
        return (a["delta_min"] or 0.0, a["schedule"] != REFERENCE_SCHEDULE, a["schedule"] or "", a["arm_id"])

    out = []
    pseudo = sorted((a for a in arms.values() if LOSS_NAMES.get(a["loss"]) == "pseudo-Huber"), key=order)
    robust = sorted((a for a in arms.values() if a["loss"] in ("cauchy", "tukey")), key=order)
    l2 = find("l2", None, None)
    for p, step in cells:
        for arm in pseudo:
            ref = find("scheduled_huber", REFERENCE_SCHEDULE, arm["delta_min"])
            ref = None if ref is arm else ref
            out.append(_row("schedule", arm, ref, by_arm[arm["arm_id"]], by_arm[ref["arm_id"]] if ref else [], p,
                            step, level))
        for arm in robust:
            for ref in (find(("scheduled_huber", "huber"), arm["schedule"], arm["delta_min"]), l2):
                out.append(_row("loss", arm, ref, by_arm[arm["arm_id"]], by_arm[ref["arm_id"]] if ref else [], p,
                                step, level))
    return [r for r in out if r["n_pairs"]]


def _cell(mean: float, half: float, n: int) -> str:
    from gradtts.report.tables import fmt_interval

    return fmt_interval(mean, half, n)


def ablation_markdown(rows: list[dict], depth: int = 1, level: float = 0.95) -> str:
    """The two ablation tables at the last step with p > 0 runs ('' when there is no ablation arm)."""
    if not rows:
        return ""
    h = "#" * depth
    step = max(int(r["step"]) for r in rows)
    pct = f"{level * 100:g} %"
    md = []
    for table, title, intro in (
            ("schedule", "Schedule ablation",
             "Each pseudo-Huber δ(t) schedule against the paper's exponential schedule with the same δ_min "
             "(constant δ is the `huber` loss). ΔR > 0: the schedule keeps more of the target than exponential; "
             "ΔL < 0: it leaks less of the intruder."),
            ("loss", "Robust-loss ablation",
             "Cauchy and Tukey's biweight against pseudo-Huber with the same schedule and δ_min, and against L2.")):
        sel = [r for r in rows if r["table"] == table and int(r["step"]) == step]
        if not sel:
            continue
        md += [f"\n{h}# {title} (step {step})\n\n", intro,
               f" Cells: mean ± {pct} pair-level t-interval (seeds averaged within a pair; n pairs).\n\n",
               "| arm | p | pairs | R | L | reference | ΔR vs reference | ΔL vs reference | ΔR CI excludes 0 |\n"
               "|---|---:|---:|---|---|---|---|---|---|\n"]
        for r in sel:
            if r["reference"] is None:
                ref_txt, dr, dl, verdict = "(the reference)" if table == "schedule" and r["schedule"] == \
                    REFERENCE_SCHEDULE else "not run", "–", "–", "–"
            else:
                ref_txt = r["reference"]
                dr = _cell(r["dR"], r["dR_ci"], r["dR_n"])
                dl = _cell(r["dL"], r["dL_ci"], r["dL_n"])
                verdict = "–" if math.isnan(r["dR_ci"]) else ("yes" if abs(r["dR"]) > r["dR_ci"] else "no")
            n = r["n_pairs"]
            md.append(f"| {r['arm']} | {r['p']:.2f} | {n} | {_cell(r['R'], r['R_ci'], n)} | "
                      f"{_cell(r['L'], r['L_ci'], n)} | {ref_txt} | {dr} | {dl} | {verdict} |\n")
    return "".join(md)
