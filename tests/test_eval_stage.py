"""Stage 7's quality (DNSMOS) and intelligibility (ASR WER) files, their cache, and the report's columns.

The stage-7 contract runs ``grid.score_all`` on a tiny experiment in the recipe's layout, made of real speech (the
bundled LibriSpeech reading, said twice so that a clip fills one DNSMOS window): step 0 and two runs of one arm
(p = 0 and p = 0.5, whose clip is the same reading under white noise at 0 dB SNR). The report tests build
summaries by hand: two pairs, two arms, p = 0 and 0.3, with known means, so that the paired intervals are exact.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gradtts import grid, layout
from gradtts.audio import load_audio
from gradtts.data.datadir import DataDir, write_datadir
from gradtts.report.cli import ReportConfig, report
from gradtts.report.stats import t_interval
from gradtts.scoring.metrics import INTELLIGIBILITY_FILE, QUALITY_FILE

READING = Path(__file__).parent / "data" / "19-198-0000.flac"
TEXT = "Northanger Abbey. Northanger Abbey."
PAIR = "T_C"
SR = 16000
UTT = "T_u1"  # Kaldi ids start with their speaker id


def _clip(noise_db: float | None = None) -> np.ndarray:
    wav, _ = load_audio(READING, SR)
    # Twice with a pause: 4.6 s, which DNSMOS doubles once to one 9.2 s window (a 2 s clip costs six).
    out = np.concatenate([wav, np.zeros(int(0.7 * SR), np.float32), wav])
    if noise_db is not None:
        noise = np.random.default_rng(0).standard_normal(len(out)).astype(np.float32)
        out = out + noise * np.sqrt(np.mean(out ** 2) / 10 ** (noise_db / 10))
    return (0.9 * out / np.abs(out).max()).astype(np.float32)


def _gen(folder: Path, wav: np.ndarray) -> None:
    folder.mkdir(parents=True)
    sf.write(folder / f"{UTT}.wav", wav, SR)
    (folder / "synth.json").write_text(json.dumps({"settings": {}, "utts": {UTT: {"text": TEXT}}}))


def make_exp(root: Path) -> Path:
    """A scored-ready experiment: references, ref_test, step 0 and runs l2/p0.00 and l2/p0.50 at step 2."""
    exp = root / "exp"
    fs = layout.fewshot_dir(exp, PAIR)
    clean, noisy = _clip(), _clip(0.0)
    for d in layout.ref_dirs(exp, PAIR):
        d.mkdir(parents=True)
        sf.write(d / "r1.wav", clean, SR)
    rec = root / "rec" / f"{UTT}.wav"
    rec.parent.mkdir()
    sf.write(rec, clean, SR)
    d = DataDir()
    d.add(UTT, "T", str(rec), TEXT)
    write_datadir(layout.ref_test_dir(exp, PAIR), d)
    (fs / layout.TEST_TEXTS).write_text(f"{UTT} {TEXT}\n")
    _gen(layout.step0_dir(exp, PAIR) / "synth" / "step_0000000", clean)
    for p, wav in ((0.0, clean), (0.5, noisy)):
        run = layout.run_dir(exp, PAIR, "l2", p, 0)
        (run / "ckpt").mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"loss": "l2", "arm": "l2", "arm_id": "l2"}))
        _gen(run / "synth" / "step_0000002", wav)
    return exp


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.slow  # DNSMOS and PocketSphinx on 4 clips of 4.6 s twice over, GE2E, the report: 13 CPU-s
def test_stage7_writes_keyed_quality_and_wer_files_and_the_report_reads_them(tmp_path):
    exp = make_exp(tmp_path)
    metrics = ["metrics=[similarity,quality,intelligibility]"]  # fidelity (pyin) is tested on its own
    grid.score_all(exp, metrics)
    runs = {p: layout.run_dir(exp, PAIR, "l2", p, 0) / "score" / "step_0000002" for p in (0.0, 0.5)}
    q = {p: _json(d / QUALITY_FILE) for p, d in runs.items()}
    w = {p: _json(d / INTELLIGIBILITY_FILE) for p, d in runs.items()}
    for p in runs:
        (row,) = q[p]["rows"]
        assert row["utt"] == UTT and 1 <= row["ovrl"] <= 5 and q[p]["mean"]["ovrl"] == row["ovrl"]
        (wrow,) = w[p]["rows"]
        assert wrow["text"] == TEXT and wrow["words"] == 4 and wrow["wer"] == w[p]["mean"]["wer"]
        assert w[p]["settings"]["asr"]["asr"] == "pocketsphinx" and "key" in q[p] and "key" in w[p]
        summary = _json(runs[p] / "summary.json")
        assert summary["dnsmos_ovrl"] == q[p]["mean"]["ovrl"] and summary["dnsmos_p808"] == q[p]["mean"]["p808"]
        assert summary["wer"] == w[p]["mean"]["wer"] and summary["cer"] == w[p]["mean"]["cer"]
    # White noise at 0 dB SNR costs DNSMOS more than a point (measured: 3.1 clean, 1.8 noisy).
    assert q[0.0]["mean"]["ovrl"] - q[0.5]["mean"]["ovrl"] > 0.8
    # Step 0 and the ceiling: the same clean clip as the p = 0 run, scored once each.
    real = layout.real_score_dir(exp, PAIR)
    rq, rw = _json(real / QUALITY_FILE), _json(real / INTELLIGIBILITY_FILE)
    assert rq["kind"] == "real" and rq["pair"] == PAIR and rq["mean"]["ovrl"] == pytest.approx(q[0.0]["mean"]["ovrl"])
    assert rw["rows"][0]["transcript"] == w[0.0]["rows"][0]["transcript"]
    step0 = layout.step0_dir(exp, PAIR) / "score" / "step_0000000"
    assert _json(step0 / "summary.json")["dnsmos_ovrl"] == pytest.approx(q[0.0]["mean"]["ovrl"])

    # A rerun on the same audio reuses every file (not rewritten); new audio is scored again.
    files = [d / f for d in [*runs.values(), real, step0] for f in (QUALITY_FILE, INTELLIGIBILITY_FILE)]
    stamps = {f: f.stat().st_mtime_ns for f in files}
    grid.score_all(exp, metrics)
    assert {f: f.stat().st_mtime_ns for f in files} == stamps
    sf.write(layout.run_dir(exp, PAIR, "l2", 0.5, 0) / "synth" / "step_0000002" / f"{UTT}.wav", _clip(), SR)
    grid.score_all(exp, metrics)
    assert _json(runs[0.5] / QUALITY_FILE)["mean"]["ovrl"] == pytest.approx(q[0.0]["mean"]["ovrl"])
    assert {f for f in files if f.stat().st_mtime_ns != stamps[f]} == {runs[0.5] / QUALITY_FILE,
                                                                       runs[0.5] / INTELLIGIBILITY_FILE}

    out = tmp_path / "report"
    report(ReportConfig(root=str(layout.finetune_root(exp)), out_dir=str(out)))
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert {"OVRL", "WER", "CER", "SIG", "BAK", "P808"} <= rows[0].keys()
    md = (out / "results.md").read_text()
    assert "Quality and intelligibility" in md and "OVRL" in md
    # PocketSphinx cannot read "Northanger Abbey" (it hears "north than your daddy"): no WER table, the note instead.
    ceiling = rw["mean"]["wer"]
    assert ceiling > 0.5
    assert f"intelligibility not reported: the ASR's WER on the target's real recordings is {ceiling:.2f}" in md


def test_similarity_alone_writes_neither_file(tmp_path):
    exp = make_exp(tmp_path)
    grid.score_all(exp, ["metrics=[similarity]"])
    for d in [layout.run_dir(exp, PAIR, "l2", p, 0) / "score" / "step_0000002" for p in (0.0, 0.5)]:
        assert (d / "summary.json").is_file()
        assert not (d / QUALITY_FILE).exists() and not (d / INTELLIGIBILITY_FILE).exists()
        assert "dnsmos_ovrl" not in _json(d / "summary.json") and "wer" not in _json(d / "summary.json")
    assert not layout.real_score_dir(exp, PAIR).exists()


def test_metrics_asked_for_are_checked_before_scoring(tmp_path):
    from gradtts.errors import UserError

    exp = make_exp(tmp_path)
    with pytest.raises(UserError, match="unknown loudness; choose from similarity, fidelity, quality"):
        grid.score_all(exp, ["metrics=[similarity,loudness]"])
    with pytest.raises(UserError, match="lacks similarity"):
        grid.score_all(exp, ["metrics=[quality]"])
    assert not list(layout.finetune_root(exp).rglob("summary.json"))


# ---- the report, from summaries written by hand ---------------------------------------------------------------
def _summary(root: Path, pair: str, arm: str, p: float, ovrl: float, wer: float, kind: str = "run") -> None:
    d = (root / pair / "step0" / "score" / "step_0000000" if kind == "step0"
         else layout.run_dir(root.parent, pair, arm, p, 0) / "score" / "step_0000010")
    d.mkdir(parents=True)
    meta = ({"kind": "step0", "pair": pair, "step": 0} if kind == "step0" else
            {"kind": "run", "pair": pair, "loss": arm, "arm": arm, "arm_id": arm, "p": p, "seed": 0, "step": 10})
    (d / "summary.json").write_text(json.dumps({"S_T": 0.8 - p / 10, "S_C": 0.1 + p / 10, "n_gen": 2, **meta,
                                                "dnsmos_ovrl": ovrl, "dnsmos_sig": ovrl + 0.3,
                                                "dnsmos_bak": ovrl + 0.6, "dnsmos_p808": ovrl + 0.2, "wer": wer,
                                                "cer": wer / 2, "key": {}}))


def _real(root: Path, pair: str, ovrl: float, wer: float) -> None:
    d = root / pair / "step0" / "score" / layout.REAL
    d.mkdir(parents=True, exist_ok=True)
    (d / QUALITY_FILE).write_text(json.dumps({"kind": "real", "pair": pair, "mean": {"ovrl": ovrl}}))
    (d / INTELLIGIBILITY_FILE).write_text(json.dumps({"kind": "real", "pair": pair, "mean": {"wer": wer}}))


# pair -> arm -> p -> (OVRL, WER)
GRID = {"A_B": {"l2": {0.0: (3.0, 0.10), 0.3: (2.6, 0.20)}, "huber": {0.0: (2.9, 0.12), 0.3: (2.8, 0.14)}},
        "C_D": {"l2": {0.0: (3.2, 0.08), 0.3: (2.9, 0.30)}, "huber": {0.0: (3.0, 0.10), 0.3: (3.0, 0.16)}}}


def _hand_study(tmp_path: Path, ceiling_wer: float) -> Path:
    root = tmp_path / "finetune"
    for pair, arms in GRID.items():
        _summary(root, pair, "", 0.0, 2.0, 0.5, kind="step0")
        _real(root, pair, 3.3, ceiling_wer)
        for arm, ps in arms.items():
            for p, (ovrl, wer) in ps.items():
                _summary(root, pair, arm, p, ovrl, wer)
    return root


def test_report_tables_quality_and_wer_paired_with_l2(tmp_path):
    root = _hand_study(tmp_path, ceiling_wer=0.05)
    out = tmp_path / "report"
    report(ReportConfig(root=str(root), out_dir=str(out)))
    res = {(r["arm"], float(r["p"])): r for r in csv.DictReader((out / "results.csv").open())}
    ovrl_l2 = t_interval([2.6, 2.9])
    assert float(res[("l2", 0.3)]["OVRL"]) == pytest.approx(ovrl_l2.mean)
    assert float(res[("l2", 0.3)]["OVRL_ci"]) == pytest.approx(ovrl_l2.half)
    rows = {(r["arm"], float(r["p"])): r for r in csv.DictReader((out / "dnsmos_wer.csv").open())}
    # Paired with l2 on pair, seed, p and step: huber - l2 at p = 0.3 is +0.2 and +0.1 OVRL, -0.06 and -0.14 WER.
    d_ovrl, d_wer = t_interval([0.2, 0.1]), t_interval([-0.06, -0.14])
    h = rows[("huber", 0.3)]
    assert h["reference"] == "l2" and int(h["dOVRL_n"]) == 2
    assert float(h["dOVRL"]) == pytest.approx(d_ovrl.mean) and float(h["dOVRL_ci"]) == pytest.approx(d_ovrl.half)
    assert float(h["dWER"]) == pytest.approx(d_wer.mean) and float(h["dWER_ci"]) == pytest.approx(d_wer.half)
    # At p = 0: the price of the robust loss on clean data.
    assert float(rows[("huber", 0.0)]["dOVRL"]) == pytest.approx(-0.15)
    md = (out / "results.md").read_text()
    assert f"| huber | 0.30 | 2 | {2.9:.2f} ± {t_interval([2.8, 3.0]).half:.2f} | {d_ovrl.mean:+.2f} ± " \
           f"{d_ovrl.half:.2f} |" in md
    assert f"{100 * d_wer.mean:+.1f} ± {100 * d_wer.half:.1f}" in md  # ΔWER in percentage points
    assert "real recordings (ceiling), mean over 2 pairs: OVRL 3.30, WER 5.0 %" in md
    assert "intelligibility not reported" not in md
    runs = list(csv.DictReader((out / "runs.csv").open()))
    assert {r["WER"] for r in runs if r["kind"] == "step0"} == {"0.5"}


def test_report_flags_an_asr_whose_ceiling_is_too_poor(tmp_path):
    root = _hand_study(tmp_path, ceiling_wer=0.62)
    out = tmp_path / "report"
    report(ReportConfig(root=str(root), out_dir=str(out)))
    md = (out / "results.md").read_text()
    assert ("intelligibility not reported: the ASR's WER on the target's real recordings is 0.62 (ceiling too "
            "poor to tell systems apart)") in md
    section = md[md.index("Quality and intelligibility"):]
    assert "OVRL" in section and "WER (%)" not in section and "ΔWER" not in section


def test_summaries_without_the_metrics_get_no_columns(tmp_path):
    root = _hand_study(tmp_path, ceiling_wer=0.05)
    for f in root.rglob("summary.json"):
        s = json.loads(f.read_text())
        f.write_text(json.dumps({k: v for k, v in s.items() if k not in ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak",
                                                                         "dnsmos_p808", "wer", "cer")}))
    shutil.rmtree(root / "A_B" / "step0" / "score" / layout.REAL)
    shutil.rmtree(root / "C_D" / "step0" / "score" / layout.REAL)
    out = tmp_path / "report"
    report(ReportConfig(root=str(root), out_dir=str(out)))
    assert "OVRL" not in (out / "runs.csv").read_text() and "WER" not in (out / "results.csv").read_text()
    assert "Quality and intelligibility" not in (out / "results.md").read_text()
