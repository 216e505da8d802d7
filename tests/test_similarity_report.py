"""Similarity, resilience/leakage/adaptation arithmetic, pair-level intervals and the rendered report.

Expected numbers are computed by hand in the comments from the synthetic summaries of ``_grid``; only
the t quantiles come from scipy.
"""

import json
import logging
import math

import numpy as np
import pytest
from scipy import stats

from gradtts.report.stats import (aggregate, arm_order, pair_and_seed_intervals, paired_rows, resilience_rows,
                                  t_interval)
from gradtts.scoring.similarity import centroid, similarity

T1, T3 = stats.t.ppf(0.975, 1), stats.t.ppf(0.975, 3)   # 12.7062, 3.18245

# Three arms, two of the same loss family (huber) with different δ: they must never share a p = 0 partner.
ARMS = {"l2": ("l2", "l2", "id_l2"), "h01": ("huber", "huber(δ=0.1)", "id_h01"),
        "h10": ("huber", "huber(δ=1.0)", "id_h10")}
# Hand-set R and L per (arm, pair, seed) at p = 0.3.
R = {("l2", "A_B", 0): -0.10, ("l2", "A_B", 1): -0.12, ("l2", "C_D", 0): -0.20, ("l2", "C_D", 1): -0.18,
     ("h01", "A_B", 0): -0.06, ("h01", "A_B", 1): -0.08, ("h01", "C_D", 0): -0.10, ("h01", "C_D", 1): -0.12,
     ("h10", "A_B", 0): -0.02, ("h10", "A_B", 1): -0.02, ("h10", "C_D", 0): -0.04, ("h10", "C_D", 1): -0.06}
L = {("l2", "A_B", 0): 0.05, ("l2", "A_B", 1): 0.07, ("l2", "C_D", 0): 0.09, ("l2", "C_D", 1): 0.11,
     ("h01", "A_B", 0): 0.03, ("h01", "A_B", 1): 0.03, ("h01", "C_D", 0): 0.05, ("h01", "C_D", 1): 0.07,
     ("h10", "A_B", 0): 0.01, ("h10", "A_B", 1): 0.01, ("h10", "C_D", 0): 0.02, ("h10", "C_D", 1): 0.02}
# Clean S_T differs per arm, so a p = 0 partner taken from the wrong arm gives a visibly wrong R.
CLEAN_T = {"l2": 0.80, "h01": 0.70, "h10": 0.60}
STEP0 = {"A_B": (0.50, 0.40), "C_D": (0.55, 0.45)}
SYNTH = {"n_timesteps": 10, "temperature": 1.5, "length_scale": 1.0}


def _summary(arm: str, pair: str, seed: int, p: float, step: int, **extra) -> dict:
    loss, label, arm_id = ARMS[arm]
    s_t0, s_c0 = CLEAN_T[arm] + 0.01 * seed, 0.30 + 0.01 * seed
    # Step 50 sits 0.05 below step 100 for every run, so R and L are the same at both steps.
    shift = 0.0 if step == 100 else -0.05
    s_t = s_t0 + shift + (R[(arm, pair, seed)] if p > 0 else 0.0)
    s_c = s_c0 + (L[(arm, pair, seed)] if p > 0 else 0.0)
    # Pair C_D lost clips in the feature stage: 7 of 20 corrupt instead of 6.
    n_corrupt = 0 if p == 0 else (6 if pair == "A_B" else 7)
    return {"kind": "run", "S_T": s_t, "S_C": s_c, "n_gen": 6, "encoder": "ge2e", "vocoder": "hifigan",
            "pair": pair, "step": step, "seed": seed, "loss": loss, "arm": label, "arm_id": arm_id, "p": p,
            "p_actual": n_corrupt / 20, "n_train": 20, "n_corrupt": n_corrupt, "synth": SYNTH,
            "gen_dir": "x", "future_field": [1, 2], **extra}


def _write(root, name: str, summary) -> None:
    d = root / name
    d.mkdir(parents=True)
    (d / "summary.json").write_text(summary if isinstance(summary, str) else json.dumps(summary))


