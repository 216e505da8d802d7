"""The grid's layout (gradtts.layout) and its stage-5 launcher (python -m gradtts.grid train).

The launcher must build the multirun the recipe always ran (same overrides, same sweep order), and every
directory a job of that sweep writes must be one that find_runs finds and reads back to the job's own pair,
loss, p and seed.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gradtts import grid, layout

ROOT = Path(__file__).resolve().parents[1]


# ---- names ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p, name", [(0, "p0.00"), (0.15, "p0.15"), (0.3, "p0.30"), (0.45, "p0.45"),
                                     (0.125, "p0.12"), (0.5, "p0.50")])
def test_set_names_round_trip(p, name):
    assert layout.set_name(p) == name
    assert layout.parse_set_name(name) == round(p, 2)
    assert layout.is_set_name(name)


def test_names_that_are_not_sets_or_seeds():
    assert [layout.parse_set_name(n) for n in ("p0.3", "p1", "pics", "p0.30x", "q0.30")] == [0.3, 1.0, None, None, None]
    assert not layout.is_set_name("p0.3") and not layout.is_set_name("p1")  # readable, but not what stage 4 writes
    seeds = [layout.parse_seed_name(n) for n in ("seed0", "seed12", "seed", "seedx", "Seed1")]
    assert seeds == [0, 12, None, None, None]


def test_pairs():
    assert layout.parse_pair("sv024:sv025") == ("sv024", "sv025")
    assert layout.pair_name_of("19:26") == "19_26" and layout.pair_name_of("19_26") == "19_26"
    for bad, why in (("sv024", "TARGET:INTRUDER"), ("a:b:c", "TARGET:INTRUDER"), ("a:", "TARGET:INTRUDER"),
                     ("a b:c", "TARGET:INTRUDER"), ("x/y:z", "TARGET:INTRUDER"), ("p1:p1", "same speaker")):
        with pytest.raises(layout.LayoutError, match=why):
            layout.parse_pair(bad)


def test_paths(tmp_path):
    assert layout.run_dir(tmp_path, "T_C", "huber_d0.1", 0.3, 2) == tmp_path / "finetune/T_C/huber_d0.1/p0.30/seed2"
    assert layout.parse_run_dir(tmp_path / "finetune/T_C/huber_d0.1/p0.30/seed2") == \
        layout.RunKey("T_C", "huber_d0.1", 0.3, 2)
    assert layout.parse_run_dir(tmp_path / "finetune/T_C/step0") is None
    assert layout.set_dir(tmp_path, "T_C", 0) == tmp_path / "fewshot/T_C/p0.00"
    assert layout.test_texts(tmp_path, "T_C") == tmp_path / "fewshot/T_C/test_texts.txt"
    fs = tmp_path / "fewshot/T_C"
    assert layout.ref_dirs(tmp_path, "T_C") == (fs / "ref_target", fs / "ref_intruder")
    assert layout.step0_dir(tmp_path, "T_C") == tmp_path / "finetune/T_C/step0"


def test_layout_command_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "gradtts.layout", *args], capture_output=True, text=True,
                              cwd=ROOT)

    r = run("pair", "sv024:sv025", "19:26")
    assert r.returncode == 0 and r.stdout.split() == ["sv024_sv025", "19_26"]
    r = run("sets", str(tmp_path), "19:26", "0", "0.3", "0.30")
    assert r.stdout.splitlines() == [str(tmp_path / "fewshot/19_26/p0.00"), str(tmp_path / "fewshot/19_26/p0.30")]
    r = run("fewshot", str(tmp_path), "19:26")
    assert r.stdout.strip() == str(tmp_path / "fewshot/19_26")
    r = run("pair", "sv024:sv024")
    assert r.returncode == 2 and "names the same speaker twice" in r.stderr and r.stdout == ""


# ---- the stage-5 multirun ---------------------------------------------------------------------------------------
def test_train_overrides_are_the_recipes_multirun():
    """What recipes/fewshot.sh stage 5 passed to gradtts-train -m, override for override, in order."""
    args = grid.train_overrides("/e/x", "/e/x/base/ckpt/step_0000010.pt", ["19:26", "sv024:sv025"], ["l2", "huber"],
                                [0, 1], [0, 0.3], 4, [2, 4], "cpu", "joblib", 2, 1, ["model=tiny", "optim.lr=1e-3"])
    assert args == [
        "experiment=finetune", "adapt.checkpoint=/e/x/base/ckpt/step_0000010.pt",
        "+study.pair='19_26','sv024_sv025'", "trainer.seed=0,1", "loss=l2,huber", "+study.pset=p0.00,p0.30",
        "data.feats_dir=/e/x/fewshot/${study.pair}/${study.pset}/feats",
        "trainer.out_dir='/e/x/finetune/${study.pair}/${arm_tag:${loss},${filter},${adapt}}/${study.pset}/"
        "seed${trainer.seed}'",
        "trainer.max_steps=4", "trainer.save_steps=[0,2,4]", "trainer.device=cpu",
        "hydra.sweep.dir=/e/x/finetune/.hydra", "hydra.sweep.subdir=${hydra.job.num}",
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer.num_threads=1",
        "model=tiny", "optim.lr=1e-3"]
    one = grid.train_overrides("/e/x", "/b.pt", ["a:b"], ["l2"], [0], [0], 4, [4], "cpu", "joblib", 1)
    assert [a for a in one if "launcher" in a or "num_threads" in a] == ["hydra/launcher=joblib",
                                                                          "hydra.launcher.n_jobs=1"]
    slurm = grid.train_overrides("/e/x", "/b.pt", ["a:b"], ["l2"], [0], [0], 4, [4], "cuda", "slurm", 4)
    assert [a for a in slurm if "launcher" in a or "num_threads" in a] == ["hydra/launcher=slurm"]
    local = grid.train_overrides("/e/x", "/b.pt", ["a:b"], ["l2"], [0], [0], 4, [4], "cpu", "submitit_local", 1)
    assert [a for a in local if "launcher" in a] == ["hydra/launcher=submitit_local"]
    # A path Hydra would split (a comma) is quoted; one it cannot carry at all is refused, naming it.
    assert "data.feats_dir='/e/x,y/fewshot/${study.pair}/${study.pset}/feats'" in grid.train_overrides(
        "/e/x,y", "/b.pt", ["a:b"], ["l2"], [0], [0], 4, [4], "cpu", "basic", 1)
    with pytest.raises(layout.LayoutError, match=re.escape('experiment directory "/e/it\'s" contains \'')):
        grid.train_overrides("/e/it's", "/b.pt", ["a:b"], ["l2"], [0], [0], 4, [4], "cpu", "basic", 1)
    with pytest.raises(ValueError, match=r"--fractions: corruption levels lie in \[0, 1\), got \[1.0\]"):
        grid.train_overrides("/e/x", "/b.pt", ["a:b"], ["l2"], [0], [1.0], 4, [4], "cpu", "basic", 1)


def _jobs(overrides):
    """The jobs Hydra's basic sweeper makes of ``overrides``, in launch order, without the hydra.* settings."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("hydra")])
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def test_every_job_writes_where_find_runs_reads_it(tmp_path):
    from gradtts.train.cli import compose
    from gradtts.train.identity import arm_tag

    exp = tmp_path / "exp"
    # Two values in every swept dimension but the sets (composing is slow: about 0.5 s a job).
    pairs, losses, seeds, fractions = ["19:26", "sv024:sv025"], ["l2", "huber"], [0, 3], [0.3]
    jobs = _jobs(grid.train_overrides(exp, tmp_path / "base.pt", pairs, losses, seeds, fractions, 4, [2, 4], "cpu",
                                      "basic", 1, extra=["loss.delta=0.5"]))
    expected = []
    for job in jobs:
        cfg = compose(job)
        tag = arm_tag(cfg.loss, cfg.filter, cfg.adapt)
        key = (cfg.study.pair, tag, float(cfg.study.pset[1:]), int(cfg.trainer.seed))
        out, feats = Path(cfg.trainer.out_dir), Path(cfg.data.feats_dir)
        assert out == layout.run_dir(exp, *key)
        assert feats == layout.set_dir(exp, key[0], key[2]) / "feats"
        (out / "ckpt").mkdir(parents=True)
        expected.append(key)
    # Pairs vary slowest, then seeds, losses, sets: a grid stopped part-way leaves whole pairs finished.
    assert expected == [(pair, tag, p, seed) for pair in ("19_26", "sv024_sv025") for seed in seeds
                        for tag in ("l2", "huber_d0.5") for p in fractions]
    runs = grid.find_runs(exp)
    assert sorted((r.pair, r.loss, r.p, r.seed) for r in runs) == sorted(expected)
    assert all(r.path == layout.run_dir(exp, r.pair, r.loss, r.p, r.seed) for r in runs)
    assert [r.pair for r in grid.find_runs(exp, {"19_26"})] == ["19_26"] * 4


