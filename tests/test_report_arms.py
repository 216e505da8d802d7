"""The beyond-the-paper arms in the report: what the trainer records reaches arms.csv and the markdown."""

import json

from gradtts.data.manifest import ManifestEntry
from gradtts.grid import Run
from gradtts.report.cli import ReportConfig, report
from gradtts.report.tables import read_csv
from gradtts.train.filters import choose


def _record(method: str, p: float, seed: int) -> dict:
    """A run.json as the trainer writes it for an L2 + filter arm (the filter's own summary)."""
    corrupt = {"u00", "u01"} if p > 0 else set()
    items = [ManifestEntry(f"u{i:02d}", "T", "x", [0], "m.npy", 10, f"u{i:02d}" in corrupt) for i in range(10)]
    # The filter finds one of the two intruders; seed 1 finds both.
    scores = [5.0, 4.0 if seed else 0.05] + [0.1 * i for i in range(8)]
    res = choose(method, items, scores, 0.2, {"encoder": "ge2e"} if method == "embedding" else {"probe_steps": 60})
    return {"arm": f"l2 + {method} filter (drop 0.2)", "arm_id": f"{method}-arm", "loss": "l2",
            "p_actual": 0.0, "n_train": 8, "n_corrupt": 0, "filter": res.summary(),
            "adaptive": None, "lora": None}


def _write(root, pair, rec, p, seed, s_t, s_c):
    meta = Run(pair, "tag", p, seed, root, rec).meta  # what grid score writes into summary.json
    assert ("filter" in meta) == bool(rec.get("filter")) and "adaptive" not in meta
    d = root / pair / rec["arm_id"] / f"p{p:.2f}" / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({**meta, "step": 120, "S_T": s_t, "S_C": s_c, "n_gen": 6,
                                                "encoder": "ge2e", "vocoder": "hifigan"}))


def test_filter_choices_and_circularity_reach_the_report(tmp_path):
    root = tmp_path / "runs"
    for pair in ("A_B", "C_D"):
        for seed in (0, 1):
            for p in (0.0, 0.3):
                for method in ("embedding", "residual"):
                    _write(root, pair, _record(method, p, seed), p, seed, 0.7 - 0.1 * p, 0.3 + 0.1 * p)
                _write(root, pair, {"arm": "l2", "arm_id": "l2-arm", "loss": "l2"}, p, seed, 0.7 - 0.2 * p, 0.3)
    res = report(ReportConfig(root=str(root), out_dir=str(tmp_path / "out")))
    rows = read_csv(tmp_path / "out" / "arms.csv")
    assert len(rows) == 2 * 2 * 2 * 2  # arms x pairs x seeds x p; the plain l2 arm has nothing to record
    noisy = [r for r in rows if r["filter"] == "residual" and float(r["p"]) > 0]
    assert sorted(int(r["intruders_removed"]) for r in noisy) == [1, 1, 2, 2]
    assert all(r["n_kept"] == "8" and r["n_in"] == "10" for r in rows)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| l2 + residual filter (drop 0.2) | 0.30 | 4 | 8.0 of 10 | 6 of 8 |" in md
    assert "| l2 + embedding filter (drop 0.2) | 0.00 | 4 | 8.0 of 10 | no intruders |" in md
    # The embedding filter used the scorer's encoder: said in the section and among the warnings.
    assert "**Circular.** l2 + embedding filter (drop 0.2)" in md
    assert any("embedding filter" in w and "circular" in w for w in res["warnings"])
    assert not any("residual filter" in w for w in res["warnings"])
