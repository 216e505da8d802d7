"""``gradtts-report``: collect score summaries into resilience/leakage tables and plots.

    gradtts-report root=exp/synthvox/finetune out_dir=exp/synthvox/report

Every ``summary.json`` under ``root`` with ``loss, p, step, seed, pair`` fields is one run. Writes
``runs.csv`` (one row per run with R and L), ``results.csv`` (mean and 95 % CI per loss, p, step),
``results.md`` (tables of R and L per step) and ``R.png`` / ``L.png``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class ReportConfig:
    root: str = "???"
    out_dir: str = "???"
    level: float = 0.95
    title: str = "Resilience to corrupted few-shot data"
    results_md: Optional[str] = None   # also write the markdown here (e.g. egs/<corpus>/RESULTS.md)


def collect(root: str | Path) -> list[dict]:
    from tqdm import tqdm

    runs = []
    for path in tqdm(sorted(Path(root).rglob("summary.json")), desc="collect", unit="run"):
        s = json.loads(path.read_text())
        missing = [k for k in ("loss", "p", "step", "seed", "pair") if k not in s]
        if missing or s.get("S_C") is None:
            warnings.warn(f"{path}: skipped, it lacks {missing or ['S_C (no ref_intruder)']}; score runs with "
                          "+meta.loss=... +meta.p=... +meta.step=... +meta.seed=... +meta.pair=... and ref_intruder")
            continue
        runs.append({"loss": str(s["loss"]), "p": float(s["p"]), "step": int(s["step"]), "seed": int(s["seed"]),
                     "pair": str(s["pair"]), "S_T": float(s["S_T"]), "S_C": float(s["S_C"]),
                     "n_gen": int(s.get("n_gen", 0)), "summary": str(path)})
    if not runs:
        raise FileNotFoundError(f"{root}: no summary.json with loss/p/step/seed/pair fields found")
    return runs


def report(cfg: ReportConfig) -> dict:
    from gradtts.io import atomic_write_bytes, atomic_write_text
    from gradtts.report.plots import plot_metric
    from gradtts.report.tables import markdown_table, write_csv
    from gradtts.scoring.similarity import aggregate, resilience_rows

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = resilience_rows(collect(cfg.root))
    agg = aggregate(rows, level=cfg.level)
    write_csv(out / "runs.csv", rows)
    write_csv(out / "results.csv", agg)
    seeds = sorted({r["seed"] for r in rows})
    pairs = sorted({r["pair"] for r in rows})
    md = [f"# {cfg.title}\n", f"{len(rows)} runs: losses {sorted({r['loss'] for r in rows})}, "
          f"seeds {seeds}, pairs {pairs}. Cells: mean ± {int(cfg.level * 100)} % t-interval half-width over "
          f"seeds x pairs (no interval when n = 1).\n",
          "R = S_T(p) − S_T(0): similarity to the target lost through corruption (closer to 0 is better).  ",
          "L = S_C(p) − S_C(0): similarity gained toward the intruder (closer to 0 is better).\n"]
    for step in sorted({r["step"] for r in rows}):
        md += [f"\n## Step {step}\n", "\n**R (resilience)**\n\n", markdown_table(agg, "R", step),
               "\n**L (leakage)**\n\n", markdown_table(agg, "L", step),
               "\n**S_T (similarity to the target)**\n\n", markdown_table(agg, "S_T", step)]
    md += ["\n![R](R.png)\n", "\n![L](L.png)\n"]
    atomic_write_text(out / "results.md", "".join(md))
    plot_metric(agg, "R", out / "R.png", "R = S_T(p) - S_T(0)")
    plot_metric(agg, "L", out / "L.png", "L = S_C(p) - S_C(0)")
    if cfg.results_md:
        # Beside the recipe with its own copies of plots and tables, so it can be committed without exp/.
        beside = Path(cfg.results_md).resolve().parent / "results"
        beside.mkdir(parents=True, exist_ok=True)
        for name in ("R.png", "L.png", "results.csv", "runs.csv"):
            atomic_write_bytes(beside / name, (out / name).read_bytes())
        atomic_write_text(cfg.results_md, "".join(md).replace("](R.png)", "](results/R.png)")
                          .replace("](L.png)", "](results/L.png)"))
    return {"runs": len(rows), "out_dir": str(out)}


def main() -> None:
    from omegaconf import OmegaConf

    from gradtts.config import hydra_entry

    @hydra_entry("report", "report_schema", ReportConfig)
    def _run(cfg) -> None:
        res = report(ReportConfig(**OmegaConf.to_container(cfg, resolve=True)))
        print(f"report: {res['runs']} runs -> {res['out_dir']}")

    _run()


if __name__ == "__main__":
    main()