def _train_cli(*args):
    return subprocess.run([sys.executable, "-m", "gradtts.grid", "train", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_train_command_line_checks_inputs_then_prints_the_multirun(tmp_path):
    exp, base = tmp_path / "exp", tmp_path / "base.pt"
    common = [str(exp), "--base", str(base), "--pairs", "T:C", "--fractions", "0", "0.3", "--losses", "l2",
              "--steps", "4", "--save-steps", "2,4", "--device", "cpu", "--dry-run", "--", "model=tiny"]
    r = _train_cli(*common)
    assert r.returncode == 2 and f"--base {base}: no such checkpoint" in r.stderr
    base.write_bytes(b"stand-in: a dry run never loads it")
    (exp / "fewshot/T_C/p0.00/feats").mkdir(parents=True)
    r = _train_cli(*common)
    assert r.returncode == 2 and "run stage 4 for these pairs first" in r.stderr
    assert str(exp / "fewshot/T_C/p0.30/feats") in r.stderr and "p0.00" not in r.stderr
    (exp / "fewshot/T_C/p0.30/feats").mkdir(parents=True)
    r = _train_cli(*common)
    assert r.returncode == 0, r.stderr
    # The grid is logged (stderr); the dry run's output is the command alone (stdout).
    assert r.stderr.rstrip().endswith(" INFO: fine-tuning grid: losses {l2} x sets {p0.00,p0.30} x seeds {0} x "
                                      f"pairs {{T_C}} from {base}")
    (line,) = r.stdout.splitlines()
    assert " -m gradtts.train -m experiment=finetune " in line and line.endswith(" model=tiny")
    assert "'+study.pair='\"'\"'T_C'\"'\"''" in line  # shell-quoted, so the line can be pasted


# ---- stages 6-7: settings composed by Hydra ----------------------------------------------------------------------
def test_synthesis_and_scoring_settings_are_composed_by_hydra(tmp_path, monkeypatch):
    """A preset in the config directory reaches the grid's synthesis and scoring, as it reaches gradtts-synth."""
    conf = tmp_path / "conf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment/slow_sampler.yaml").write_text("# @package _global_\nsynth:\n  n_timesteps: 50\n"
                                                       "  temperature: 0.7\n")
    (conf / "experiment/ecapa.yaml").write_text("# @package _global_\nencoder: ecapa\nencoder_source: /models/ecapa\n")
    monkeypatch.setenv("GRADTTS_CONF_DIR", str(conf))
    cfg = grid.synth_config(["experiment=slow_sampler", "synth.length_scale=1.2"])
    assert (cfg.n_timesteps, cfg.temperature, cfg.length_scale, cfg.vocoder) == (50, 0.7, 1.2, "hifigan")
    assert cfg.texts == "???" and cfg.out_dir != "???"  # per-run fields: texts is filled in per run
    assert grid.synth_config(["synth.vocoder=griffinlim"]).vocoder == "griffinlim"  # the caller's choice wins
    with pytest.raises(ValueError, match="synth.out_dir=x: the grid sets synth.texts, .* for each run"):
        grid.synth_config(["synth.out_dir=x"])
    score = grid.score_config(["experiment=ecapa", "device=cuda"])
    assert (score.encoder, score.encoder_source, score.device) == ("ecapa", "/models/ecapa", "cuda")
    with pytest.raises(ValueError, match="meta.p=1: the grid sets"):
        grid.score_config(["meta.p=1"])


def test_synthesis_of_pairs_without_runs_says_so(tmp_path):
    (tmp_path / "finetune/A_B/l2/p0.00/seed0/ckpt").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no fine-tuning runs found for pairs C_D"):
        grid.synth_all(tmp_path, [0], pairs={"C_D"})


def test_step0_keeps_the_checkpoint_its_wavs_were_made_from(tmp_path):
    """A new arm's runs hold the same step-0 weights in other files: step 0 is not re-synthesised from them."""
    import json

    import torch

    from gradtts.digest import file_digest
    from gradtts.model.checkpoint import save_checkpoint
    from gradtts.model.config import build_model
    from gradtts.train.cli import compose

    exp = tmp_path / "exp"
    torch.manual_seed(0)
    model = build_model(compose(["data.feats_dir=x", "model=tiny"]).model, n_spks=3)
    files = []
    for tag in ("l2", "adaptive_huber_exponential_q0.5"):  # the new arm sorts first
        ckpt = layout.run_dir(exp, "a_b", tag, 0.0, 0) / "ckpt"
        ckpt.mkdir(parents=True)
        save_checkpoint(ckpt / "step_0000000.pt", model, dictionary=None, step=0, identity={"arm": tag})
        files.append(ckpt / "step_0000000.pt")
    runs = grid.find_runs(exp)
    assert grid.step0_checkpoints(exp, runs)["a_b"] == files[1]  # nothing synthesised yet: the first in order
    record = layout.step0_dir(exp, "a_b") / "synth" / "step_0000000" / "synth.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"settings": {"checkpoint_sha256": file_digest(files[0])}, "utts": {}}))
    assert grid.step0_checkpoints(exp, runs)["a_b"] == files[0]