def _grid(root, arms=("l2", "h01", "h10"), pairs=("A_B", "C_D"), ps=(0.0, 0.3), step0=True, **extra):
    for arm in arms:
        for pair in pairs:
            for seed in (0, 1):
                for p in ps:
                    for step in (50, 100):
                        _write(root, f"{pair}/{arm}/p{p:.2f}/seed{seed}/step{step}",
                               _summary(arm, pair, seed, p, step, **extra))
    if step0:
        for pair in pairs:
            s_t, s_c = STEP0[pair]
            _write(root, f"{pair}/step0", {"kind": "step0", "S_T": s_t, "S_C": s_c, "n_gen": 6, "encoder": "ge2e",
                                          "vocoder": "hifigan", "pair": pair, "step": 0, "seed": None, "loss": None,
                                          "arm": None, "arm_id": None, "p": 0, "synth": SYNTH})


def _report(tmp_path, **kw):
    from gradtts.report.cli import ReportConfig, report

    return report(ReportConfig(root=str(tmp_path / "runs"), out_dir=str(tmp_path / "report"), **kw))


def _csv(tmp_path, name):
    from gradtts.report.tables import read_csv

    return read_csv(tmp_path / "report" / name)


# --- similarity and intervals -------------------------------------------------------------------------------

def test_similarity_is_mean_cosine_to_reference_centroid():
    ref = np.array([[1.0, 0.0], [0.0, 1.0]])          # centroid (1, 1)/sqrt(2)
    gen = np.array([[1.0, 0.0], [1.0, 1.0]]) / np.array([[1.0], [math.sqrt(2)]])
    assert np.allclose(centroid(ref), [1 / math.sqrt(2)] * 2)
    assert similarity(gen, ref) == pytest.approx((1 / math.sqrt(2) + 1.0) / 2)


def test_t_interval_against_hand_computation():
    mean, half, n = t_interval([1.0, 2.0, 3.0, 4.0])
    # s = sqrt(5/3) = 1.29099, t(0.975, 3) = 3.18245, half = 3.18245 * 1.29099 / 2 = 2.05426
    assert (mean, n) == (2.5, 4) and half == pytest.approx(2.05426, abs=1e-4)
    assert t_interval([1.0, 2.0, 3.0, 4.0]).df == 3
    one = t_interval([0.7, math.nan])                  # NaN is dropped, not counted
    assert one.mean == 0.7 and math.isnan(one.half) and one.n == 1 and one.df == 0


def test_seeds_are_averaged_within_their_pair_before_the_interval():
    # Pair X has three seeds (1, 2, 3), pair Y one (10): pair means 2 and 10.
    pair_ci, seed_ci = pair_and_seed_intervals([("X", 1.0), ("X", 2.0), ("X", 3.0), ("Y", 10.0)])
    # Pair level: mean 6, s = 8/sqrt(2), half = t(1) * s / sqrt(2) = t(1) * 4.
    assert (pair_ci.mean, pair_ci.n, pair_ci.df) == (6.0, 2, 1) and pair_ci.half == pytest.approx(T1 * 4.0)
    # Seed level: mean 4, deviations -3 -2 -1 6, s^2 = 50/3, half = t(3) * sqrt(50/3) / 2.
    assert (seed_ci.mean, seed_ci.n, seed_ci.df) == (4.0, 4, 3)
    assert seed_ci.half == pytest.approx(T3 * math.sqrt(50 / 3) / 2)


# --- defect 1: pairing on arm_id ----------------------------------------------------------------------------

def _rows(step=100):
    rows = []
    for (arm, pair, seed) in R:
        for p in (0.0, 0.3):
            s = _summary(arm, pair, seed, p, step)
            rows.append({k: s[k] for k in ("arm", "arm_id", "loss", "pair", "seed", "p", "step", "S_T", "S_C",
                                            "p_actual")})
    return rows


