"""Quality (DNSMOS) and intelligibility (ASR WER) beside robustness, paired against a reference arm, with a ceiling.

Stage 7 puts the means of ``quality.json`` and ``intelligibility.json`` into each ``summary.json``
(``dnsmos_ovrl``... ``wer``, ``cer``: :mod:`gradtts.scoring.metrics`); :func:`gradtts.report.cli.normalise_summary`
reads them into the report rows as ``OVRL``, ``SIG``, ``BAK``, ``P808``, ``WER`` and ``CER`` (NaN where a summary
has none: summaries made before these metrics). This module builds ``dnsmos_wer.csv`` and its markdown section,
as :mod:`gradtts.report.fidelity` does for MCD: per arm × p × step the pair-level means of OVRL and WER, and the
paired difference to the reference arm (L2 by default) on the same pair, seed, p and step; at p = 0 that is the price
of the arm on clean data. The ceiling is the same two metrics on the target's real recordings of the test
sentences (``step0/score/real/``, ``kind: real``). A metric whose ceiling is poor cannot tell systems apart: when
the ASR's WER on the real recordings is above :data:`POOR_CEILING_WER`, the WER columns give way to a note.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path

from gradtts.layout import REAL
from gradtts.report.stats import pair_and_seed_intervals

log = logging.getLogger(__name__)

#: report column -> summary.json field
SUMMARY_FIELDS = {"OVRL": "dnsmos_ovrl", "SIG": "dnsmos_sig", "BAK": "dnsmos_bak", "P808": "dnsmos_p808",
                  "WER": "wer", "CER": "cer"}
#: The metrics tabled and paired with the reference arm.
PAIRED = ("OVRL", "WER")
QUALITY_COLUMNS = ("arm", "arm_id", "loss", "p", "step", "n_runs", "n_pairs", "OVRL", "OVRL_ci", "WER", "WER_ci",
                   "reference", "dOVRL", "dOVRL_ci", "dOVRL_n", "dWER", "dWER_ci", "dWER_n")
#: Above this WER on the target's own recordings the ASR is too poor a judge to table its WER of the systems.
POOR_CEILING_WER = 0.5
#: The files of the ceiling (kind: real) and the key of their "mean" the report reads.
CEILING_FILES = {"OVRL": ("quality.json", "ovrl"), "WER": ("intelligibility.json", "wer")}


def summary_metrics(s: dict) -> dict[str, float]:
    """The report's quality and intelligibility values of one summary (NaN for each it lacks)."""
    return {m: math.nan if s.get(key) is None else float(s[key]) for m, key in SUMMARY_FIELDS.items()}


def present(rows: list[dict]) -> list[str]:
    """The metrics of :data:`SUMMARY_FIELDS` that at least one row has (the report's optional columns)."""
    return [m for m in SUMMARY_FIELDS if any(not math.isnan(r.get(m, math.nan)) for r in rows)]


def read_ceiling(root: str | Path) -> dict[str, dict[str, float]]:
    """``pair -> {OVRL, WER}`` of the target's real recordings, from every ``real/`` score folder under ``root``."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for m, (name, key) in CEILING_FILES.items():
        for f in sorted(Path(root).rglob(name)):
            if f.parent.name != REAL:
                continue
            try:
                d = json.loads(f.read_text(encoding="utf-8"))
                value, pair = d["mean"].get(key), d.get("pair") or f.parents[3].name
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(f"{f}: corrupt {name} ({e}); delete it and re-run the scoring (stage 7)") from e
            if value is not None:
                out[str(pair)][m] = float(value)
    return dict(out)


def ceiling_means(ceiling: dict[str, dict[str, float]]) -> dict[str, tuple[float, int]]:
    """``metric -> (mean over the pairs that have it, number of those pairs)``."""
    out = {}
    for m in CEILING_FILES:
        vals = [c[m] for c in ceiling.values() if m in c]
        out[m] = (sum(vals) / len(vals) if vals else math.nan, len(vals))
    return out


def quality_rows(runs: list[dict], reference_id: str | None, level: float = 0.95) -> list[dict]:
    """Per arm × p × step with OVRL or WER: pair-level means and Δ to ``reference_id``, paired."""
    from gradtts.report.fidelity import fidelity_rows

    return fidelity_rows(runs, reference_id, level, metrics=PAIRED)


def _step0_line(step0_rows: list[dict], show_wer: bool) -> str:
    by_pair: dict[str, list[dict]] = defaultdict(list)
    for r in step0_rows:
        by_pair[r["pair"]].append(r)
    parts = []
    for m in PAIRED if show_wer else PAIRED[:1]:
        ci, _ = pair_and_seed_intervals((pair, float(r.get(m, math.nan))) for pair, g in by_pair.items() for r in g)
        if ci.n:
            parts.append(f"OVRL {ci.mean:.2f}" if m == "OVRL" else f"WER {100 * ci.mean:.1f} %")
            n = ci.n
    return f"Step 0 (base model with the new speaker row), mean over {n} pairs: {', '.join(parts)}.\n\n" if parts \
        else ""


def poor_ceiling_note(ceiling: dict[str, dict[str, float]]) -> str | None:
    """The note that replaces the WER columns when the ASR misreads the target's own recordings; None otherwise."""
    wer, n = ceiling_means(ceiling)["WER"]
    if n and wer > POOR_CEILING_WER:
        return (f"intelligibility not reported: the ASR's WER on the target's real recordings is {wer:.2f} "
                "(ceiling too poor to tell systems apart)")
    return None


