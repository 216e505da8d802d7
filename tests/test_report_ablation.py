"""The schedule and robust-loss ablation tables and the fidelity columns of the report, on summaries laid out as the
grid writes them (``<run>/score/step_N/summary.json`` with ``run.json`` two levels up and ``fidelity.json`` beside)."""

import json
import math

import pytest
from scipy import stats

from gradtts.report.ablation import ablation_markdown, ablation_rows, loss_spec
from gradtts.report.cli import ReportConfig, collect, report
from gradtts.report.fidelity import attach_fidelity, fidelity_rows, read_fidelity, step0_fidelity
from gradtts.report.stats import resilience_rows
from gradtts.report.tables import read_csv

PAIRS = ("A_B", "C_D", "E_F")
SEEDS = (0, 1)
# tag -> identity.loss as the trainer records it
ARMS = {
    "l2": {"name": "l2"},
    "huber_d0.1": {"name": "huber", "delta": 0.1},
    "sh_exp_0.1": {"name": "scheduled_huber", "delta_min": 0.1, "schedule": "exponential"},
    "sh_lin_0.1": {"name": "scheduled_huber", "delta_min": 0.1, "schedule": "linear"},
    "sh_back_0.1": {"name": "scheduled_huber", "delta_min": 0.1, "schedule": "backwards"},
    "sh_step_0.1": {"name": "scheduled_huber", "delta_min": 0.1, "schedule": "step", "step_t": 0.3},
    "sh_exp_0.01": {"name": "scheduled_huber", "delta_min": 0.01, "schedule": "exponential"},
    "sh_snr_0.01": {"name": "scheduled_huber", "delta_min": 0.01, "schedule": "snr"},
    "cauchy_exp_0.1": {"name": "cauchy", "delta_min": 0.1, "schedule": "exponential"},
    "adaptive": {"name": "adaptive_huber", "delta_min": 0.1, "schedule": "exponential", "quantile": 0.5},
}


def s_t(tag: str, pair: int, seed: int, p: float) -> float:
    """A distinct, known S_T per cell: R = S_T(0.3) - S_T(0) = -(0.01 * arm + 0.003 * pair + 0.002 * seed)."""
    arm = list(ARMS).index(tag)
    return 0.8 - p / 0.3 * (0.01 * arm + 0.003 * pair + 0.002 * seed * (1 + arm % 3))


def s_c(tag: str, pair: int, seed: int, p: float) -> float:
    return 0.3 + p / 0.3 * (0.02 + 0.004 * list(ARMS).index(tag) * (pair + 1) + 0.001 * seed)


def mcd(tag: str, pair: int, seed: int, p: float) -> float:
    return 6.0 + 0.1 * list(ARMS).index(tag) + 0.2 * pair + 0.05 * seed + p


def vde(tag: str, pair: int, p: float) -> float:
    return 0.2 + 0.01 * list(ARMS).index(tag) + 0.02 * pair + 0.1 * p


def write_study(root, fidelity_tags=("l2", "sh_exp_0.1")):
    for tag, loss in ARMS.items():
        for i, pair in enumerate(PAIRS):
            for seed in SEEDS:
                for p in (0.0, 0.3):
                    run = root / pair / tag / f"p{p:.2f}" / f"seed{seed}"
                    out = run / "score" / "step_0000120"
                    out.mkdir(parents=True)
                    (run / "run.json").write_text(json.dumps({"identity": {"loss": loss, "adapt": {}}}))
                    summary = {"kind": "run", "pair": pair, "loss": loss["name"], "arm": tag, "arm_id": f"id-{tag}",
                               "p": p, "seed": seed, "step": 120, "S_T": s_t(tag, i, seed, p),
                               "S_C": s_c(tag, i, seed, p), "n_gen": 6, "encoder": "ge2e", "vocoder": "hifigan"}
                    if tag == "adaptive":
                        summary["adaptive"] = {"quantile": 0.5, "delta_min": 0.14}
                    (out / "summary.json").write_text(json.dumps(summary))
                    if tag in fidelity_tags:
                        (out / "fidelity.json").write_text(json.dumps(
                            {"mean": {"mcd_db": mcd(tag, i, seed, p), "log_f0_rmse_cents": 100.0 + 10 * i + p * 50,
                                      "vde": vde(tag, i, p)}}))
    return root


def pair_interval(values_by_pair: dict[str, list[float]]) -> tuple[float, float]:
    means = [sum(v) / len(v) for v in values_by_pair.values()]
    n = len(means)
    mean = sum(means) / n
    sd = math.sqrt(sum((m - mean) ** 2 for m in means) / (n - 1))
    return mean, stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)


