"""Residual ranking as a corrupt-clip detector: AUC, precision@k, the residual tables and the report section.

Expected numbers are computed by hand in the comments; only the t quantile comes from scipy. A ranking
is written as a string of corrupt flags in rank order ("10100": ranks 1 and 3 are corrupt), scores
strictly decreasing, so AUC = fraction of (corrupt, clean) pairs in which the corrupt clip ranks higher.
"""

import json
import logging
import math

import pytest
from scipy import stats

from gradtts.report.ranking import collect_rankings, ranking_metrics, read_residual_table, table_metrics

T1 = stats.t.ppf(0.975, 1)   # 12.7062
HEADER = "rank\tutt\tspk\tcorrupt\tvisits\tmean_sq_residual\tmean_loss\n"


def _table_text(flags: str, unvisited_last: bool = False, visits: int = 3) -> str:
    """A residual table in the tracker's format: ``flags`` in rank order, residuals 1.0, 0.9, ..."""
    lines = [HEADER]
    for i, f in enumerate(flags):
        never = unvisited_last and i == len(flags) - 1
        v, res = (0, "nan") if never else (visits, f"{1.0 - 0.1 * i:.6g}")
        lines.append(f"{i + 1}\tu{i:02d}\t{'C' if f == '1' else 'T'}\t{f}\t{v}\t{res}\t{res}\n")
    return "".join(lines)


# --- the metrics ---------------------------------------------------------------------------------------------

def test_perfect_and_inverse_rankings():
    perfect = ranking_metrics([True, True, False, False, False], [4.0, 3.0, 2.0, 1.0, 0.0])
    assert (perfect["auc"], perfect["precision_at_k"], perfect["k"], perfect["n"]) == (1.0, 1.0, 2, 5)
    assert perfect["auc_chance"] == 0.5 and perfect["precision_chance"] == pytest.approx(0.4)
    assert perfect["n_unvisited"] == 0
    inverse = ranking_metrics([True, True, False, False, False], [0.0, 1.0, 2.0, 3.0, 4.0])
    assert (inverse["auc"], inverse["precision_at_k"]) == (0.0, 0.0)


def test_ties_count_half_and_are_cut_in_rank_order_with_unvisited_clips_last():
    # Rank order: 5 (corrupt), 3 (clean), 3 (clean), 3 (corrupt), unvisited (corrupt), unvisited (clean).
    m = ranking_metrics([True, False, False, True, True, False], [5.0, 3.0, 3.0, 3.0, math.nan, math.nan])
    # (corrupt, clean) pairs, 3 x 3: 5 beats all three -> 3; the corrupt 3 ties both clean 3s (1/2 each) and
    # beats the unvisited clean one -> 2; the unvisited corrupt one loses to both 3s and ties the unvisited
    # clean one -> 1/2. AUC = 5.5 / 9.
    assert m["auc"] == pytest.approx(5.5 / 9)
    # k = 3: the cut falls inside the three-way tie at 3; rank order keeps the two clean ones -> 1/3 (not 2/3).
    assert m["precision_at_k"] == pytest.approx(1 / 3)
    assert (m["k"], m["n"], m["n_unvisited"]) == (3, 6, 2) and m["precision_chance"] == 0.5


def test_unvisited_clip_goes_to_the_bottom_wherever_it_is_listed():
    m = ranking_metrics([False, True], [math.nan, 0.1])
    assert (m["auc"], m["precision_at_k"], m["n_unvisited"]) == (1.0, 1.0, 1)


def test_empty_classes_give_nan_not_a_number_that_looks_measured():
    clean = ranking_metrics([False, False], [1.0, 2.0])
    assert math.isnan(clean["auc"]) and math.isnan(clean["precision_at_k"]) and clean["k"] == 0
    assert clean["precision_chance"] == 0.0
    dirty = ranking_metrics([True, True], [1.0, 2.0])
    assert math.isnan(dirty["auc"]) and dirty["precision_at_k"] == 1.0 and dirty["precision_chance"] == 1.0
    with pytest.raises(ValueError, match="2 corrupt flags for 1 scores"):
        ranking_metrics([True, False], [1.0])


