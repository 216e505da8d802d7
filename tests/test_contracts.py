"""Stage-boundary contracts of the recipe: what one stage writes, the next reads as meant.

One tiny study is built once (a data dir of synthetic voices → few-shot sets → features → fine-tuning
runs in the recipe's layout → synthesis → scoring → report), then each test checks one boundary.
"""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep.features import compute_features
from data_prep.fewshot import make_fewshot
from gradtts import grid, layout
from gradtts.data.datadir import DataDir, read_datadir, write_datadir
from gradtts.data.manifest import read_manifest
from gradtts.model.checkpoint import save_checkpoint
from gradtts.model.config import build_model
from gradtts.text import BLANK_ID, intersperse, text_to_sequence
from gradtts.train import train
from gradtts.train.cli import compose
from gradtts.train.data import MelDataset

# Every test runs on the module's `study` (few-shot sets, features, four short fine-tunings, synthesis, scores):
# 18 CPU-s, paid by whichever test runs first; the parallel-synthesis check takes 15 more (tests/conftest.py).
pytestmark = pytest.mark.slow

WORDS = "apple river stone window garden yellow music paper silver orange morning travel".split()
PAIR = "T_C"
# The grid's synthesis settings, as the recipe passes them (Hydra overrides of gradtts-synth's config).
SYNTH = ["synth.n_timesteps=2", "synth.temperature=1.5", "synth.length_scale=1.0", "synth.vocoder=griffinlim",
         "synth.device=cpu"]
# Stage 7 as the recipe runs it, without DNSMOS and ASR (they would double this module's time; tests/test_eval_stage.py
# checks them on speech).
SCORE = ["encoder=ge2e", "device=cpu", "metrics=[similarity,fidelity]"]


