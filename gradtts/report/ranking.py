"""Which clips were corrupt? How well the trainer's residual ranking finds the intruder's clips.

Beside every kept checkpoint the trainer (``gradtts.train.tracker``) writes ``ckpt/step_<7-digit
step>.residuals.tsv`` (e.g. ``step_0000120.residuals.tsv``): the few-shot clips ranked by running mean
squared residual, largest first, with the manifest's ``corrupt`` flag. For every fine-tuning on a
corrupted set and every step > 0 this module scores that ranking as a detector of corrupt clips (ROC AUC
and precision@k, k = number of corrupt clips) and aggregates the scores per arm × p × step with the
pair-level intervals of docs/method.md §8 (``gradtts.report.stats.aggregate``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from gradtts.layout import parse_run_dir
from gradtts.report.cli import _n, _shown_path, _unique_labels
from gradtts.report.stats import aggregate, pair_and_seed_intervals

log = logging.getLogger(__name__)

_TABLE = re.compile(r"^step_(?P<step>\d+)\.residuals\.tsv$")
REQUIRED_COLUMNS = ("rank", "utt", "corrupt", "visits", "mean_sq_residual")
METRICS = ("auc", "precision_at_k")
RANKING_COLUMNS = ("pair", "arm", "arm_id", "loss", "p", "seed", "step", "n_train", "n_corrupt", "p_actual", "k",
                   "n", "n_unvisited", "auc", "precision_at_k", "auc_chance", "precision_chance", "table")
SUMMARY_COLUMNS = ("arm", "arm_id", "loss", "p", "step", "n_pairs", "n_runs", "auc", "auc_ci", "auc_n", "auc_df",
                   "precision_at_k", "precision_at_k_ci", "precision_at_k_n", "precision_at_k_df", "auc_chance",
                   "precision_chance")


def ranking_metrics(corrupt: Sequence[bool], scores: Sequence[float]) -> dict:
    """How well ``scores`` (higher = more suspect) single out the ``corrupt`` clips.

    Both lists are in the table's rank order. ``auc``: probability that a random corrupt clip scores
    higher than a random clean one, ties counting 1/2 (NaN when either class is empty).
    ``precision_at_k``: fraction of corrupt clips among the k highest scores, k = number of corrupt
    clips, ties at the cut broken by list order (NaN when k = 0). NaN scores (clips never visited) rank
    below every other clip and tie among themselves; ``n_unvisited`` counts them. Chance levels:
    ``auc_chance`` 0.5, ``precision_chance`` k / n.
    """
    if len(corrupt) != len(scores):
        raise ValueError(f"{len(corrupt)} corrupt flags for {len(scores)} scores")
    y = np.asarray(corrupt, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    unvisited = np.isnan(s)
    s = np.where(unvisited, -np.inf, s)   # bottom of the ranking, equal to each other
    n, k = len(y), int(y.sum())
    pos, neg = s[y], s[~y]
    if k and n - k:
        wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        auc = float(wins) / (k * (n - k))
    else:
        auc = math.nan
    # A stable sort keeps list (rank) order among equal scores, which decides ties at the cut.
    top = np.argsort(-s, kind="stable")[:k]
    precision = float(y[top].mean()) if k else math.nan
    return {"auc": auc, "precision_at_k": precision, "k": k, "n": n, "n_unvisited": int(unvisited.sum()),
            "auc_chance": 0.5, "precision_chance": k / n if n else math.nan}


def _parse_row(path: Path, lineno: int, fields: list[str], header: list[str]) -> dict:
    where = f"{path}:{lineno}"
    if len(fields) != len(header):
        raise ValueError(f"{where}: {len(fields)} fields, the header has {len(header)}; malformed residual table")
    rec = dict(zip(header, fields))
    try:
        rank, visits, residual = int(rec["rank"]), int(rec["visits"]), float(rec["mean_sq_residual"])
    except ValueError as e:
        raise ValueError(f"{where}: malformed residual table row ({e})") from e
    if rec["corrupt"] not in ("0", "1"):
        raise ValueError(f"{where}: corrupt must be 0 or 1, found {rec['corrupt']!r}; malformed residual table")
    if rank < 1 or visits < 0:
        raise ValueError(f"{where}: rank must be ≥ 1 and visits ≥ 0 (found {rank}, {visits}); "
                         "malformed residual table")
    return {"rank": rank, "utt": rec["utt"], "corrupt": rec["corrupt"] == "1", "visits": visits,
            "mean_sq_residual": residual, "line": lineno}


def read_residual_table(path: str | Path) -> list[dict]:
    """The rows of a ``step_*.residuals.tsv`` in rank order; a malformed table raises a ValueError naming
    the file and line."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}:1: residual table header lacks {missing} (found {header})")
    rows, seen = [], {}
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        row = _parse_row(path, lineno, line.split("\t"), header)
        if row["rank"] in seen:
            raise ValueError(f"{path}:{lineno}: rank {row['rank']} already given on line {seen[row['rank']]}; "
                             "malformed residual table")
        seen[row["rank"]] = lineno
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}:2: residual table has a header but no clips")
    return sorted(rows, key=lambda r: r["rank"])