# --- the residual tables -------------------------------------------------------------------------------------

def test_table_is_read_in_rank_order_and_unvisited_clips_score_nan(tmp_path):
    path = tmp_path / "step_0000010.residuals.tsv"
    lines = _table_text("01001", unvisited_last=True).splitlines(keepends=True)
    path.write_text(lines[0] + "".join(reversed(lines[1:])))       # rows out of order: the rank column decides
    rows = read_residual_table(path)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5] and rows[-1]["visits"] == 0
    m = table_metrics(rows)
    # Corrupt at ranks 2 and 5 (5 never visited); clean at 1, 3, 4. Rank 2 beats 3 and 4 -> 2 of 6 pairs.
    # P@2: ranks 1 (clean) and 2 (corrupt) -> 1/2.
    assert m["auc"] == pytest.approx(2 / 6) and m["precision_at_k"] == 0.5 and m["n_unvisited"] == 1


@pytest.mark.parametrize("bad, where, what", [
    ("1\tu0\tT\t0\t3\t0.9\t0.9\n2\tu1\tC\t1\t3\n", ":3:", "5 fields, the header has 7"),
    ("1\tu0\tT\t0\t3\tlots\t0.9\n", ":2:", "malformed residual table row"),
    ("1\tu0\tT\tyes\t3\t0.9\t0.9\n", ":2:", "corrupt must be 0 or 1"),
    ("1\tu0\tT\t0\t3\t0.9\t0.9\n1\tu1\tC\t1\t3\t0.8\t0.8\n", ":3:", "rank 1 already given on line 2"),
    ("", ":2:", "header but no clips"),
])
def test_malformed_table_raises_naming_file_and_line(tmp_path, bad, where, what):
    run = tmp_path / "runs" / "A_B" / "l2" / "p0.30" / "seed0"
    (run / "ckpt").mkdir(parents=True)
    (run / "ckpt" / "step_0000010.residuals.tsv").write_text(HEADER + bad)
    with pytest.raises(ValueError, match=rf"seed0/ckpt/step_0000010\.residuals\.tsv{where} .*{what}"):
        collect_rankings(tmp_path / "runs")


def test_table_without_required_columns_names_line_1(tmp_path):
    path = tmp_path / "step_0000010.residuals.tsv"
    path.write_text("utt\tr\nu0\t0.5\n")
    with pytest.raises(ValueError, match=r"step_0000010\.residuals\.tsv:1: residual table header lacks \['rank'"):
        read_residual_table(path)


def test_disagreeing_run_json_is_flagged_and_the_table_wins(tmp_path, caplog):
    run = tmp_path / "A_B" / "l2" / "p0.30" / "seed0"
    (run / "ckpt").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"arm": "l2", "arm_id": "x", "loss": "l2", "n_train": 5, "n_corrupt": 3}))
    (run / "ckpt" / "step_0000010.residuals.tsv").write_text(_table_text("11000"))
    (row,) = collect_rankings(tmp_path)
    table = run / "ckpt" / "step_0000010.residuals.tsv"
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"{table}: 2 corrupt clips in the table, run.json says n_corrupt = 3; the table's flags "
                          "are used")]
    assert (row["k"], row["n_corrupt"], row["auc"], row["p"], row["seed"], row["step"]) == (2, 3, 1.0, 0.3, 0, 10)


# --- the report ----------------------------------------------------------------------------------------------

# Two arms; the directory tag differs from the label, so labels must come from run.json.
ARMS = {"l2": ("l2", "l2", "id_l2", "l2"),
        "sh": ("scheduled_huber", "sched-huber", "id_sh", "scheduled_huber_exponential_dmin0.01")}