def test_resilience_pairs_on_arm_id_so_two_deltas_of_one_loss_do_not_collide():
    rows = resilience_rows(_rows())
    for (arm, pair, seed), r_hand in R.items():
        row = next(x for x in rows if x["arm_id"] == ARMS[arm][2] and x["pair"] == pair and x["seed"] == seed
                   and x["p"] == 0.3)
        # With the old (loss, step, seed, pair) key, huber(δ=0.1) took huber(δ=1.0)'s clean run: R off by 0.10.
        assert row["R"] == pytest.approx(r_hand) and row["L"] == pytest.approx(L[(arm, pair, seed)])
    assert all(x["R"] == 0 and x["L"] == 0 for x in rows if x["p"] == 0.0)
    orphan = resilience_rows([dict(arm_id="x", pair="x", p=0.3, step=1, seed=0, S_T=0.5, S_C=0.1)])
    assert math.isnan(orphan[0]["R"]) and math.isnan(orphan[0]["L"])


def test_old_summaries_without_arm_fall_back_to_loss(tmp_path):
    for loss, drop in (("l2", 0.10), ("huber", 0.04)):
        for p in (0.0, 0.3):
            old = {"S_T": 0.8 - drop * (p > 0), "S_C": 0.3, "n_gen": 5, "encoder": "ge2e", "loss": loss, "p": p,
                   "step": 500, "seed": 0, "pair": "A_B"}
            _write(tmp_path / "runs", f"{loss}/p{p}", old)
    res = _report(tmp_path)
    assert res["runs"] == 4 and res["fine_tunings"] == 4
    agg = {(r["arm"], float(r["p"])): r for r in _csv(tmp_path, "results.csv")}
    assert agg[("l2", 0.3)]["arm_id"] == "l2" and agg[("l2", 0.3)]["loss"] == "l2"
    assert float(agg[("l2", 0.3)]["R"]) == pytest.approx(-0.10)
    assert float(agg[("huber", 0.3)]["R"]) == pytest.approx(-0.04)
    md = (tmp_path / "report" / "results.md").read_text()
    assert "Vocoder: not recorded ×4" in md and "Synthesis.** not recorded (4 summaries)" in md
    assert "No step-0 summaries: adaptation is not measured" in md
    # One pair: the pair-level interval is undefined and says so instead of printing NaN.
    assert "| l2 | l2 | -0.100 (n = 1, no interval) |" in md and "nan" not in md.lower()


# --- defect 2: paired comparisons and pair-level aggregation ------------------------------------------------

def test_aggregate_uses_pair_level_intervals_with_seed_level_beside():
    agg = {(a["arm_id"], a["p"], a["step"]): a for a in aggregate(resilience_rows(_rows()))}
    a = agg[("id_l2", 0.3, 100)]
    # l2 R: A_B (-0.10, -0.12) -> -0.11, C_D (-0.20, -0.18) -> -0.19; pair mean -0.15, s/sqrt(2) = 0.08/2.
    assert a["R"] == pytest.approx(-0.15) and a["R_ci"] == pytest.approx(T1 * 0.04)
    assert (a["R_n"], a["R_df"], a["n_pairs"], a["n_seeds"], a["n_runs"]) == (2, 1, 2, 2, 4)
    # Seed level over -0.10 -0.12 -0.20 -0.18: deviations ±0.05, ±0.03, s^2 = 0.0068/3.
    assert a["R_seed"] == pytest.approx(-0.15) and a["R_seed_ci"] == pytest.approx(T3 * math.sqrt(0.0068 / 3) / 2)
    assert (a["R_seed_n"], a["R_seed_df"]) == (4, 3)
    # p_actual: 6/20 for A_B, 7/20 for C_D -> mean 0.325.
    assert a["p_actual"] == pytest.approx(0.325)
    assert agg[("id_l2", 0.0, 100)]["R"] == 0.0 and agg[("id_l2", 0.0, 100)]["p_actual"] == 0.0