def _runs(root):
    rows = collect(root)
    return resilience_rows([r for r in rows if r["kind"] == "run"])


def test_loss_spec_reads_run_json_and_maps_huber_to_the_constant_schedule(tmp_path):
    runs = _runs(write_study(tmp_path / "runs"))
    cache = {}
    spec = {r["arm"]: loss_spec(r, cache) for r in runs}
    assert spec["huber_d0.1"] == {"loss": "huber", "schedule": "constant", "delta_min": 0.1,
                                  "label": "pseudo-Huber, constant, δ_min = 0.1"}
    assert spec["sh_back_0.1"]["schedule"] == "increasing"  # the old alias is one schedule with the new name
    assert spec["sh_step_0.1"]["label"] == "pseudo-Huber, step at t = 0.3, δ_min = 0.1"
    assert spec["cauchy_exp_0.1"]["label"] == "Cauchy, exponential, δ_min = 0.1"
    assert spec["l2"]["loss"] == "l2" and spec["adaptive"] is None  # adaptive δ is another question


def test_schedule_ablation_is_paired_against_exponential_at_the_same_delta_min(tmp_path):
    runs = _runs(write_study(tmp_path / "runs"))
    rows = ablation_rows(runs)
    sched = {r["arm"]: r for r in rows if r["table"] == "schedule"}
    assert set(sched) == {"pseudo-Huber, exponential, δ_min = 0.1", "pseudo-Huber, constant, δ_min = 0.1",
                          "pseudo-Huber, linear, δ_min = 0.1", "pseudo-Huber, increasing, δ_min = 0.1",
                          "pseudo-Huber, step at t = 0.3, δ_min = 0.1", "pseudo-Huber, exponential, δ_min = 0.01",
                          "pseudo-Huber, snr, δ_min = 0.01"}
    lin = sched["pseudo-Huber, linear, δ_min = 0.1"]
    assert lin["reference"] == "pseudo-Huber, exponential, δ_min = 0.1" and lin["n_pairs"] == 3
    # ΔR by hand: per pair, the seed mean of R(linear) - R(exponential); then the t-interval over pairs.
    diffs = {pair: [(s_t("sh_lin_0.1", i, seed, 0.3) - s_t("sh_lin_0.1", i, seed, 0.0))
                    - (s_t("sh_exp_0.1", i, seed, 0.3) - s_t("sh_exp_0.1", i, seed, 0.0)) for seed in SEEDS]
             for i, pair in enumerate(PAIRS)}
    mean, half = pair_interval(diffs)
    assert lin["dR"] == pytest.approx(mean) and lin["dR_ci"] == pytest.approx(half) and lin["dR_n"] == 3
    assert lin["dR"] == pytest.approx(-0.01 + 0.002 * (3 - 1) / 2)  # one arm index on; seed terms differ
    snr = sched["pseudo-Huber, snr, δ_min = 0.01"]
    assert snr["reference"] == "pseudo-Huber, exponential, δ_min = 0.01"
    dl = {pair: [(s_c("sh_snr_0.01", i, seed, 0.3) - s_c("sh_snr_0.01", i, seed, 0.0))
                 - (s_c("sh_exp_0.01", i, seed, 0.3) - s_c("sh_exp_0.01", i, seed, 0.0)) for seed in SEEDS]
          for i, pair in enumerate(PAIRS)}
    assert (snr["dL"], snr["dL_ci"]) == pytest.approx(pair_interval(dl))
    ref = sched["pseudo-Huber, exponential, δ_min = 0.1"]
    assert ref["reference"] is None and math.isnan(ref["dR"])
    md = ablation_markdown(rows, depth=2)
    assert "### Schedule ablation (step 120)" in md and "### Robust-loss ablation (step 120)" in md
    assert f"| pseudo-Huber, linear, δ_min = 0.1 | 0.30 | 3 | {lin['R']:+.3f} ± {lin['R_ci']:.3f} |" in md
    assert "| pseudo-Huber, exponential, δ_min = 0.1 | 0.30 | 3 |" in md and "(the reference)" in md