N_CLIPS = {"A_B": 5, "C_D": 4}     # A_B: 2 of 5 corrupt (chance 0.4), C_D: 1 of 4 (chance 0.25)
# Rankings at p = 0.3 per (arm, pair, seed) at step 100, with their hand (AUC, P@k).
STEP100 = {("l2", "A_B", 0): "10100",   # 5/6, 1/2
           ("l2", "A_B", 1): "01100",   # 4/6, 1/2
           ("l2", "C_D", 0): "0100",    # 2/3, 0
           ("l2", "C_D", 1): "0010",    # 1/3, 0
           ("sh", "A_B", 0): "11000",   # 1, 1
           ("sh", "A_B", 1): "11000",   # 1, 1
           ("sh", "C_D", 0): "1000",    # 1, 1
           ("sh", "C_D", 1): "0100"}    # 2/3, 0
# Step 50, every arm and seed: the last clip (corrupt) not yet visited.
STEP50 = {"A_B": "01001",   # corrupt at 2 and 5 (unvisited): 2 of 6 pairs -> 1/3; P@2 1/2
          "C_D": "0001"}    # the one corrupt clip unvisited: 0; P@1 0


def _summary(arm: str, pair: str, seed: int, p: float, step: int) -> dict:
    loss, label, arm_id, _ = ARMS[arm]
    n_corrupt = 0 if p == 0 else (2 if pair == "A_B" else 1)
    return {"kind": "run", "S_T": 0.7 - 0.1 * p, "S_C": 0.3 + 0.1 * p, "n_gen": 4, "encoder": "ge2e",
            "vocoder": "hifigan", "pair": pair, "step": step, "seed": seed, "loss": loss, "arm": label,
            "arm_id": arm_id, "p": p, "p_actual": n_corrupt / N_CLIPS[pair], "n_train": N_CLIPS[pair],
            "n_corrupt": n_corrupt}


def _grid(root, tables: bool = True) -> None:
    """<pair>/<tag>/p<frac>/seed<k>/ with run.json, ckpt/*.residuals.tsv and score/*/summary.json."""
    for arm, (loss, label, arm_id, tag) in ARMS.items():
        for pair, n in N_CLIPS.items():
            for seed in (0, 1):
                for p in (0.0, 0.3):
                    run = root / pair / tag / f"p{p:.2f}" / f"seed{seed}"
                    (run / "ckpt").mkdir(parents=True)
                    n_corrupt = _summary(arm, pair, seed, p, 0)["n_corrupt"]
                    (run / "run.json").write_text(json.dumps(
                        {"identity": {}, "arm_id": arm_id, "arm": label, "loss": loss, "loss_tag": tag, "seed": seed,
                         "study": {"pair": pair, "pset": f"p{p:.2f}"}, "n_train": n, "n_corrupt": n_corrupt,
                         "p_actual": n_corrupt / n}))
                    for step in (50, 100):
                        s = run / "score" / f"step_{step:07d}"
                        s.mkdir(parents=True)
                        (s / "summary.json").write_text(json.dumps(_summary(arm, pair, seed, p, step)))
                    if not tables:
                        continue
                    ck = run / "ckpt"
                    clean = "0" * n
                    table = clean if p == 0 else STEP50[pair]
                    (ck / "step_0000000.residuals.tsv").write_text(_table_text(table, visits=0))
                    (ck / "step_0000050.residuals.tsv").write_text(
                        _table_text(clean if p == 0 else STEP50[pair], unvisited_last=True))
                    (ck / "step_0000100.residuals.tsv").write_text(
                        _table_text(clean if p == 0 else STEP100[(arm, pair, seed)]))
    for pair in N_CLIPS:
        (root / pair / "step0" / "score").mkdir(parents=True)
        (root / pair / "step0" / "score" / "summary.json").write_text(json.dumps(
            {"kind": "step0", "S_T": 0.5, "S_C": 0.4, "n_gen": 4, "encoder": "ge2e", "vocoder": "hifigan",
             "pair": pair, "step": 0}))


