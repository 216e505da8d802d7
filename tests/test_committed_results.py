"""The committed study regenerates from the repository alone: report(committed summaries) == committed report.

Two committed studies, each the small per-run files of its runs (`grid collect`) and a RESULTS.md whose generated
block and the CSVs beside it (`results/`) must be exactly what `gradtts-report` makes of them, so a number in
either can always be traced to the summaries it came from:
- `egs/synthvox/results/study/finetune/` -> `egs/synthvox/RESULTS.md`: the CPU study;
- `egs/synthvox/ablation/finetune/` -> `egs/synthvox/ablation/RESULTS.md`: the schedule, robust-loss and fidelity
  ablation, with its own runs of the reference arms.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradtts.report.tables import BEGIN_MARKER, END_MARKER, read_csv

REPO = Path(__file__).resolve().parents[1]
EGS = REPO / "egs" / "synthvox"
STUDY = EGS / "results" / "study" / "finetune"
ABLATION = EGS / "ablation" / "finetune"
STUDIES = {"study": (STUDY, EGS / "RESULTS.md"), "ablation": (ABLATION, EGS / "ablation" / "RESULTS.md")}
CSVS = ("runs.csv", "results.csv", "paired.csv", "step0.csv", "ranking.csv", "ranking_summary.csv", "arms.csv",
        "ablation.csv", "fidelity.csv")


def _block(text: str) -> str:
    return text[text.index(BEGIN_MARKER):text.index(END_MARKER)]


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_committed_study_regenerates_its_report(tmp_path, study):
    root, results_md = STUDIES[study]
    if not root.is_dir():
        pytest.fail(f"{root} is missing: the committed study's summaries are part of the repository")
    md = tmp_path / "RESULTS.md"
    shutil.copyfile(results_md, md)
    # The documented command, from the repository root (paths in the tables are relative to it).
    r = subprocess.run([sys.executable, "-m", "gradtts.report.cli", f"root={root.relative_to(REPO)}",
                        f"out_dir={tmp_path / 'report'}", f"results_md={md}"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _block(md.read_text(encoding="utf-8")) == _block(results_md.read_text(encoding="utf-8"))
    committed = results_md.parent / "results"
    for name in CSVS:
        assert read_csv(tmp_path / "results" / name) == read_csv(committed / name), name
    runs = read_csv(committed / "runs.csv")
    pairs = {r["pair"] for r in runs if r["kind"] == "run"}
    seeds = {r["seed"] for r in runs if r["kind"] == "run"}
    assert len(pairs) >= 5 and len(seeds) >= 2  # the study's promised size
    assert {r["pair"] for r in runs if r["kind"] == "step0"} == pairs