def table_metrics(rows: Sequence[dict]) -> dict:
    """:func:`ranking_metrics` of a residual table (unvisited clips scored NaN whatever their residual)."""
    return ranking_metrics([r["corrupt"] for r in rows],
                           [r["mean_sq_residual"] if r["visits"] else math.nan for r in rows])


def _read_record(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: corrupt run.json, not valid JSON ({e})") from e
    if not isinstance(rec, dict):
        raise ValueError(f"{path}: corrupt run.json, expected a JSON object, found {type(rec).__name__}")
    return rec


def _table_coordinates(path: Path) -> dict | None:
    """pair, loss tag, p, seed, step of a table from its path, or None when it is not in the run layout."""
    m_step, ckpt = _TABLE.match(path.name), path.parent
    key = parse_run_dir(ckpt.parent)  # the run layout has one owner, gradtts.layout
    if not (m_step and key and ckpt.name == "ckpt"):
        return None
    return {"run": ckpt.parent, "pair": key.pair, "loss_tag": key.loss_tag, "p": key.p, "seed": key.seed,
            "step": int(m_step.group("step"))}


def _ranking_row(path: Path, where: dict, rec: dict, rows: list[dict]) -> dict | None:
    """One ranking.csv row, or None when the run is not corrupted."""
    n_corrupt = rec.get("n_corrupt")
    k_table = sum(r["corrupt"] for r in rows)
    if not ((n_corrupt or 0) > 0 or k_table > 0):
        return None
    if n_corrupt is not None and int(n_corrupt) != k_table:
        log.warning("%s: %d corrupt clips in the table, run.json says n_corrupt = %s; the table's flags are used",
                    path, k_table, n_corrupt)
    if any(r["visits"] and math.isnan(r["mean_sq_residual"]) for r in rows):
        log.warning("%s: visited clips with a NaN residual (a diverged run?) are ranked last", path)
    tag = where["loss_tag"]
    return {"pair": where["pair"], "arm": str(rec.get("arm") or tag), "arm_id": str(rec.get("arm_id") or tag),
            "loss": str(rec.get("loss") or tag), "p": where["p"], "seed": where["seed"], "step": where["step"],
            "n_train": rec.get("n_train"), "n_corrupt": n_corrupt, "p_actual": rec.get("p_actual"),
            **table_metrics(rows), "table": _shown_path(path)}


def collect_rankings(root: str | Path) -> list[dict]:
    """One row per (fine-tuning on a corrupted set, step > 0) under ``root``: its ranking metrics.

    A run is corrupted when its ``run.json`` has ``n_corrupt > 0`` or its table flags a corrupt clip.
    Tables outside the ``<pair>/<loss tag>/p<frac>/seed<k>/ckpt/`` layout are skipped with a warning,
    step-0 tables (nothing visited yet) silently. Arm labels shared by several arm_ids get the id
    appended, as in the rest of the report.
    """
    out, records = [], {}
    for path in sorted(Path(root).rglob("step_*.residuals.tsv")):
        where = _table_coordinates(path)
        if where is None:
            log.warning("%s: residual table outside the <pair>/<loss tag>/p<frac>/seed<k>/ckpt layout; skipped", path)
            continue
        if where["step"] == 0:
            continue
        rows = read_residual_table(path)
        if not any(r["visits"] for r in rows):
            continue
        run = where["run"]
        if run not in records:
            records[run] = _read_record(run / "run.json")
        row = _ranking_row(path, where, records[run], rows)
        if row is not None:
            out.append(row)
    _unique_labels(out)
    return out


def aggregate_rankings(rows: Sequence[dict], level: float = 0.95) -> list[dict]:
    """Per arm × p × step: AUC and precision@k with pair-level intervals (seeds averaged within a pair
    first, t over pairs), their seed-level ones, n_pairs, n_runs and the chance levels."""
    agg = aggregate(rows, metrics=METRICS, level=level)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["arm_id"], round(float(r["p"]), 6), int(r["step"]))].append(r)
    for a in agg:
        g = groups[(a["arm_id"], a["p"], a["step"])]
        # k / n is a property of the pair's few-shot set; average it like the metric it is the chance of.
        chance, _ = pair_and_seed_intervals(((r["pair"], float(r["precision_chance"])) for r in g), level)
        a["auc_chance"], a["precision_chance"] = 0.5, chance.mean
    return agg