def _report(tmp_path, **kw):
    from gradtts.report.cli import ReportConfig, report

    return report(ReportConfig(root=str(tmp_path / "runs"), out_dir=str(tmp_path / "report"), **kw))


def _csv(tmp_path, name):
    from gradtts.report.tables import read_csv

    return read_csv(tmp_path / "report" / name)


def test_report_writes_ranking_tables_and_section(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)          # table paths are shown relative to the working directory
    _grid(tmp_path / "runs")
    res_md = tmp_path / "egs" / "RESULTS.md"
    res = _report(tmp_path, results_md=str(res_md))
    assert res["warnings"] == [] and res["ranking_tables"] == 16
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text

    # 2 arms x 2 pairs x 2 seeds x 2 steps at p = 0.3; p = 0 runs (no corrupt clip) and step 0 are skipped.
    rows = _csv(tmp_path, "ranking.csv")
    assert len(rows) == 16 and {r["p"] for r in rows} == {"0.3"} and {r["step"] for r in rows} == {"50", "100"}
    r = next(x for x in rows if (x["arm_id"], x["pair"], x["seed"], x["step"]) == ("id_l2", "A_B", "0", "100"))
    assert float(r["auc"]) == pytest.approx(5 / 6) and float(r["precision_at_k"]) == 0.5
    assert (r["k"], r["n"], r["n_unvisited"], r["n_train"], r["n_corrupt"]) == ("2", "5", "0", "5", "2")
    assert float(r["precision_chance"]) == pytest.approx(0.4) and float(r["auc_chance"]) == 0.5
    assert r["table"] == "runs/A_B/l2/p0.30/seed0/ckpt/step_0000100.residuals.tsv"
    s = next(x for x in rows if (x["arm_id"], x["pair"], x["seed"], x["step"]) == ("id_sh", "C_D", "1", "100"))
    assert s["arm"] == "sched-huber" and s["loss"] == "scheduled_huber"
    assert float(s["auc"]) == pytest.approx(2 / 3) and float(s["precision_at_k"]) == 0.0
    u = next(x for x in rows if (x["arm_id"], x["pair"], x["seed"], x["step"]) == ("id_sh", "A_B", "1", "50"))
    assert float(u["auc"]) == pytest.approx(1 / 3) and float(u["precision_at_k"]) == 0.5 and u["n_unvisited"] == "1"

    agg = {(x["arm_id"], x["step"]): x for x in _csv(tmp_path, "ranking_summary.csv")}
    assert len(agg) == 4
    a = agg[("id_l2", "100")]
    # AUC pair means: A_B (5/6 + 4/6)/2 = 0.75, C_D (2/3 + 1/3)/2 = 0.5 -> 0.625 ± t(1) * |0.75 - 0.5| / 2.
    assert float(a["auc"]) == pytest.approx(0.625) and float(a["auc_ci"]) == pytest.approx(T1 * 0.125)
    # P@k pair means 0.5 and 0 -> 0.25 ± t(1) * 0.25; chance k/n: pair means 0.4 and 0.25 -> 0.325.
    assert float(a["precision_at_k"]) == pytest.approx(0.25)
    assert float(a["precision_at_k_ci"]) == pytest.approx(T1 * 0.25)
    assert float(a["precision_chance"]) == pytest.approx(0.325) and float(a["auc_chance"]) == 0.5
    assert (a["n_pairs"], a["n_runs"], a["auc_n"], a["auc_df"]) == ("2", "4", "2", "1")
    b = agg[("id_sh", "100")]
    # AUC pair means 1 and 5/6 -> 11/12 ± t(1)/12; P@k 1 and 0.5 -> 0.75 ± t(1) * 0.25.
    assert float(b["auc"]) == pytest.approx(11 / 12) and float(b["auc_ci"]) == pytest.approx(T1 / 12)
    assert float(b["precision_at_k"]) == pytest.approx(0.75)
    # Step 50: AUC pair means 1/3 and 0 -> 1/6 ± t(1)/6 for both arms.
    assert float(agg[("id_sh", "50")]["auc"]) == pytest.approx(1 / 6)
    assert float(agg[("id_sh", "50")]["auc_ci"]) == pytest.approx(T1 / 6)

    md = (tmp_path / "report" / "results.md").read_text()
    assert "\n## Which clips were corrupt? (residual ranking)\n\n" in md
    assert md.index("## Which clips were corrupt?") < md.index("## Plots")
    assert "chance 0.5" in md and "(chance k/n = 0.250–0.400, depending on the few-shot set)" in md
    assert "From 16 residual tables of 8 fine-tunings on corrupted sets (2 pairs, 2 seeds); 8 clip entries not " \
           "yet visited at the table's step, ranked last." in md
    assert "| arm | loss | p = 0.30, step 50 | p = 0.30, step 100 |\n|---|---|---|---|\n" in md
    assert f"| l2 | l2 | AUC 0.167 ± {T1 / 6:.3f} · P@k 0.250 ± {T1 * 0.25:.3f} " \
           f"| AUC 0.625 ± {T1 * 0.125:.3f} · P@k 0.250 ± {T1 * 0.25:.3f} |\n" in md
    assert f"| sched-huber | scheduled_huber | AUC 0.167 ± {T1 / 6:.3f} · P@k 0.250 ± {T1 * 0.25:.3f} " \
           f"| AUC 0.917 ± {T1 / 12:.3f} · P@k 0.750 ± {T1 * 0.25:.3f} |\n" in md
    assert "\nn = 2 pairs per cell (df = n − 1).\n" in md and "nan" not in md.lower()

    # results_md: one level deeper, and the CSVs travel with it.
    block = res_md.read_text()
    assert "\n### Which clips were corrupt? (residual ranking)\n" in block
    for name in ("ranking.csv", "ranking_summary.csv"):
        assert (res_md.parent / "results" / name).read_bytes() == (tmp_path / "report" / name).read_bytes()