def test_paired_differences_match_hand_values():
    paired = paired_rows(resilience_rows(_rows()))
    assert arm_order(_rows())[0] == ("id_l2", "l2")            # the l2 arm is the reference
    assert {(r["arm_A"], r["arm_B"]) for r in paired} == {
        ("huber(δ=0.1)", "l2"), ("huber(δ=1.0)", "l2"), ("huber(δ=1.0)", "huber(δ=0.1)")}
    assert all(r["p"] == 0.3 for r in paired)                   # p = 0 is no comparison
    d = next(r for r in paired if (r["arm_A"], r["arm_B"]) == ("huber(δ=0.1)", "l2"))
    # ΔR units: A_B 0.04, 0.04; C_D 0.10, 0.06 -> pair means 0.04, 0.08 -> 0.06 ± t(1) * 0.02.
    assert d["dR"] == pytest.approx(0.06) and d["dR_ci"] == pytest.approx(T1 * 0.02)
    assert (d["dR_n"], d["dR_df"]) == (2, 1)
    # Seed level: 0.04 0.04 0.10 0.06, deviations -.02 -.02 .04 0, s^2 = 0.0024/3 = 0.0008.
    assert d["dR_seed"] == pytest.approx(0.06) and d["dR_seed_ci"] == pytest.approx(T3 * math.sqrt(0.0008) / 2)
    assert (d["dR_seed_n"], d["dR_seed_df"]) == (4, 3)
    # ΔL units: A_B -0.02, -0.04; C_D -0.04, -0.04 -> pair means -0.03, -0.04 -> -0.035 ± t(1) * 0.005.
    assert d["dL"] == pytest.approx(-0.035) and d["dL_ci"] == pytest.approx(T1 * 0.005)
    e = next(r for r in paired if (r["arm_A"], r["arm_B"]) == ("huber(δ=1.0)", "huber(δ=0.1)"))
    # ΔR units: A_B 0.04, 0.06; C_D 0.06, 0.06 -> pair means 0.05, 0.06 -> 0.055 ± t(1) * 0.005.
    assert e["dR"] == pytest.approx(0.055) and e["dR_ci"] == pytest.approx(T1 * 0.005)


def test_one_pair_has_no_pair_level_interval_but_a_seed_level_one(tmp_path):
    _grid(tmp_path / "runs", pairs=("A_B",))
    _report(tmp_path)
    d = next(r for r in _csv(tmp_path, "paired.csv")
             if (r["arm_A"], r["arm_B"], r["step"]) == ("huber(δ=0.1)", "l2", "100"))
    # ΔR units 0.04, 0.04: one pair -> no pair-level interval; seed level 0.04 ± 0 over n = 2.
    assert float(d["dR"]) == pytest.approx(0.04) and math.isnan(float(d["dR_ci"])) and d["dR_n"] == "1"
    assert float(d["dR_seed_ci"]) == pytest.approx(0.0, abs=1e-12) and (d["dR_seed_n"], d["dR_seed_df"]) == ("2", "1")
    md = (tmp_path / "report" / "results.md").read_text()
    assert "| huber(δ=0.1) − l2 | 0.30 | +0.040 (n = 1, no interval) | +0.040 ± 0.000 (n = 2, df = 1) |" in md
    assert "nan" not in md.lower()


# --- the full report: defects 2-6 ---------------------------------------------------------------------------

