"""``gradtts-report``: collect score summaries into resilience, leakage and adaptation tables and plots.

    gradtts-report root=exp/synthvox/finetune out_dir=exp/synthvox/report [results_md=egs/synthvox/RESULTS.md]

Every ``summary.json`` under ``root`` is one scored checkpoint: ``kind: run`` (a fine-tuning checkpoint,
the default for summaries that predate the field) or ``kind: step0`` (the base model with the new
speaker row before any update, one per pair). Runs pair with their p = 0 partner on ``arm_id`` (falling
back to ``arm``, then ``loss``, for old summaries), step, seed and pair. Writes, under ``out_dir``:

- ``runs.csv``: one row per summary, with R, L and the adaptation gain A;
- ``results.csv``: per arm × p × step, pair-level and seed-level intervals of S_T, S_C, R, L, A;
- ``paired.csv``: per arm pair × p × step, ΔR and ΔL with pair-level and seed-level intervals;
- ``step0.csv``: S_T(0), S_C(0) per pair;
- ``ranking.csv``: per fine-tuning on a corrupted set × step, how well the trainer's residual ranking
  (``ckpt/step_*.residuals.tsv``) finds the corrupt clips: AUC and precision@k (``gradtts.report.ranking``);
- ``ranking_summary.csv``: per arm × p × step, their pair-level and seed-level intervals;
- ``arms.csv``: per fine-tuning of a filter, adaptive-δ or LoRA arm, what it chose (``gradtts.report.arms``);
- ``ablation.csv``: each δ(t) schedule against the exponential one and each robust loss against pseudo-Huber and
  L2, paired (``gradtts.report.ablation``);
- ``fidelity.csv``: MCD, log-F0 RMSE and voicing error to the target's recordings per arm × p × step, paired with the
  reference arm, from the ``fidelity.json`` beside each summary (``gradtts.report.fidelity``);
- ``dnsmos_wer.csv``: DNSMOS OVRL and the ASR's WER per arm × p × step, paired with the reference arm, from the
  means stage 7 puts in each summary, beside the ceiling of the target's real recordings (``gradtts.report.quality``;
  a WER ceiling above 0.5 replaces the WER columns with a note); the six means (OVRL, SIG, BAK, P808, WER, CER) are
  also columns of ``runs.csv`` and ``results.csv`` when some summary has them;
- ``results.md`` and the plots ``R.png``, ``L.png``, ``dR.png``;
- with ``listening.exp=EXP``, ``listening/``: EXP's listening page (``index.html``, the blind A/B test
  ``ab.html``); with ``ratings=[a.csv,...]`` (downloaded from ``ab.html``), ``preferences.csv``; both are also
  sections of the markdown (``gradtts.report.listening.report_hook``).

With ``results_md`` the same markdown goes between marker lines of that file (text outside them is kept)
and the plots and CSVs are copied to ``results/`` beside it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from gradtts.config import NESTED_CHOICES
from gradtts.report.listening.clips import FORMATS
from gradtts.report.listening.report_hook import ListeningOptions

log = logging.getLogger(__name__)

RUN_FIELDS = ("loss", "p", "step", "seed", "pair")
CSV_FILES = ("runs.csv", "results.csv", "paired.csv", "step0.csv", "ranking.csv", "ranking_summary.csv", "arms.csv",
             "ablation.csv", "fidelity.csv", "dnsmos_wer.csv")
PLOT_FILES = ("R.png", "L.png", "dR.png")
RUNS_COLUMNS = ("kind", "arm", "arm_id", "loss", "pair", "p", "p_actual", "n_train", "n_corrupt", "seed", "step",
                "S_T", "S_C", "R", "L", "A", "MCD", "F0_RMSE", "VDE", "n_gen", "encoder", "vocoder", "summary")
#: Aggregated per arm x p x step in results.csv (MCD, F0_RMSE, VDE: fidelity, NaN where it was not measured).
METRICS = ("S_T", "S_C", "R", "L", "A", "MCD", "F0_RMSE", "VDE")
# Quality and intelligibility (OVRL, SIG, BAK, P808, WER, CER: gradtts.report.quality) join runs.csv (after VDE) and
# results.csv only when some summary has them, so reports of summaries made before them keep their columns.


@dataclass
class ReportConfig:
    """``gradtts-report`` settings: every ``summary.json`` under ``root`` -> tables and plots in ``out_dir``."""

    root: str = "???"
    out_dir: str = "???"
    level: float = 0.95                  # confidence level of the intervals
    title: str = "Resilience to corrupted few-shot data"
    # Also put the markdown between the report markers of this file (text outside them is kept).
    results_md: Optional[str] = None
    # Arm (label or arm_id) that the ΔR plot subtracts; None: the l2 arm, else the first arm.
    reference_arm: Optional[str] = None
    # listening.exp=EXP: also write EXP's listening page to out_dir/listening/ (gradtts.report.listening).
    listening: ListeningOptions = field(default_factory=ListeningOptions,
                                        metadata={NESTED_CHOICES: {"format": FORMATS}})
    # Ratings CSVs downloaded from the page's ab.html -> a preference table (split by these CSV columns too).
    ratings: list[str] = field(default_factory=list)
    ratings_by: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.listening, dict):  # from OmegaConf.to_container
            self.listening = ListeningOptions(**self.listening)


# Hydra settings: the job runs in out_dir with no .hydra/ folder beside its tables (output_subdir null), and
# relative paths keep meaning the caller's directory (chdir false).
HYDRA_SETTINGS = {"run": {"dir": "${out_dir}"}, "output_subdir": None, "job": {"chdir": False}}


@functools.cache  # once per process: the ConfigStore is process-wide
def register_config() -> None:
    """Register config ``report`` (schema :class:`ReportConfig`) in Hydra's ConfigStore; the job logs to the console
    only, so that ``out_dir`` keeps only its tables."""
    from gradtts.config import store_command_config

    store_command_config("report", ReportConfig, HYDRA_SETTINGS, log_file=False)


def _shown_path(path: Path) -> str:
    # Relative to the working directory when inside it, so committed CSVs do not carry a machine's paths.
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _opt_float(v) -> float | None:
    return None if v is None else float(v)


def _opt_int(v) -> int | None:
    return None if v is None else int(v)


def read_summary(path: str | Path) -> dict:
    """The JSON object in ``path``; invalid JSON raises a ValueError naming the file."""
    path = Path(path)
    try:
        s = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: corrupt summary.json, not valid JSON ({e}); re-run its scoring "
                         "(gradtts-score ... overwrite=true) or delete it") from e
    if not isinstance(s, dict):
        raise ValueError(f"{path}: corrupt summary.json, expected a JSON object, found {type(s).__name__}")
    return s


def normalise_summary(s: dict, path: str | Path) -> dict | None:
    """One summary as a report row (``kind`` run or step0), or None (with a warning) when it is unusable.

    Extra keys are ignored. Old summaries without ``arm``/``arm_id`` use ``loss`` for both.
    """
    from gradtts.report.quality import summary_metrics

    kind = s.get("kind") or "run"
    common = {"kind": kind, "S_T": s.get("S_T"), "S_C": s.get("S_C"), "n_gen": _opt_int(s.get("n_gen")),
              "encoder": s.get("encoder"), "vocoder": s.get("vocoder"), "synth": s.get("synth"),
              "summary": _shown_path(Path(path)), **summary_metrics(s)}
    if kind == "step0":
        missing = [k for k in ("pair", "S_T", "S_C") if s.get(k) is None]
        if missing:
            log.warning("%s: step-0 summary skipped, it lacks %s", path, missing)
            return None
        return {**common, "pair": str(s["pair"]), "step": 0, "S_T": float(s["S_T"]), "S_C": float(s["S_C"])}
    if kind != "run":
        log.warning("%s: skipped, unknown kind %r (expected 'run' or 'step0')", path, kind)
        return None
    has_arm = any(s.get(k) is not None for k in ("loss", "arm", "arm_id"))
    missing = [k for k in RUN_FIELDS if s.get(k) is None and not (k == "loss" and has_arm)]
    if missing or s.get("S_T") is None or s.get("S_C") is None:
        log.warning("%s: skipped, it lacks %s; score runs with +meta.loss=... +meta.p=... +meta.step=... "
                    "+meta.seed=... +meta.pair=... and ref_intruder", path, missing or ['S_C (no ref_intruder)'])
        return None
    loss, arm, arm_id = s.get("loss"), s.get("arm"), s.get("arm_id")
    arm_id = arm_id if arm_id is not None else (arm if arm is not None else loss)
    arm = arm if arm is not None else (loss if loss is not None else arm_id)
    return {**common, "arm": str(arm), "arm_id": str(arm_id), "loss": str(loss if loss is not None else arm),
            "pair": str(s["pair"]), "p": float(s["p"]), "p_actual": _opt_float(s.get("p_actual")),
            "n_train": _opt_int(s.get("n_train")), "n_corrupt": _opt_int(s.get("n_corrupt")),
            "seed": int(s["seed"]), "step": int(s["step"]), "S_T": float(s["S_T"]), "S_C": float(s["S_C"]),
            "filter": s.get("filter"), "adaptive": s.get("adaptive"), "lora": s.get("lora")}


def _unique_labels(runs: list[dict]) -> None:
    # Tables group by label but pair on arm_id: two configurations with one label (a label that omits a
    # hyper-parameter) must not merge, so such labels get their id appended.
    ids_of = defaultdict(set)
    for r in runs:
        ids_of[r["arm"]].add(r["arm_id"])
    for r in runs:
        if len(ids_of[r["arm"]]) > 1:
            r["arm"] = f"{r['arm']} [{r['arm_id']}]"
    labels_of = defaultdict(set)
    for r in runs:
        labels_of[r["arm_id"]].add(r["arm"])
    for arm_id, labels in labels_of.items():
        if len(labels) > 1:
            first = sorted(labels)[0]
            log.warning("arm_id %s carries several labels %s; reporting it as %r", arm_id, sorted(labels), first)
            for r in runs:
                if r["arm_id"] == arm_id:
                    r["arm"] = first


def collect(root: str | Path) -> list[dict]:
    """Every usable ``summary.json`` under ``root`` as a row (see :func:`normalise_summary`).

    Raises FileNotFoundError when there is no fine-tuning summary, ValueError on a corrupt file or on
    two summaries of one checkpoint (arm_id, pair, p, seed, step), whose R would be ambiguous.
    """
    from tqdm import tqdm

    rows = []
    for path in tqdm(sorted(Path(root).rglob("summary.json")), desc="collect", unit="summary"):
        row = normalise_summary(read_summary(path), path)
        if row is not None:
            rows.append(row)
    runs = [r for r in rows if r["kind"] == "run"]
    if not runs:
        raise FileNotFoundError(f"{root}: no fine-tuning summary.json with loss/p/step/seed/pair fields found")
    seen: dict[tuple, str] = {}
    for r in runs:
        key = (r["arm_id"], r["pair"], round(r["p"], 6), r["seed"], r["step"])
        if key in seen:
            raise ValueError(f"two summaries of one checkpoint {key}: {seen[key]} and {r['summary']}; "
                             "keep one (R and L would otherwise depend on which one is read)")
        seen[key] = r["summary"]
    _unique_labels(runs)
    return rows


def step0_by_pair(step0: list[dict]) -> dict[str, dict]:
    """One step-0 row per pair; several differing summaries of a pair are averaged, with a warning."""
    groups = defaultdict(list)
    for r in step0:
        groups[r["pair"]].append(r)
    out = {}
    for pair, g in sorted(groups.items()):
        st, sc = [r["S_T"] for r in g], [r["S_C"] for r in g]
        if max(st) - min(st) > 1e-9 or max(sc) - min(sc) > 1e-9:
            log.warning("pair %s: %d step-0 summaries disagree (S_T %.4f–%.4f); using their mean", pair, len(g),
                        min(st), max(st))
        out[pair] = {"pair": pair, "S_T": sum(st) / len(g), "S_C": sum(sc) / len(g), "n_gen": g[0]["n_gen"],
                     "encoder": g[0]["encoder"], "vocoder": g[0]["vocoder"], "n_summaries": len(g),
                     "summary": g[0]["summary"]}
    return out


def _recorded(values) -> Counter:
    return Counter("not recorded" if v is None else str(v) for v in values)


def _synth_text(synth) -> str:
    if synth is None:
        return "not recorded"
    if isinstance(synth, dict):
        return ", ".join(f"{k}={synth[k]}" for k in sorted(synth))
    return str(synth)


def describe_grid(rows: list[dict]) -> dict:
    """What the report is made of: counts, encoders, vocoders, synthesis settings, nominal vs actual p."""
    runs = [r for r in rows if r["kind"] == "run"]
    fine_tunings: dict[tuple, dict] = {}
    for r in runs:
        fine_tunings.setdefault((r["arm_id"], r["pair"], round(r["p"], 6), r["seed"]), r)
    levels = []
    for p in sorted({k[2] for k in fine_tunings}):
        fts = [r for k, r in fine_tunings.items() if k[2] == p]
        actual = [r["p_actual"] for r in fts if r["p_actual"] is not None]
        counts = [(r["n_corrupt"], r["n_train"]) for r in fts
                  if r["n_train"] is not None and r["n_corrupt"] is not None]
        levels.append({"p": p, "n_fine_tunings": len(fts), "n_recorded": len(actual),
                       "p_actual": sum(actual) / len(actual) if actual else math.nan,
                       "p_actual_min": min(actual, default=math.nan), "p_actual_max": max(actual, default=math.nan),
                       "n_corrupt": sum(c for c, _ in counts) / len(counts) if counts else math.nan,
                       "n_train": sum(t for _, t in counts) / len(counts) if counts else math.nan})
    return {"n_summaries": len(rows), "n_checkpoints": len(runs), "n_step0": len(rows) - len(runs),
            "n_fine_tunings": len(fine_tunings),
            "pairs": sorted({r["pair"] for r in rows}), "seeds": sorted({r["seed"] for r in runs}),
            "arms": sorted({(r["arm"], r["loss"], r["arm_id"]) for r in runs}),
            "steps": sorted({r["step"] for r in runs}),
            "encoders": _recorded(r["encoder"] for r in rows), "vocoders": _recorded(r["vocoder"] for r in rows),
            "synth": Counter(_synth_text(r["synth"]) for r in rows), "p_levels": levels}


def grid_warnings(facts: dict, runs: list[dict], step0: dict[str, dict]) -> list[str]:
    """Everything that makes the numbers less comparable than they look; each is also logged as a warning.

    ``runs`` are the fine-tuning rows with R and L already computed.
    """
    notes = []
    for what, counter in (("speaker encoders", facts["encoders"]), ("vocoders", facts["vocoders"]),
                          ("synthesis settings", facts["synth"])):
        if len(counter) > 1:
            notes.append(f"the summaries mix {what} ({_counted(counter)}): their similarities are not comparable "
                         "with each other")
    griffin = sum(n for v, n in facts["vocoders"].items() if "griffin" in v.lower().replace("-", "").replace("_", ""))
    if griffin:
        notes.append(f"{griffin} summaries were vocoded with Griffin-Lim: speaker similarity on Griffin-Lim audio "
                     "is not comparable to similarity on neural-vocoder audio or to the paper's numbers")
    noisy = [r for r in runs if round(r["p"], 6) > 0]
    if not any(round(r["p"], 6) == 0 for r in runs):
        notes.append("the grid has no p = 0 runs: R and L cannot be computed (each needs the clean run of the same "
                     "arm, step, seed and pair); only S_T, S_C and A are reported")
    else:
        orphans = [r for r in noisy if math.isnan(r["R"])]
        if orphans:
            arms = sorted({r["arm"] for r in orphans})
            notes.append(f"{len(orphans)} of {len(noisy)} p > 0 checkpoints have no p = 0 partner (same arm_id, step, "
                         f"seed and pair): their R and L cannot be computed (arms {arms})")
    if step0:
        lacking = sorted({r["pair"] for r in runs} - step0.keys())
        if lacking:
            notes.append(f"pairs without a step-0 summary: {lacking}; their adaptation gain A is not measured")
    for note in notes:
        log.warning("%s", note)
    return notes


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _counted(counter: Counter) -> str:
    return ", ".join(f"{k} ×{n}" for k, n in sorted(counter.items()))


def render_markdown(title: str, level: float, facts: dict, notes: list[str], agg: list[dict], paired: list[dict],
                    step0: dict[str, dict], reference: str | None, depth: int = 1, img_prefix: str = "",
                    ranking: list[dict] | None = None, ranking_agg: list[dict] | None = None,
                    details: list[dict] | None = None, sections: str = "") -> str:
    """The report as markdown; ``depth`` is the level of its title, ``img_prefix`` the plots' folder.

    ``ranking`` / ``ranking_agg`` (per-table and aggregated rows of :mod:`gradtts.report.ranking`) add the
    residual-ranking section; without them it says that there are no residual tables. ``sections`` (markdown
    at the same ``depth``: the ablations, fidelity) goes after the arms' details, before the plots.
    """
    from gradtts.report.arms import details_markdown
    from gradtts.report.ranking import ranking_markdown
    from gradtts.report.tables import markdown_table, p_table, paired_table, step0_table

    h = "#" * depth
    pct = f"{level * 100:g} %"
    arms = facts["arms"]
    md = [f"{h} {title}\n\n",
          f"**Grid.** {_n(facts['n_fine_tunings'], 'fine-tuning')} (distinct arm × pair × p × seed); "
          f"{_n(facts['n_summaries'], 'summary', 'summaries')} scored: "
          f"{_n(facts['n_checkpoints'], 'fine-tuning checkpoint')} and {_n(facts['n_step0'], 'step-0 model')}; "
          f"{_n(len(facts['pairs']), 'pair')} ({', '.join(facts['pairs'])}); "
          f"{_n(len(facts['seeds']), 'seed')} ({', '.join(map(str, facts['seeds']))}); {_n(len(arms), 'arm')}; "
          f"steps {', '.join(map(str, facts['steps']))}.\n\n",
          f"**Scoring.** Speaker encoder: {_counted(facts['encoders'])}. Vocoder: {_counted(facts['vocoders'])}.\n\n",
          f"**Synthesis.** {'; '.join(f'{k} ({n} summaries)' for k, n in sorted(facts['synth'].items()))}.\n\n",
          "**Corruption.** Nominal fraction p of the few-shot set beside the fraction the trainer actually "
          "trained on (one value per fine-tuning):\n\n", p_table(facts["p_levels"]), "\n"]
    md += [f"> **Warning.** {n}\n\n" for n in notes]
    md += [f"**How to read.** Cells: mean ± {pct} t-interval half-width over (target, intruder) pairs. Seeds of a "
           "pair share its few-shot set, references and test noise, so they are averaged within the pair first and "
           "the interval is over pairs (df = n_pairs − 1); with one pair there is no interval (\"n = 1, no "
           "interval\"). Seed-level intervals (over every pair × seed, df = n − 1) are in `results.csv` and beside "
           "the pair-level ones in the paired comparisons.\n\n",
           "- R = S_T(p) − S_T(p = 0): similarity to the target lost through corruption (closer to 0 is better).\n",
           "- L = S_C(p) − S_C(p = 0): similarity gained toward the intruder (closer to 0 is better).\n",
           "- A = S_T(step) − S_T(step 0 of the pair): adaptation gain over the base model with the new speaker row "
           "(higher is better).\n",
           "- ΔR(A, B) = R_A − R_B and ΔL(A, B) = L_A − L_B on the same pair, seed, p and step: ΔR > 0 means arm A "
           "keeps more of the target, ΔL < 0 that it leaks less.\n\n",
           f"{h}# Arms\n\n| arm | loss | arm_id |\n|---|---|---|\n"]
    md += [f"| {arm} | {loss} | {arm_id} |\n" for arm, loss, arm_id in arms]
    md += [f"\n{h}# Step 0 (base model with the new speaker row, before any update)\n\n"]
    md += [step0_table(list(step0.values()))] if step0 else [
        "No step-0 summaries: adaptation is not measured (A needs S_T of the base model with the new speaker row "
        "of each pair; score it with kind=step0).\n"]
    noisy_ps = sorted({float(r["p"]) for r in agg if float(r["p"]) > 0})
    for step in facts["steps"]:
        md += [f"\n{h}# Step {step}\n\n"]
        if noisy_ps:
            md += ["**R (resilience)**\n\n", markdown_table(agg, "R", step, noisy_ps),
                   "\n**L (leakage)**\n\n", markdown_table(agg, "L", step, noisy_ps), "\n"]
        else:
            md += ["No p > 0 runs: there is no resilience or leakage to report.\n\n"]
        md += ["**S_T (similarity to the target)**\n\n", markdown_table(agg, "S_T", step)]
        if step0:
            md += ["\n**A (adaptation gain over step 0)**\n\n", markdown_table(agg, "A", step)]
        if [r for r in paired if int(r["step"]) == step]:
            md += ["\n**Paired comparisons**\n\n", paired_table(paired, step)]
    md += [details_markdown(details or [], depth), sections]
    md += [ranking_markdown(ranking or [], ranking_agg or [], level, depth)]
    ref_text = f"minus the reference arm {reference}" if reference else "(one arm: no comparison)"
    md += [f"\n{h}# Plots\n\n", f"![R]({img_prefix}R.png)\n\n", f"![L]({img_prefix}L.png)\n\n",
           f"ΔR of each arm {ref_text}, pair-level intervals:\n\n", f"![dR]({img_prefix}dR.png)\n"]
    return "".join(md)


def report(cfg: ReportConfig) -> dict:
    """Collect, compute, and write every report file; returns counts and the output folder."""
    from gradtts.io import atomic_write_bytes, atomic_write_text, write_csv
    from gradtts.report.ablation import ABLATION_COLUMNS, ablation_markdown, ablation_rows
    from gradtts.report.arms import ARMS_COLUMNS, circular_filters, detail_rows
    from gradtts.report.fidelity import (FIDELITY_COLUMNS, attach_fidelity, fidelity_markdown, fidelity_rows,
                                         step0_fidelity)
    from gradtts.report.listening.report_hook import listening_report
    from gradtts.report.plots import plot_metric
    from gradtts.report.quality import QUALITY_COLUMNS, present, quality_markdown, quality_rows, read_ceiling
    from gradtts.report.ranking import RANKING_COLUMNS, SUMMARY_COLUMNS, aggregate_rankings, collect_rankings
    from gradtts.report.stats import adaptation_rows, aggregate, arm_order, paired_rows, resilience_rows
    from gradtts.report.tables import splice_generated

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summaries = collect(cfg.root)
    attach_fidelity(summaries)
    listening = listening_report(cfg.listening, cfg.ratings, out, cfg.ratings_by, cfg.level)
    step0 = step0_by_pair([r for r in summaries if r["kind"] == "step0"])
    runs = adaptation_rows(resilience_rows([r for r in summaries if r["kind"] == "run"]), step0)
    order = arm_order(runs, cfg.reference_arm)
    reference = order[0][1] if len(order) > 1 else None
    extra = present(summaries)  # the quality and intelligibility metrics some summary has
    agg = aggregate(runs, METRICS + tuple(extra), level=cfg.level)
    paired = paired_rows(runs, cfg.reference_arm, level=cfg.level)
    facts = describe_grid(summaries)
    notes = grid_warnings(facts, runs, step0)
    ranking = collect_rankings(cfg.root)
    # Same label per arm_id as the summaries' tables, even when one report set lacks a clashing arm.
    label = {r["arm_id"]: r["arm"] for r in runs}
    for r in ranking:
        r["arm"] = label.get(r["arm_id"], r["arm"])
    ranking.sort(key=lambda r: (r["arm"], r["pair"], r["p"], r["seed"], r["step"]))
    ranking_agg = aggregate_rankings(ranking, cfg.level)

    nan = math.nan
    step0_rows = [{**r, "R": nan, "L": nan, "A": nan} for r in summaries if r["kind"] == "step0"]
    per_summary = sorted(runs + step0_rows, key=lambda r: (r["kind"] == "run", r.get("arm") or "", r["pair"],
                                                             r.get("p") or 0.0, r.get("seed") or 0, r["step"]))
    cut = RUNS_COLUMNS.index("VDE") + 1
    columns = RUNS_COLUMNS[:cut] + tuple(extra) + RUNS_COLUMNS[cut:]
    write_csv(out / "runs.csv", [{k: r.get(k) for k in columns} for r in per_summary], columns)
    write_csv(out / "results.csv", agg, ("arm", "arm_id", "loss", "p", "step"))
    write_csv(out / "paired.csv", paired, ("arm_A", "arm_B", "arm_id_A", "arm_id_B", "p", "step", "dR", "dR_ci"))
    write_csv(out / "step0.csv", list(step0.values()), ("pair", "S_T", "S_C", "n_gen", "encoder", "vocoder"))
    write_csv(out / "ranking.csv", [{k: r[k] for k in RANKING_COLUMNS} for r in ranking], RANKING_COLUMNS)
    write_csv(out / "ranking_summary.csv", ranking_agg, SUMMARY_COLUMNS)
    details = detail_rows(runs)
    write_csv(out / "arms.csv", [{k: r[k] for k in ARMS_COLUMNS} for r in details], ARMS_COLUMNS)
    ablation = ablation_rows(runs, cfg.level)
    write_csv(out / "ablation.csv", ablation, ABLATION_COLUMNS)
    fidelity = fidelity_rows(runs, order[0][0] if order else None, cfg.level)
    write_csv(out / "fidelity.csv", fidelity, FIDELITY_COLUMNS)
    fid0 = step0_fidelity([r for r in summaries if r["kind"] == "step0"])
    speech = quality_rows(runs, order[0][0] if order else None, cfg.level)
    write_csv(out / "dnsmos_wer.csv", speech, QUALITY_COLUMNS)
    ceiling = read_ceiling(cfg.root) if speech else {}

    def sections(depth: int) -> str:
        return (ablation_markdown(ablation, depth, cfg.level)
                + fidelity_markdown(fidelity, fid0, len(runs), depth, cfg.level)
                + quality_markdown(speech, [r for r in summaries if r["kind"] == "step0"], ceiling, len(runs), depth,
                                   cfg.level))
    for arm in circular_filters(details):
        notes.append(f"{arm} filtered with the speaker encoder that scores the runs: its similarities are circular")
        log.warning("%s", notes[-1])
    no_r = "no p = 0 runs: R cannot be computed"
    plot_metric(agg, "R", out / "R.png", "R = S_T(p) - S_T(0), pair-level intervals", note=no_r)
    plot_metric(agg, "L", out / "L.png", "L = S_C(p) - S_C(0), pair-level intervals", note=no_r.replace("R", "L"))
    vs_ref = [{**r, "comparison": f"{r['arm_A']} - {r['arm_B']}"} for r in paired if r["arm_B"] == reference]
    plot_metric(vs_ref, "dR", out / "dR.png", f"ΔR = R(arm) - R({reference}), pair-level intervals",
                series="comparison",
                note="one arm: no comparison" if reference is None else "no paired units")
    md = render_markdown(cfg.title, cfg.level, facts, notes, agg, paired, step0, reference, ranking=ranking,
                         ranking_agg=ranking_agg, details=details, sections=sections(1)) + listening.markdown(1, out)
    atomic_write_text(out / "results.md", md)
    if cfg.results_md:
        # Beside the recipe with its own copies of plots and tables, so it can be committed without exp/;
        # only the block between the markers is ours, the rest of the file is curated by hand.
        target = Path(cfg.results_md)
        beside = target.resolve().parent / "results"
        beside.mkdir(parents=True, exist_ok=True)
        for name in PLOT_FILES + CSV_FILES + tuple(listening.files):
            atomic_write_bytes(beside / name, (out / name).read_bytes())
        block = render_markdown(cfg.title, cfg.level, facts, notes, agg, paired, step0, reference, depth=2,
                                img_prefix="results/", ranking=ranking, ranking_agg=ranking_agg, details=details,
                                sections=sections(2))
        block += listening.markdown(2, target.resolve().parent)
        # Bytes, not text mode: universal newlines would rewrite the curated text's line endings.
        existing = target.read_bytes().decode("utf-8") if target.is_file() else None
        atomic_write_bytes(target, splice_generated(existing, block).encode("utf-8"))
    return {"runs": len(runs), "summaries": len(summaries), "fine_tunings": facts["n_fine_tunings"],
            "warnings": notes, "ranking_tables": len(ranking), "out_dir": str(out), "listening": listening}


def main() -> None:
    """Console entry ``gradtts-report``; bad input (no or corrupt summaries) ends with one
    ``gradtts-report: error: ...`` line and status 2."""
    from omegaconf import OmegaConf

    from gradtts.config import cli_errors

    with cli_errors("gradtts-report"):  # errors before Hydra starts (e.g. no conf/ directory)
        from gradtts.config import hydra_entry

        @hydra_entry("report", register_config)
        def _run(cfg) -> None:
            with cli_errors("gradtts-report"):
                res = report(ReportConfig(**OmegaConf.to_container(cfg, resolve=True)))
            log.info("report: %d fine-tunings, %d summaries -> %s", res["fine_tunings"], res["summaries"],
                     res["out_dir"])

    _run()


if __name__ == "__main__":
    main()
