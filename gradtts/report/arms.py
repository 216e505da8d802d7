"""What the beyond-the-paper arms chose, run by run: the filters' clips, the adaptive δ, the LoRA voices.

The score summaries carry the trainer's records (``filter``, ``adaptive``, ``lora`` in ``run.json``); this
module turns them into ``arms.csv`` (one row per fine-tuning) and a markdown section, and says when a
filter and the scorer used the same speaker encoder (the filter then removes exactly what the scorer would
count against the run: its numbers are circular).
"""

from __future__ import annotations

import math
from collections import defaultdict

ARMS_COLUMNS = ("arm", "arm_id", "pair", "p", "seed", "filter", "filter_encoder", "n_in", "n_kept",
                "intruders_in", "intruders_removed", "dropped", "adaptive_quantile", "adaptive_delta_min",
                "lora_rank", "lora_params", "voice_bytes")


def detail_rows(runs: list[dict]) -> list[dict]:
    """One row per fine-tuning (arm, pair, p, seed) that has a filter, adaptive δ or LoRA record."""
    out: dict[tuple, dict] = {}
    for r in runs:
        flt, ada, lora = r.get("filter"), r.get("adaptive"), r.get("lora")
        if not (flt or ada or lora):
            continue
        key = (r["arm"], r["pair"], round(float(r["p"]), 6), int(r["seed"]))
        flt, ada, lora = flt or {}, ada or {}, lora or {}
        out[key] = {"arm": r["arm"], "arm_id": r["arm_id"], "pair": r["pair"], "p": float(r["p"]),
                    "seed": int(r["seed"]), "filter": flt.get("method"), "filter_encoder": flt.get("encoder"),
                    "n_in": flt.get("n_in"), "n_kept": flt.get("n_kept"), "intruders_in": flt.get("intruders_in"),
                    "intruders_removed": flt.get("intruders_removed"),
                    "dropped": " ".join(flt.get("dropped") or []) or None,
                    "adaptive_quantile": ada.get("quantile"), "adaptive_delta_min": ada.get("delta_min"),
                    "lora_rank": lora.get("rank"), "lora_params": lora.get("n_params"),
                    "voice_bytes": lora.get("voice_bytes"), "scorer": r.get("encoder")}
    return [out[k] for k in sorted(out)]


def circular_filters(rows: list[dict]) -> list[str]:
    """Arms whose embedding filter used the encoder the runs were scored with."""
    return sorted({r["arm"] for r in rows if r["filter"] == "embedding" and r["filter_encoder"]
                   and r["filter_encoder"] == r.get("scorer")})


def _mean(values) -> float:
    v = [float(x) for x in values if x is not None]
    return sum(v) / len(v) if v else math.nan


def details_markdown(rows: list[dict], depth: int = 1) -> str:
    """The arms' choices as markdown tables (empty string when no run has any)."""
    if not rows:
        return ""
    h = "#" * depth
    md = [f"\n{h}# What the filter, adaptive and LoRA arms chose\n\n"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["arm"], r["p"])].append(r)
    filt = [(k, g) for k, g in sorted(groups.items()) if g[0]["filter"]]
    if filt:
        md += ["**Filters.** Per arm and p, over its fine-tunings: clips kept of those in the set, and intruder clips "
               "removed of those present (summed over the runs).\n\n",
               "| arm | p | runs | clips kept | intruders removed |\n|---|---:|---:|---:|---:|\n"]
        for (arm, p), g in filt:
            kept = f"{_mean(r['n_kept'] for r in g):.1f} of {_mean(r['n_in'] for r in g):.0f}"
            ins = sum(int(r["intruders_in"] or 0) for r in g)
            removed = f"{sum(int(r['intruders_removed'] or 0) for r in g)} of {ins}" if ins else "no intruders"
            md.append(f"| {arm} | {p:.2f} | {len(g)} | {kept} | {removed} |\n")
        circular = circular_filters(rows)
        if circular:
            md.append(f"\n> **Circular.** {', '.join(circular)}: the filter chose clips with the same speaker encoder "
                      f"({rows[0].get('scorer')}) that scores the runs, so its S_T and S_C favour it by construction. "
                      "Filter with another encoder (`filter.encoder=ecapa filter.encoder_source=DIR`) or score with "
                      "one to break the circle.\n")
        md.append("\n")
    ada = [(k, g) for k, g in sorted(groups.items()) if g[0]["adaptive_delta_min"] is not None]
    if ada:
        md += ["**Adaptive δ.** δ_min measured per run (the quantile of the starting model's |residual| on its "
               "few-shot set):\n\n", "| arm | p | runs | quantile | δ_min mean | min | max |\n"
               "|---|---:|---:|---:|---:|---:|---:|\n"]
        for (arm, p), g in ada:
            d = [float(r["adaptive_delta_min"]) for r in g]
            md.append(f"| {arm} | {p:.2f} | {len(g)} | {g[0]['adaptive_quantile']:g} | {_mean(d):.4f} | "
                      f"{min(d):.4f} | {max(d):.4f} |\n")
        md.append("\n")
    lora = [(k, g) for k, g in sorted(groups.items()) if g[0]["lora_rank"] is not None]
    if lora:
        md += ["**LoRA.** Adapters trained instead of the decoder; the voice file holds only them and the speaker "
               "row:\n\n", "| arm | p | runs | rank | adapter parameters | voice file |\n"
               "|---|---:|---:|---:|---:|---:|\n"]
        for (arm, p), g in lora:
            size = _mean(r["voice_bytes"] for r in g)
            md.append(f"| {arm} | {p:.2f} | {len(g)} | {g[0]['lora_rank']} | {g[0]['lora_params']:,} | "
                      f"{size / 1024:.0f} KiB |\n")
        md.append("\n")
    return "".join(md)