def test_report_tables_header_step0_and_plots(tmp_path, monkeypatch):
    import gradtts.report.plots as plots

    calls = {}
    real = plots.plot_metric

    def spy(agg, metric, path, *a, **kw):
        calls[metric] = list(agg)
        real(agg, metric, path, *a, **kw)

    monkeypatch.setattr(plots, "plot_metric", spy)
    _grid(tmp_path / "runs")
    res = _report(tmp_path)
    # 3 arms x 2 pairs x 2 p x 2 seeds = 24 fine-tunings, 2 steps each = 48 checkpoints, + 2 step-0 summaries.
    assert (res["fine_tunings"], res["runs"], res["summaries"]) == (24, 48, 50) and res["warnings"] == []
    out = tmp_path / "report"

    runs = _csv(tmp_path, "runs.csv")
    assert len(runs) == 50 and sum(r["kind"] == "step0" for r in runs) == 2
    r = next(x for x in runs if x["arm_id"] == "id_h01" and x["pair"] == "C_D" and x["seed"] == "1"
             and x["p"] == "0.3" and x["step"] == "100")
    # S_T = 0.71 - 0.12 = 0.59: R = -0.12, L = 0.07, A = 0.59 - 0.55 = 0.04.
    assert float(r["R"]) == pytest.approx(-0.12) and float(r["L"]) == pytest.approx(0.07)
    assert float(r["A"]) == pytest.approx(0.04) and r["loss"] == "huber" and r["arm"] == "huber(δ=0.1)"

    step0 = {x["pair"]: x for x in _csv(tmp_path, "step0.csv")}
    assert float(step0["C_D"]["S_T"]) == 0.55 and float(step0["C_D"]["S_C"]) == 0.45

    agg = {(x["arm_id"], x["p"], x["step"]): x for x in _csv(tmp_path, "results.csv")}
    assert len(agg) == 3 * 2 * 2
    a = agg[("id_l2", "0.3", "100")]
    # A: A_B 0.70 - 0.50, 0.69 - 0.50; C_D 0.60 - 0.55, 0.63 - 0.55 -> pair means 0.195, 0.065 -> 0.13 ± t(1)*0.065.
    assert float(a["A"]) == pytest.approx(0.13) and float(a["A_ci"]) == pytest.approx(T1 * 0.065)
    assert float(a["R"]) == pytest.approx(-0.15)
    assert float(a["R_seed_ci"]) == pytest.approx(T3 * math.sqrt(0.0068 / 3) / 2)
    # Step 50 sits 0.05 lower: A drops by 0.05, R is unchanged.
    assert float(agg[("id_l2", "0.3", "50")]["A"]) == pytest.approx(0.08)
    assert float(agg[("id_l2", "0.3", "50")]["R"]) == pytest.approx(-0.15)

    paired = _csv(tmp_path, "paired.csv")
    assert len(paired) == 3 * 2                                  # arm pairs x steps, p = 0.3 only
    d = next(x for x in paired if (x["arm_A"], x["arm_B"], x["step"]) == ("huber(δ=0.1)", "l2", "100"))
    assert float(d["dR"]) == pytest.approx(0.06) and float(d["dR_ci"]) == pytest.approx(T1 * 0.02)

    md = (out / "results.md").read_text()
    assert "**Grid.** 24 fine-tunings (distinct arm × pair × p × seed); 50 summaries scored: 48 fine-tuning " \
           "checkpoints and 2 step-0 models; 2 pairs (A_B, C_D); 2 seeds (0, 1); 3 arms; steps 50, 100." in md
    assert "Speaker encoder: ge2e ×50. Vocoder: hifigan ×50." in md
    assert "length_scale=1.0, n_timesteps=10, temperature=1.5 (50 summaries)" in md
    assert "| 0.30 | 0.325 | 0.300–0.350 | 6.5 / 20.0 | 12 (12) |" in md
    assert "| A_B | 0.500 | 0.400 | 6 |" in md and "## Step 100" in md
    # Tables group by arm label with the loss family as a column; R cells carry pair-level intervals.
    assert f"| l2 | l2 | -0.150 ± {T1 * 0.04:.3f} |" in md
    assert f"| huber(δ=0.1) − l2 | 0.30 | +0.060 ± {T1 * 0.02:.3f} (n = 2, df = 1) | +0.060 ± " \
           f"{T3 * math.sqrt(0.0008) / 2:.3f} (n = 4, df = 3) | no |" in md
    assert "Warning" not in md and "nan" not in md.lower()

    for png in ("R.png", "L.png", "dR.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # dR.png: each arm minus the l2 reference, with the pair-level interval as error bar.
    assert sorted({(x["comparison"], x["step"]) for x in calls["dR"]}) == [
        ("huber(δ=0.1) - l2", 50), ("huber(δ=0.1) - l2", 100),
        ("huber(δ=1.0) - l2", 50), ("huber(δ=1.0) - l2", 100)]
    e = next(x for x in calls["dR"] if x["comparison"] == "huber(δ=1.0) - l2" and x["step"] == 100)
    # ΔR units: A_B 0.08, 0.10; C_D 0.16, 0.12 -> pair means 0.09, 0.14 -> 0.115 ± t(1) * 0.025.
    assert e["dR"] == pytest.approx(0.115) and e["dR_ci"] == pytest.approx(T1 * 0.025)
    assert next(x for x in calls["R"] if x["arm_id"] == "id_l2" and x["p"] == 0.3 and x["step"] == 100)["R_ci"] \
        == pytest.approx(T1 * 0.04)


def test_reference_arm_can_be_chosen(tmp_path):
    _grid(tmp_path / "runs", arms=("h01", "h10"), step0=False)
    _report(tmp_path, reference_arm="id_h10")
    d = _csv(tmp_path, "paired.csv")
    assert {(x["arm_A"], x["arm_B"]) for x in d} == {("huber(δ=0.1)", "huber(δ=1.0)")}
    # ΔR = R(δ=0.1) - R(δ=1.0): the negative of e above, -0.055.
    assert float(next(x for x in d if x["step"] == "100")["dR"]) == pytest.approx(-0.055)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_grid_without_clean_runs_warns_instead_of_printing_nan(tmp_path, caplog):
    _grid(tmp_path / "runs", ps=(0.3,))
    res = _report(tmp_path)
    assert _warnings(caplog) == res["warnings"] == [
        "the grid has no p = 0 runs: R and L cannot be computed (each needs the clean run of the same arm, step, "
        "seed and pair); only S_T, S_C and A are reported"]
    md = (tmp_path / "report" / "results.md").read_text()
    assert "> **Warning.** the grid has no p = 0 runs: R and L cannot be computed" in md
    assert "nan" not in md.lower() and len(res["warnings"]) == 1
    # S_T and A are still reported (A for l2 at step 100 as in the full grid: 0.13).
    agg = next(x for x in _csv(tmp_path, "results.csv") if (x["arm_id"], x["step"]) == ("id_l2", "100"))
    assert float(agg["A"]) == pytest.approx(0.13) and math.isnan(float(agg["R"]))
    assert (tmp_path / "report" / "dR.png").stat().st_size > 5000


def test_mixed_encoders_and_griffinlim_are_flagged(tmp_path, caplog):
    _grid(tmp_path / "runs", arms=("l2",), step0=False, vocoder="griffinlim")
    extra = {**_summary("h01", "A_B", 0, 0.0, 100, vocoder="griffinlim"), "encoder": "ecapa"}
    _write(tmp_path / "runs", "extra", extra)
    _report(tmp_path)
    text = " ".join(_warnings(caplog))
    assert "speaker similarity on Griffin-Lim audio is not comparable" in text
    assert "mix speaker encoders (ecapa ×1, ge2e ×16)" in text
    md = (tmp_path / "report" / "results.md").read_text()
    assert "Speaker encoder: ecapa ×1, ge2e ×16. Vocoder: griffinlim ×17." in md
    assert "> **Warning.** 17 summaries were vocoded with Griffin-Lim: speaker similarity on Griffin-Lim audio is " \
           "not comparable" in md


def test_corrupt_summary_raises_naming_the_file(tmp_path):
    _grid(tmp_path / "runs", arms=("l2",), step0=False)
    _write(tmp_path / "runs", "broken", '{"S_T": 0.5, "S_C": ')
    with pytest.raises(ValueError, match=r"broken/summary.json: corrupt summary.json, not valid JSON"):
        _report(tmp_path)


def test_incomplete_summary_is_skipped_with_a_warning(tmp_path, caplog):
    _grid(tmp_path / "runs", arms=("l2",), step0=False)
    _write(tmp_path / "runs", "stray", {"S_T": 0.5, "S_C": 0.2})
    _write(tmp_path / "runs", "stray2", {"S_T": 0.4, "S_C": 0.1})
    assert _report(tmp_path)["runs"] == 16
    # Each skipped file is logged (a UserWarning showed only the first of a repeated condition).
    hint = ("score runs with +meta.loss=... +meta.p=... +meta.step=... +meta.seed=... +meta.pair=... and "
            "ref_intruder")
    assert _warnings(caplog) == [f"{tmp_path / 'runs' / name / 'summary.json'}: skipped, it lacks ['loss', 'p', "
                                 f"'step', 'seed', 'pair']; {hint}" for name in ("stray", "stray2")]


# --- defect 5: RESULTS.md keeps its curated text ------------------------------------------------------------

def test_results_md_keeps_curated_text_across_runs(tmp_path):
    from gradtts.report.tables import BEGIN_MARKER, END_MARKER

    _grid(tmp_path / "runs")
    res_md = tmp_path / "egs" / "RESULTS.md"
    res_md.parent.mkdir()
    before = "# My corpus\r\n\nHand-written analysis, keep me.  \n\n"
    after = "\n## Discussion\n\nAlso hand-written.\n"
    res_md.write_bytes((before + BEGIN_MARKER + "\nold generated text\n" + END_MARKER + "\n" + after).encode())
    _report(tmp_path, results_md=str(res_md))
    first = res_md.read_bytes().decode()
    assert first.startswith(before + BEGIN_MARKER + "\n## Resilience") and first.endswith(END_MARKER + "\n" + after)
    assert "old generated text" not in first and "](results/R.png)" in first and "](results/dR.png)" in first

    # A second run with a new grid (one more arm dropped) replaces the block, it does not add one.
    import shutil
    shutil.rmtree(tmp_path / "runs" / "A_B" / "h10")
    shutil.rmtree(tmp_path / "runs" / "C_D" / "h10")
    _report(tmp_path, results_md=str(res_md))
    second = res_md.read_bytes().decode()
    assert second.startswith(before + BEGIN_MARKER + "\n") and second.endswith(END_MARKER + "\n" + after)
    assert second.count(BEGIN_MARKER) == 1 and second.count(END_MARKER) == 1 and second.count("**Grid.**") == 1
    assert "2 arms" in second and "3 arms" not in second
    for name in ("R.png", "L.png", "dR.png", "results.csv", "runs.csv", "paired.csv", "step0.csv"):
        assert (res_md.parent / "results" / name).read_bytes() == (tmp_path / "report" / name).read_bytes()


def test_results_md_without_markers_gets_the_block_appended_and_a_new_file_just_the_block(tmp_path):
    from gradtts.report.tables import BEGIN_MARKER, END_MARKER, splice_generated

    assert splice_generated("curated\n", "body") == f"curated\n\n{BEGIN_MARKER}\nbody\n{END_MARKER}\n"
    assert splice_generated("no newline", "body") == f"no newline\n\n{BEGIN_MARKER}\nbody\n{END_MARKER}\n"
    assert splice_generated(None, "body\n") == f"{BEGIN_MARKER}\nbody\n{END_MARKER}\n"
    with pytest.raises(ValueError, match="malformed report markers"):
        splice_generated(f"{END_MARKER}\n{BEGIN_MARKER}\n", "body")

    _grid(tmp_path / "runs", arms=("l2",))
    fresh = tmp_path / "new" / "RESULTS.md"
    fresh.parent.mkdir()
    _report(tmp_path, results_md=str(fresh))
    text = fresh.read_text()
    assert text.startswith(BEGIN_MARKER + "\n## Resilience") and text.endswith(END_MARKER + "\n")
    curated = tmp_path / "old" / "RESULTS.md"
    curated.parent.mkdir()
    curated.write_text("# Old results\n\nkept\n")
    _report(tmp_path, results_md=str(curated))
    assert curated.read_text().startswith("# Old results\n\nkept\n\n" + BEGIN_MARKER + "\n")