def quality_markdown(rows: list[dict], step0_rows: list[dict], ceiling: dict[str, dict[str, float]],
                     n_runs: int, depth: int = 1, level: float = 0.95) -> str:
    """The quality and intelligibility section: the ceiling, step 0, and a table per step."""
    from gradtts.report.tables import fmt_interval

    if not rows:
        return ""
    h = "#" * depth
    note = poor_ceiling_note(ceiling)
    if note:
        log.warning("%s", note)
    has_wer = any(not math.isnan(r["WER"]) for r in rows)
    show_wer = has_wer and note is None
    pct = f"{level * 100:g} %"
    md = [f"\n{h}# Quality and intelligibility\n\n",
          "DNSMOS OVRL (1–5, higher is better; `gradtts/scoring/quality.py`) of each generated test sentence"
          + (" and the word error rate of an ASR transcript of it against its text (lower is better; "
             "`gradtts/scoring/intelligibility.py`)" if has_wer else "")
          + f". {sum(r['n_runs'] for r in rows)} of {n_runs} scored fine-tuning checkpoints have them. Cells: "
          f"mean ± {pct} pair-level interval; Δ is paired with the reference arm on pair, seed, p and step. At "
          "p = 0, Δ is the price of the arm on clean data.\n\n"]
    ceil = ceiling_means(ceiling)
    if ceil["OVRL"][1] or ceil["WER"][1]:
        parts = [f"OVRL {ceil['OVRL'][0]:.2f}"] if ceil["OVRL"][1] else []
        parts += [f"WER {100 * ceil['WER'][0]:.1f} %"] if ceil["WER"][1] and show_wer else []
        n = max(ceil["OVRL"][1], ceil["WER"][1])
        md.append(f"The target's real recordings (ceiling), mean over {n} pairs: {', '.join(parts)}.\n\n")
    elif has_wer:
        md.append("No ceiling: the target's real recordings were not scored (stage 7 scores them with step 0 of "
                  "each pair that has `ref_test/`).\n\n")
    if note:
        md.append(f"> **Note.** {note}.\n\n")
    md.append(_step0_line(step0_rows, show_wer))
    for step in sorted({r["step"] for r in rows}):
        sel = [r for r in rows if r["step"] == step]
        ref = next((r["reference"] for r in sel if r["reference"]), None)
        head = "| arm | p | pairs | OVRL | ΔOVRL vs reference |"
        head += " WER (%) | ΔWER vs reference |" if show_wer else ""
        md += [f"**Step {step}**" + (f" (reference: {ref})" if ref else "") + "\n\n", head + "\n",
               "|---|---:|---:|---|---|" + ("---|---|" if show_wer else "") + "\n"]
        for r in sel:
            n, has_ref = r["n_pairs"], r["reference"] is not None
            cells = [fmt_interval(r["OVRL"], r["OVRL_ci"], n, digits=2, signed=False),
                     fmt_interval(r["dOVRL"], r["dOVRL_ci"], r["dOVRL_n"], digits=2) if has_ref else "–"]
            if show_wer:
                cells += [fmt_interval(100 * r["WER"], 100 * r["WER_ci"], n, digits=1, signed=False),
                          fmt_interval(100 * r["dWER"], 100 * r["dWER_ci"], r["dWER_n"], digits=1)
                          if has_ref else "–"]
            md.append(f"| {r['arm']} | {r['p']:.2f} | {n} | " + " | ".join(cells) + " |\n")
        md.append("\n")
    return "".join(md)