def test_loss_ablation_compares_with_pseudo_huber_of_the_same_schedule_and_with_l2(tmp_path):
    rows = [r for r in ablation_rows(_runs(write_study(tmp_path / "runs"))) if r["table"] == "loss"]
    assert [(r["arm"], r["reference"]) for r in rows] == [
        ("Cauchy, exponential, δ_min = 0.1", "pseudo-Huber, exponential, δ_min = 0.1"),
        ("Cauchy, exponential, δ_min = 0.1", "l2")]
    # R = -(0.01 arm + 0.003 pair + 0.002 seed (1 + arm % 3)): Cauchy is arm 8, pseudo-Huber exponential 2, l2 0;
    # the pair term cancels, seeds 0 and 1 are averaged within each pair.
    assert rows[0]["dR"] == pytest.approx(-0.06) and rows[0]["dR_ci"] == pytest.approx(0.0, abs=1e-9)
    assert rows[1]["dR"] == pytest.approx(-0.08 - 0.002 * (3 - 1) / 2) and rows[1]["dR_n"] == 3


def test_fidelity_is_read_beside_each_summary_and_paired_with_l2(tmp_path):
    root = write_study(tmp_path / "runs")
    runs = _runs(root)
    assert attach_fidelity(runs) == len(PAIRS) * len(SEEDS) * 2 * 2
    rows = {(r["arm"], r["p"]): r for r in fidelity_rows(runs, "id-l2")}
    assert set(rows) == {("l2", 0.0), ("l2", 0.3), ("sh_exp_0.1", 0.0), ("sh_exp_0.1", 0.3)}
    clean = rows[("sh_exp_0.1", 0.0)]
    mean, half = pair_interval({pair: [mcd("sh_exp_0.1", i, s, 0.0) for s in SEEDS] for i, pair in enumerate(PAIRS)})
    assert (clean["MCD"], clean["MCD_ci"]) == pytest.approx((mean, half))
    # The price on clean data, paired with l2: 2 arm indices x 0.1 dB, the same in every unit (no spread).
    assert clean["dMCD"] == pytest.approx(0.2) and clean["dMCD_ci"] == pytest.approx(0.0, abs=1e-9)
    assert clean["reference"] == "l2" and rows[("l2", 0.0)]["reference"] is None
    # VDE likewise: its arm offset is 0.01 per arm index, paired exactly.
    assert clean["VDE"] == pytest.approx(sum(vde("sh_exp_0.1", i, 0.0) for i in range(len(PAIRS))) / len(PAIRS))
    assert clean["dVDE"] == pytest.approx(0.02) and clean["dVDE_n"] == len(PAIRS)
    missing = read_fidelity(tmp_path / "nowhere" / "summary.json")
    assert all(math.isnan(v) for v in missing.values())


def test_step0_fidelity_averages_each_metric_over_the_pairs_that_have_it():
    nan = math.nan
    rows = [{"pair": "A_B", "MCD": 12.0, "F0_RMSE": nan, "VDE": 0.2},   # no frame voiced in both
            {"pair": "C_D", "MCD": 11.0, "F0_RMSE": 90.0, "VDE": 0.4},
            {"pair": "E_F", "MCD": nan, "F0_RMSE": nan, "VDE": nan}]    # not measured: not a pair of the mean
    out = step0_fidelity(rows)
    assert out["n_pairs"] == 2 and out["MCD"] == pytest.approx(11.5) and out["VDE"] == pytest.approx(0.3)
    assert (out["F0_RMSE"], out["F0_RMSE_pairs"]) == (90.0, 1)


def test_corrupt_fidelity_file_names_itself(tmp_path):
    out = tmp_path / "score"
    out.mkdir()
    (out / "fidelity.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"fidelity\.json: corrupt fidelity\.json .*stage 7"):
        read_fidelity(out / "summary.json")


def test_report_writes_ablation_and_fidelity_tables(tmp_path):
    root = write_study(tmp_path / "runs")
    report(ReportConfig(root=str(root), out_dir=str(tmp_path / "out")))
    ab = read_csv(tmp_path / "out" / "ablation.csv")
    assert {r["table"] for r in ab} == {"schedule", "loss"} and len(ab) == 7 + 2
    fid = read_csv(tmp_path / "out" / "fidelity.csv")
    assert len(fid) == 4 and {r["arm"] for r in fid} == {"l2", "sh_exp_0.1"}
    runs = read_csv(tmp_path / "out" / "runs.csv")
    row = next(r for r in runs if r["arm"] == "l2" and r["pair"] == "C_D" and r["seed"] == "1" and r["p"] == "0.3")
    assert float(row["MCD"]) == pytest.approx(mcd("l2", 1, 1, 0.3))
    assert next(r for r in runs if r["arm"] == "huber_d0.1")["MCD"] in ("", "nan")
    md = (tmp_path / "out" / "results.md").read_text()
    assert "# Schedule ablation (step 120)" in md and "# Fidelity to the target's recordings" in md
    assert "24 of 120 scored fine-tuning checkpoints have fidelity" in md