def _chance_text(rows: Sequence[dict]) -> str:
    values = [float(r["precision_chance"]) for r in rows if not math.isnan(float(r["precision_chance"]))]
    if not values:
        return "–"
    lo, hi = min(values), max(values)
    return f"{lo:.3f}" if hi - lo < 5e-4 else f"{lo:.3f}–{hi:.3f}, depending on the few-shot set"


def ranking_markdown(rows: Sequence[dict], agg: Sequence[dict], level: float, depth: int = 1) -> str:
    """The report's section on the residual ranking; one line when there are no residual tables."""
    from gradtts.report.tables import ranking_table

    h = "#" * (depth + 1)
    md = [f"\n{h} Which clips were corrupt? (residual ranking)\n\n"]
    if not rows:
        md.append("No residual tables of fine-tunings on corrupted sets (`ckpt/step_*.residuals.tsv`, step > 0) "
                  "were found: runs trained before the trainer wrote them have none.\n")
        return "".join(md)
    runs = {(r["arm_id"], r["pair"], round(float(r["p"]), 6), r["seed"]) for r in rows}
    pairs, seeds = sorted({r["pair"] for r in rows}), sorted({r["seed"] for r in rows})
    unvisited = sum(int(r["n_unvisited"]) for r in rows)
    md.append("During fine-tuning the trainer ranks the few-shot clips by their running mean squared residual, "
              "largest first (`ckpt/step_*.residuals.tsv` beside each checkpoint); if the model finds the intruder's "
              "clips odd, they rank on top. **AUC**: probability that a random corrupt clip ranks above a random "
              "clean one (ties count ½; chance 0.5). **P@k**: fraction of corrupt clips among the k top-ranked, "
              f"k = number of corrupt clips (chance k/n = {_chance_text(rows)}). Cells: mean ± {level * 100:g} % "
              "t-interval over pairs (seeds averaged within a pair first, df = n_pairs − 1). "
              f"From {_n(len(rows), 'residual table')} of {_n(len(runs), 'fine-tuning')} on corrupted sets "
              f"({_n(len(pairs), 'pair')}, {_n(len(seeds), 'seed')})")
    if unvisited:
        md.append(f"; {_n(unvisited, 'clip entry', 'clip entries')} not yet visited at the table's step, ranked last")
    md.append(". Per-table values: `ranking.csv`; aggregates with seed-level intervals: `ranking_summary.csv`.\n\n")
    md.append(ranking_table(agg))
    return "".join(md)