def _voice(rng, f0: float, seconds: float, sr: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wav = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    return (0.3 * wav / np.abs(wav).max() + 0.01 * rng.normal(size=len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(0)
    d = DataDir()
    for spk, f0, n in (("T", 210.0, 12), ("C", 110.0, 8)):
        for i in range(n):
            wav = root / "wavs" / f"{spk}_{i:02d}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            sf.write(wav, _voice(rng, f0 * (1 + 0.02 * i), 0.8 + 0.05 * i), 22050)
            d.add(f"{spk}_{i:02d}", spk, str(wav), f"the {WORDS[i % 12]} and the {WORDS[(i * 5 + 1) % 12]} {i}")
    write_datadir(root / "data", d)
    exp = root / "exp"
    fs = layout.fewshot_dir(exp, PAIR)
    plan = make_fewshot(root / "data", fs, "T", "C", n=6, fractions=(0.0, 0.5), n_ref=3, n_test=2, seed=0)
    # One intruder clip too short for the feature stage: the trained-on fraction differs from the nominal one.
    dropped = f"T-intruder-{plan['intruders'][0]}"
    sf.write(d.wavs[plan["intruders"][0]], _voice(rng, 110.0, 0.1), 22050)
    for p in ("p0.00", "p0.50"):
        compute_features(fs / p, fs / p / "feats", progress=False)
    torch.manual_seed(0)
    base = root / "base.pt"
    save_checkpoint(base, build_model(compose(["data.feats_dir=x", "model=tiny"]).model, n_spks=3),
                    dictionary=read_manifest(fs / "p0.00" / "feats").dictionary, spk2id={"a": 0, "b": 1, "c": 2},
                    step=100)
    for loss in ("l2", "huber"):
        for p in ("p0.00", "p0.50"):
            train(compose(["experiment=finetune", "model=tiny", f"adapt.checkpoint={base}", f"loss={loss}",
                           f"data.feats_dir={layout.hydra_feats_dir(exp)}", "data.batch_size=4", "data.out_size=32",
                           f"+study.pair={PAIR}", f"+study.pset={p}", "trainer.seed=0",
                           f"trainer.out_dir={layout.hydra_run_dir(exp)}",
                           "trainer.max_steps=2", "trainer.save_steps=[0,2]", "trainer.save_every=0",
                           "trainer.device=cpu", "trainer.progress=false", "trainer.tensorboard=false",
                           "trainer.sample_every=0", "trainer.deterministic=false"]))
    grid.synth_all(exp, [0, 2], overrides=SYNTH)
    grid.score_all(exp, SCORE)
    return {"root": root, "exp": exp, "fs": fs, "plan": plan, "data": d, "dropped": dropped}


def test_datadir_to_features_to_training_reader(study):
    fs, dropped = study["fs"], study["dropped"]
    src = read_datadir(fs / "p0.50")
    m = read_manifest(fs / "p0.50" / "feats")
    rejects = (fs / "p0.50" / "feats" / "rejects.tsv").read_text().splitlines()[1:]
    assert [r.split("\t")[0] for r in rejects] == [dropped]
    assert [it.utt for it in m.items] == [u for u in src.utts if u != dropped]
    for it in m.items:
        assert it.spk == "T" and it.text == src.texts[it.utt]
        assert it.tokens == intersperse(text_to_sequence(src.texts[it.utt]), BLANK_ID)
        assert it.corrupt == (it.utt in src.corrupt)
    ds = MelDataset(m.items, {"T": 3})
    for i, it in enumerate(m.items):
        _, tokens, mel, spk = ds[i]
        assert tokens.tolist() == it.tokens and tuple(mel.shape) == (80, it.frames) and spk == 3


def test_training_records_what_it_trained_on(study):
    exp = study["exp"]
    recs = {p.parent.relative_to(exp / "finetune" / PAIR).as_posix(): json.loads(p.read_text())
            for p in (exp / "finetune" / PAIR).glob("*/p*/seed0/run.json")}
    assert sorted(recs) == ["huber_d0.1/p0.00/seed0", "huber_d0.1/p0.50/seed0", "l2/p0.00/seed0", "l2/p0.50/seed0"]
    r = recs["l2/p0.50/seed0"]
    assert (r["n_train"], r["n_corrupt"]) == (5, 2) and r["p_actual"] == pytest.approx(0.4)  # nominal 3 of 6
    assert recs["l2/p0.00/seed0"]["p_actual"] == 0
    assert r["arm_id"] == recs["l2/p0.00/seed0"]["arm_id"] != recs["huber_d0.1/p0.50/seed0"]["arm_id"]
    assert [r.arm for r in grid.find_runs(exp)] == ["huber(δ=0.1)"] * 2 + ["l2"] * 2


def test_fewshot_and_training_outputs_to_synthesis(study):
    exp, fs, d = study["exp"], study["fs"], study["data"]
    test_ids = [line.split()[0] for line in (fs / "test_texts.txt").read_text().splitlines()]
    assert test_ids == study["plan"]["test"]
    gens = sorted((exp / "finetune").glob("*/*/p*/seed0/synth/step_*"))
    gens.append(layout.step0_dir(exp, PAIR) / "synth/step_0000000")
    assert len(gens) == 5  # 4 runs at step 2 (step 0 only once per pair)
    assert not list((exp / "finetune").glob("*/*/p*/seed0/synth/step_0000000"))
    # The target's own recordings of the test sentences, which fidelity compares the generated ones with.
    ref_test = read_datadir(layout.ref_test_dir(exp, PAIR))
    assert sorted(ref_test.utts) == sorted(test_ids) and all(ref_test.wavs[u] == d.wavs[u] for u in test_ids)
    for gen in gens:
        assert sorted(p.stem for p in gen.glob("*.wav")) == sorted(test_ids)
        rec = json.loads((gen / "synth.json").read_text())
        assert rec["settings"]["speaker"] == 3 and rec["settings"]["vocoder"]["name"] == "griffinlim"
        for u in test_ids:
            assert rec["utts"][u]["text"] == d.texts[u]
            assert rec["utts"][u]["tokens"] == intersperse(text_to_sequence(d.texts[u]), BLANK_ID)


def test_synthesis_to_scoring(study):
    exp = study["exp"]
    summaries = sorted((exp / "finetune").rglob("summary.json"))
    assert len(summaries) == 5
    for path in summaries:
        s = json.loads(path.read_text())
        gen = Path(s["gen_dir"])
        assert sorted(s["key"]["gen"]) == sorted(p.name for p in gen.glob("*.wav")) and s["n_gen"] == 2
        assert s["vocoder"] == "griffinlim" and s["synth"]["n_timesteps"] == 2 and s["synth"]["temperature"] == 1.5
        assert s["encoder"] == "ge2e" and -1 <= s["S_T"] <= 1 and -1 <= s["S_C"] <= 1
        with open(path.parent / "scores.csv") as f:
            assert len(list(csv.DictReader(f))) == 2
        # Fidelity beside it: the same generated files, each against the target's recording of its sentence.
        fid = json.loads((path.parent / "fidelity.json").read_text())
        assert fid["key"]["gen"] == s["key"]["gen"] and fid["n_utts"] == 2
        assert {r["utt"]: r["ref"] for r in fid["rows"]} == {Path(g).stem: Path(study["data"].wavs[Path(g).stem]).name
                                                            for g in s["key"]["gen"]}
        assert 0 < fid["mean"]["mcd_db"] < 60 and fid["settings"]["n_cep"] == 24
    step0 = json.loads((exp / "finetune" / PAIR / "step0/score/step_0000000/summary.json").read_text())
    assert step0["kind"] == "step0" and step0["step"] == 0 and step0["arm_id"] is None
    s = json.loads((exp / "finetune" / PAIR / "l2/p0.50/seed0/score/step_0000002/summary.json").read_text())
    assert (s["kind"], s["pair"], s["p"], s["step"], s["seed"], s["arm"]) == ("run", PAIR, 0.5, 2, 0, "l2")
    assert s["p_actual"] == pytest.approx(0.4) and s["n_corrupt"] == 2
    # The cache is keyed on its inputs: changed generated audio is rescored, not returned stale.
    gen = Path(s["gen_dir"])
    wav, sr = sf.read(gen / "T_00.wav" if (gen / "T_00.wav").exists() else next(gen.glob("*.wav")))
    target = next(gen.glob("*.wav"))
    sf.write(target, np.roll(wav, 1000) * 0.5, sr)
    grid.score_all(exp, SCORE)
    again = json.loads((exp / "finetune" / PAIR / "l2/p0.50/seed0/score/step_0000002/summary.json").read_text())
    assert again["key"]["gen"] != s["key"]["gen"] and again["S_T"] != s["S_T"]
    fid_again = json.loads((exp / "finetune" / PAIR / "l2/p0.50/seed0/score/step_0000002/fidelity.json").read_text())
    assert fid_again["key"]["gen"] == again["key"]["gen"]


def test_scoring_to_report(study):
    from gradtts.report.cli import ReportConfig, report
    from gradtts.report.tables import read_csv

    exp = study["exp"]
    res = report(ReportConfig(root=str(exp / "finetune"), out_dir=str(exp / "report")))
    assert res["fine_tunings"] == 4 and res["summaries"] == 5
    runs = read_csv(exp / "report/runs.csv")
    summaries = {str(p.resolve()): json.loads(p.read_text()) for p in (exp / "finetune").rglob("summary.json")}
    assert len(runs) == 5
    for row in runs:
        s = summaries[str(Path(row["summary"]).resolve())]
        assert float(row["S_T"]) == pytest.approx(s["S_T"]) and row["kind"] == s["kind"]
    l2 = {float(r["p"]): r for r in runs if r["arm"] == "l2"}
    assert float(l2[0.5]["R"]) == pytest.approx(float(l2[0.5]["S_T"]) - float(l2[0.0]["S_T"]))
    step0 = read_csv(exp / "report/step0.csv")
    assert [r["pair"] for r in step0] == [PAIR]
    assert float(l2[0.5]["A"]) == pytest.approx(float(l2[0.5]["S_T"]) - float(step0[0]["S_T"]))
    paired = read_csv(exp / "report/paired.csv")
    assert [(r["arm_A"], r["arm_B"], float(r["p"]), int(r["step"])) for r in paired] == [("huber(δ=0.1)", "l2", 0.5, 2)]
    h = next(r for r in runs if r["arm"] == "huber(δ=0.1)" and float(r["p"]) == 0.5)
    assert float(paired[0]["dR"]) == pytest.approx(float(h["R"]) - float(l2[0.5]["R"]))
    md = (exp / "report/results.md").read_text()
    assert "griffinlim" in md.lower() and "4 fine-tunings" in md
    # Fidelity reaches the report: runs.csv carries each summary's fidelity.json means, fidelity.csv their
    # aggregate per arm x p x step, paired with l2.
    for row in runs:
        fid = json.loads((Path(row["summary"]).parent / "fidelity.json").read_text())["mean"]
        assert float(row["MCD"]) == pytest.approx(fid["mcd_db"])
    fidelity = read_csv(exp / "report/fidelity.csv")
    assert sorted((r["arm"], float(r["p"])) for r in fidelity) == [("huber(δ=0.1)", 0.0), ("huber(δ=0.1)", 0.5),
                                                                  ("l2", 0.0), ("l2", 0.5)]
    hub = next(r for r in fidelity if r["arm"] == "huber(δ=0.1)" and float(r["p"]) == 0.0)
    l2_clean = next(r for r in runs if r["arm"] == "l2" and float(r["p"]) == 0.0 and r["kind"] == "run")
    h_clean = next(r for r in runs if r["arm"] == "huber(δ=0.1)" and float(r["p"]) == 0.0)
    assert float(hub["dMCD"]) == pytest.approx(float(h_clean["MCD"]) - float(l2_clean["MCD"]))
    assert "Fidelity to the target's recordings" in md


def test_parallel_synthesis_writes_what_sequential_does(study, tmp_path):
    import shutil

    wavs = {}
    threads = torch.get_num_threads()
    for jobs in (1, 2):
        exp = tmp_path / f"jobs{jobs}"
        shutil.copytree(study["exp"], exp, ignore=shutil.ignore_patterns("synth", "score", "report"))
        # Each of 2 jobs on a 2-core machine gets one thread; the sequential run must too, or the two differ by
        # float rounding (thread count changes the reduction order), which is not what is tested here.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
        try:
            grid.synth_all(exp, [0, 2], jobs=jobs, overrides=SYNTH)
        finally:
            torch.set_num_threads(threads)
        wavs[jobs] = {p.relative_to(exp): sf.read(p)[0] for p in (exp / "finetune").rglob("*.wav")}
    assert sorted(wavs[1]) == sorted(wavs[2]) and len(wavs[1]) == 10
    for rel, a in wavs[1].items():
        assert np.array_equal(a, wavs[2][rel]), rel


def test_collected_small_files_regenerate_the_report(study, tmp_path):
    """What `grid collect` copies (to commit) is all the report needs: same tables, no weights or audio."""
    from gradtts.report.cli import ReportConfig, report
    from gradtts.report.tables import read_csv

    exp = study["exp"]
    dest = tmp_path / "committed" / "finetune"
    assert grid.collect_small(exp, dest) > 0
    assert grid.collect_small(exp, dest) == 0  # idempotent: nothing changed, nothing copied
    kinds = {p.suffix for p in dest.rglob("*") if p.is_file()}
    assert kinds <= {".json", ".tsv", ".csv"}, kinds  # records, tables and per-utterance scores: no weights or audio
    assert len(list(dest.rglob("scores.csv"))) == len(list(dest.rglob("summary.json")))
    assert len(list(dest.rglob("fidelity.json"))) == 5  # 4 runs at step 2 and step 0
    report(ReportConfig(root=str(exp / "finetune"), out_dir=str(tmp_path / "a")))
    report(ReportConfig(root=str(dest), out_dir=str(tmp_path / "b")))
    for name in ("results.csv", "paired.csv", "step0.csv", "ranking.csv", "fidelity.csv", "ablation.csv"):
        a, b = read_csv(tmp_path / "a" / name), read_csv(tmp_path / "b" / name)
        drop = ("summary", "table")
        assert [{k: v for k, v in r.items() if k not in drop} for r in a] == \
               [{k: v for k, v in r.items() if k not in drop} for r in b], name
    assert len(read_csv(tmp_path / "b" / "ranking.csv")) == 2  # two corrupted runs at step 2
