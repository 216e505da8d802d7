"""The embedded recipe end to end on a tiny corpus and a tiny model (egs/synthvox/run.sh --preset smoke)."""

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked_state() -> dict[str, bytes]:
    """Contents of every tracked file under egs/ (RESULTS.md, results/, base model card)."""
    files = subprocess.run(["git", "ls-files", "egs"], capture_output=True, text=True, cwd=ROOT).stdout.split()
    return {f: (ROOT / f).read_bytes() for f in files if (ROOT / f).is_file()}


@pytest.mark.slow  # the whole synthvox recipe, stages 0-8, at its smoke preset: 115 CPU-s (tests/conftest.py)
@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("flite")),
                    reason="espeak-ng/flite not installed (apt-get install -y espeak-ng flite)")
def test_synthvox_recipe_smoke(tmp_path):
    exp = tmp_path / "exp"
    cmd = ["bash", str(ROOT / "egs/synthvox/run.sh"), "--preset", "smoke", "--exp", str(exp)]
    tracked = _tracked_state()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert _tracked_state() == tracked  # a run writes under its exp dir only, never into the checkout
    assert sorted(p.name for p in (exp / ".done").iterdir()) == [f"stage{i}" for i in range(9)]
    # Stages 4-7 keep one marker per pair (a pair added later runs alone), the others one for the experiment.
    assert [sorted(p.name for p in (exp / f".done/stage{i}").iterdir()) for i in (4, 5, 6, 7)] == [["sv024_sv025"]] * 4
    assert all((exp / f".done/stage{i}").is_file() for i in (0, 1, 2, 3, 8))
    runs = sorted(exp.glob("finetune/sv024_sv025/*/p*/seed0"))
    assert [f"{p.parent.parent.name}/{p.parent.name}" for p in runs] == [
        "huber_d0.1/p0.00", "huber_d0.1/p0.30", "l2/p0.00", "l2/p0.30",
        "scheduled_huber_exponential_dmin0.1/p0.00", "scheduled_huber_exponential_dmin0.1/p0.30"]
    corrupt = (exp / "fewshot/sv024_sv025/p0.30/corrupt").read_text().split()
    assert len(corrupt) == 2 and all(u.startswith("sv024-intruder-sv025_") for u in corrupt)
    summary = json.loads((runs[0] / "score/step_0000004/summary.json").read_text())
    assert summary["loss"] == "huber" and summary["p"] == 0.0 and summary["step"] == 4 and summary["n_gen"] == 2
    assert summary["arm"] == "huber(δ=0.1)" and summary["vocoder"] == "griffinlim" and summary["p_actual"] == 0
    step0 = json.loads((exp / "finetune/sv024_sv025/step0/score/step_0000000/summary.json").read_text())
    assert step0["kind"] == "step0" and step0["n_gen"] == 2
    with open(exp / "report/results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2 * 2  # losses x p x steps
    assert all(float(r["R"]) == 0.0 for r in rows if float(r["p"]) == 0.0)
    assert (exp / "report/R.png").stat().st_size > 5000
    # Stage 7 measures fidelity against the pair's ref_test recordings of the same sentences; stage 8 reads it.
    fid = json.loads((runs[0] / "score/step_0000004/fidelity.json").read_text())
    assert fid["n_utts"] == 2 and [r["gen"] for r in fid["rows"]] == [r["ref"] for r in fid["rows"]]
    assert 0 < fid["mean"]["mcd_db"] < 100
    with open(exp / "report/fidelity.csv") as f:
        fid_rows = {(r["loss"], r["p"], r["step"]): r for r in csv.DictReader(f)}
    assert float(fid_rows[("huber", "0.0", "4")]["MCD"]) == pytest.approx(fid["mean"]["mcd_db"])
    # Stage 8 writes the listening page by default; every clip it points at exists.
    page = exp / "report/listening"
    sources = re.findall(r'src="([^"]+)"', (page / "index.html").read_text())
    assert len(sources) >= 2 * 2 + 6 * 2 and all((page / s).is_file() for s in sources)
    assert (page / "ab.html").is_file()
    # Re-running is safe: every stage is skipped.
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.count("skipping") == 9


def test_no_recipe_rewrites_committed_results_by_default():
    """Refreshing a committed RESULTS.md is an explicit --results_md; no corpus preset passes it."""
    for script in sorted(ROOT.glob("egs/*/run.sh")):
        code = [line for line in script.read_text().splitlines() if not line.lstrip().startswith("#")]
        assert not [line for line in code if "--results_md" in line], script