def test_one_pair_says_no_interval(tmp_path):
    _grid(tmp_path / "runs")
    import shutil
    shutil.rmtree(tmp_path / "runs" / "C_D")
    _report(tmp_path)
    md = (tmp_path / "report" / "results.md").read_text()
    # l2 at step 100, A_B only: AUC (5/6 + 4/6)/2 = 0.75, P@k 0.5.
    assert "| l2 | l2 | AUC 0.333 (n = 1, no interval) · P@k 0.500 (n = 1, no interval) " \
           "| AUC 0.750 (n = 1, no interval) · P@k 0.500 (n = 1, no interval) |" in md
    assert "(chance k/n = 0.400)" in md and "nan" not in md.lower()


def test_report_without_residual_tables_says_so_in_one_line(tmp_path):
    _grid(tmp_path / "runs", tables=False)
    res = _report(tmp_path)
    assert res["ranking_tables"] == 0
    md = (tmp_path / "report" / "results.md").read_text()
    section = md[md.index("## Which clips were corrupt?"):md.index("## Plots")]
    assert section.strip().splitlines()[1:] == ["", "No residual tables of fine-tunings on corrupted sets "
                                                "(`ckpt/step_*.residuals.tsv`, step > 0) were found: runs trained "
                                                "before the trainer wrote them have none."]
    # Headers only, so a reader can tell "no tables" from "no file".
    assert (tmp_path / "report" / "ranking.csv").read_text().startswith("pair,arm,arm_id,loss,p,seed,step,")
    assert _csv(tmp_path, "ranking.csv") == [] and _csv(tmp_path, "ranking_summary.csv") == []
