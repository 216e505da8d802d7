"""Similarity, resilience/leakage arithmetic, confidence intervals and the rendered report."""

import json
import math

import numpy as np
import pytest

from gradtts.scoring.similarity import aggregate, centroid, resilience_rows, similarity, t_interval


def test_similarity_is_mean_cosine_to_reference_centroid():
    ref = np.array([[1.0, 0.0], [0.0, 1.0]])          # centroid (1, 1)/sqrt(2)
    gen = np.array([[1.0, 0.0], [1.0, 1.0]]) / np.array([[1.0], [math.sqrt(2)]])
    assert np.allclose(centroid(ref), [1 / math.sqrt(2)] * 2)
    assert similarity(gen, ref) == pytest.approx((1 / math.sqrt(2) + 1.0) / 2)


def test_t_interval_against_hand_computation():
    mean, half, n = t_interval([1.0, 2.0, 3.0, 4.0])
    # s = sqrt(5/3) = 1.29099, t(0.975, 3) = 3.18245, half = 3.18245 * 1.29099 / 2 = 2.05426
    assert (mean, n) == (2.5, 4) and half == pytest.approx(2.05426, abs=1e-4)
    m1, h1, n1 = t_interval([0.7])
    assert m1 == 0.7 and math.isnan(h1) and n1 == 1


def _runs():
    runs = []
    for loss, drop in (("l2", 0.10), ("scheduled_huber", 0.04)):
        for seed in (0, 1):
            for pair in ("A_B", "C_D"):
                base_t, base_c = 0.80 + 0.01 * seed, 0.30 + 0.02 * (pair == "C_D")
                runs.append(dict(loss=loss, p=0.0, step=500, seed=seed, pair=pair, S_T=base_t, S_C=base_c))
                runs.append(dict(loss=loss, p=0.3, step=500, seed=seed, pair=pair, S_T=base_t - drop - 0.01 * seed,
                                 S_C=base_c + drop / 2))
    return runs


def test_resilience_and_leakage_match_hand_values():
    rows = resilience_rows(_runs())
    r = next(x for x in rows if x["loss"] == "l2" and x["p"] == 0.3 and x["seed"] == 1 and x["pair"] == "A_B")
    assert r["R"] == pytest.approx(-0.11) and r["L"] == pytest.approx(0.05)
    assert all(x["R"] == 0 and x["L"] == 0 for x in rows if x["p"] == 0.0)
    agg = {(a["loss"], a["p"]): a for a in aggregate(rows)}
    a = agg[("scheduled_huber", 0.3)]
    # R over (seed, pair): -0.04, -0.04, -0.05, -0.05 -> mean -0.045, s = 0.005774, t(3) half = 0.009187
    assert a["R"] == pytest.approx(-0.045) and a["R_ci"] == pytest.approx(0.009187, abs=1e-5) and a["n"] == 4
    assert a["R_n"] == 4
    assert a["L"] == pytest.approx(0.02) and a["L_ci"] == pytest.approx(0.0, abs=1e-12)
    orphan = resilience_rows([dict(loss="l2", p=0.3, step=1, seed=0, pair="x", S_T=0.5, S_C=0.1)])
    assert math.isnan(orphan[0]["R"])


def test_report_files_render_from_a_fixture(tmp_path):
    from gradtts.report.cli import ReportConfig, report
    from gradtts.report.tables import read_csv

    for i, run in enumerate(_runs()):
        d = tmp_path / "runs" / f"run{i}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({**run, "n_gen": 5}))
    out = tmp_path / "report"
    (tmp_path / "runs" / "stray").mkdir()
    (tmp_path / "runs" / "stray" / "summary.json").write_text(json.dumps({"S_T": 0.5, "S_C": 0.2}))
    with pytest.warns(UserWarning, match=r"stray/summary.json: skipped, it lacks \['loss'"):
        res = report(ReportConfig(root=str(tmp_path / "runs"), out_dir=str(out)))
    assert res["runs"] == 16
    agg = read_csv(out / "results.csv")
    row = next(r for r in agg if r["loss"] == "l2" and float(r["p"]) == 0.3)
    assert float(row["R"]) == pytest.approx(-0.105)
    md = (out / "results.md").read_text()
    assert "| l2 | +0.000 ± 0.000 | -0.105 ± 0.009 |" in md and "## Step 500" in md
    for png in ("R.png", "L.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert len(read_csv(out / "runs.csv")) == 16

    # A recipe's RESULTS.md gets its own copies of plots and tables, referenced relatively.
    res_md = tmp_path / "egs" / "RESULTS.md"
    res_md.parent.mkdir()
    with pytest.warns(UserWarning, match="stray"):
        report(ReportConfig(root=str(tmp_path / "runs"), out_dir=str(out), results_md=str(res_md)))
    text = res_md.read_text()
    assert "](results/R.png)" in text and "](results/L.png)" in text and "## Step 500" in text
    for name in ("R.png", "L.png", "results.csv", "runs.csv"):
        assert (res_md.parent / "results" / name).read_bytes() == (out / name).read_bytes()
