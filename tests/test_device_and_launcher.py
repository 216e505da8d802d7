"""Every computing stage runs on the resolved device (scoring included), and SLURM runs stages 6-7 too.

Device: ``auto`` (every stage's default, scoring's too) resolves through gradtts.device to CUDA where there is a
GPU, else the CPU; the resolved device is logged and recorded in the score summary; an explicit ``cuda`` without
CUDA is a one-line error (exit 2). On the CPU the scores are those of before (same embeddings, same cache).

Launcher: ``gradtts.grid synth/score --launcher slurm`` submit one submitit job per pair with the settings of
conf/hydra/launcher/slurm.yaml (the stage-5 preset); ``submitit_local`` runs the same jobs through submitit's
local executor, which is how they are tested here end to end on a tiny experiment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from gradtts import grid, layout
from gradtts.device import DeviceError, resolve_device

ROOT = Path(__file__).resolve().parents[1]
READING = Path(__file__).resolve().parent / "data/19-198-0000.flac"
HAS_CUDA = torch.cuda.is_available()
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="checks the error for CUDA where there is none")


def _cli(*args: str, cache: Path | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    """``python -m ARGS``; ``cache``: the embedding cache of it and its jobs (kept out of ~/.cache)."""
    env = {**os.environ, **({"GRADTTS_CACHE": str(cache)} if cache else {})}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env=env)


# ---- the device -------------------------------------------------------------------------------------------------
def test_auto_resolves_to_what_the_machine_has_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="gradtts.device"):
        device = resolve_device("auto")
    assert device.type == ("cuda" if HAS_CUDA else "cpu")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "gradtts.device"]
    if not HAS_CUDA:
        n = torch.get_num_threads()
        assert line == f"device: cpu ({n} thread{'' if n == 1 else 's'})"
    else:
        assert line == f"device: cuda:0 ({torch.cuda.get_device_name(0)})"
    caplog.clear()
    assert resolve_device("cpu", announce=False) == torch.device("cpu") and not caplog.records
    with pytest.raises(DeviceError, match=r"device 'gpu': not a device; use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")


@no_cuda
def test_cuda_without_cuda_is_a_user_error():
    with pytest.raises(DeviceError, match=r"^device=cuda: CUDA is not available on this machine \(torch .*\); use "
                                          r"cpu, or auto"):
        resolve_device("cuda", setting="device")
    # gradtts-score: one line, exit 2, before any file is read (these paths do not exist).
    r = _cli("gradtts.scoring.cli", "gen_dir=/nonexistent/gen", "ref_target=/nonexistent/ref", "out_dir=/tmp/x",
             "device=cuda")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("gradtts-score: error: device=cuda: CUDA is not available")
    assert "Traceback" not in r.stderr


def test_scoring_defaults_to_auto():
    from gradtts.scoring.cli import ScoreConfig

    assert ScoreConfig().device == "auto" and grid.score_config().device == "auto"


def test_ge2e_on_the_cpu_is_what_it_was(tmp_path):
    """``auto`` on a CPU machine embeds exactly as ``cpu`` does, into the cache directory the CPU always used."""
    from gradtts.scoring import load_speaker_encoder

    cpu = load_speaker_encoder("ge2e", device="cpu", cache_dir=tmp_path / "a")
    emb = cpu.embed_files([READING])
    auto = load_speaker_encoder("ge2e", device="auto", cache_dir=tmp_path / "b")
    assert auto.device.type == ("cuda" if HAS_CUDA else "cpu")
    if not HAS_CUDA:
        np.testing.assert_array_equal(auto.embed_files([READING]), emb)
    # The CPU's cache key is the encoder's alone (as before devices were told apart): old caches stay valid.
    (cached,) = (tmp_path / "a").rglob("*.npy")
    assert cached.parent.parent.name == f"ge2e-{hashlib.sha1(cpu.cache_key.encode()).hexdigest()[:12]}"
    np.testing.assert_array_equal(np.load(cached), emb[0])
    assert emb.shape == (1, 256) and abs(float(np.linalg.norm(emb[0])) - 1) < 1e-5


# ---- the cluster settings ---------------------------------------------------------------------------------------
def test_stages_6_and_7_take_the_stage_5_cluster_preset(tmp_path):
    preset = yaml.safe_load((ROOT / "gradtts/conf/hydra/launcher/slurm.yaml").read_text())
    s = grid.launcher_settings(tmp_path, "score", ["hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30"])
    for k, v in preset.items():
        if k not in ("defaults", "partition", "timeout_min"):
            assert s[k] == v, k
    assert (s["partition"], s["timeout_min"], s["name"]) == ("gpu", 30, "score")
    assert s["submitit_folder"] == str(layout.sweep_dir(tmp_path) / "score/.submitit/%j")
    launcher, stage = grid.split_launcher_overrides(["encoder=ecapa", "hydra.launcher.partition=gpu", "device=cuda"])
    assert (launcher, stage) == (["hydra.launcher.partition=gpu"], ["encoder=ecapa", "device=cuda"])


def test_the_slurm_job_script_carries_the_preset(tmp_path, monkeypatch):
    """The sbatch script submitit would submit for a stage-7 job (a stand-in srun: no cluster here)."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin/srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{Path(sys.executable).parent}:/usr/bin:/bin")
    settings = grid.launcher_settings(tmp_path / "exp", "score", ["hydra.launcher.partition=gpu"])
    script = grid.stage_executor(settings, "slurm")._executor._make_submission_file_text("CMD", "UID")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=120", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB", "#SBATCH --ntasks-per-node=1",
                 "#SBATCH --job-name=score"):
        assert line in script.splitlines(), line


def test_launcher_settings_need_a_submitting_launcher(tmp_path):
    r = _cli("gradtts.grid", "score", str(tmp_path), "--", "hydra.launcher.partition=gpu")
    assert r.returncode == 2
    assert ("gradtts.grid score: error: hydra.launcher.partition=gpu: launcher settings apply to --launcher slurm "
            "or submitit_local only (this is --launcher joblib)") in r.stderr


# ---- stages 6-7 through submitit's local executor ------------------------------------------------------------------
def _voice(rng: np.random.Generator, f0: float, seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wav = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    return (0.3 * wav / np.abs(wav).max() + 0.01 * rng.normal(size=len(t))).astype(np.float32)


def _tiny_experiment(exp: Path, pairs: dict[str, tuple[float, float]]) -> None:
    """Per pair (``T_C`` -> the two voices' F0): a test text, references, and one run's step-0 and step-2 models
    (a seeded tiny base, untrained: synthesis and scoring are what is tested)."""
    from gradtts.model.checkpoint import save_checkpoint
    from gradtts.model.config import build_model
    from gradtts.text.cmudict import dictionary_id
    from gradtts.train.cli import compose

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = build_model(compose(["data.feats_dir=x", "model=tiny"]).model, n_spks=3)
    for pair, (f_t, f_c) in pairs.items():
        fs = layout.fewshot_dir(exp, pair)
        fs.mkdir(parents=True)
        (fs / "test_texts.txt").write_text("u1 the cat sat on the mat\n")
        for d, f0 in zip(layout.ref_dirs(exp, pair), (f_t, f_c)):
            d.mkdir()
            for i in range(2):
                sf.write(d / f"r{i}.wav", _voice(rng, f0 * (1 + 0.03 * i)), 16000)
        run = layout.run_dir(exp, pair, "l2", 0.0, 0) / "ckpt"
        run.mkdir(parents=True)
        for step in (0, 2):  # speaker "a" stands for the pair's new speaker
            save_checkpoint(run / f"step_{step:07d}.pt", model, dictionary=dictionary_id(None),
                            spk2id={"a": 0, "b": 1, "c": 2}, step=step, new_speakers=["a"])


def _job_logs(exp: Path, stage: str) -> list[Path]:
    return sorted((layout.sweep_dir(exp) / stage / ".submitit").glob("*/*_log.err"))


def _recipe(exp: Path, *args: str) -> subprocess.CompletedProcess:
    """recipes/fewshot.sh with this interpreter's ``python``, its jobs' embedding cache under ``exp``."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "GRADTTS_CACHE": str(exp / "cache")}
    return subprocess.run(["bash", str(ROOT / "recipes/fewshot.sh"), "--exp", str(exp), *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=600)


@pytest.mark.slow  # the recipe's stages 6-7 as 4 submitit jobs (2 pairs x 2 stages), each a new interpreter: ~50 CPU-s
def test_recipe_stages_6_and_7_run_as_one_submitit_job_per_pair(tmp_path):
    exp = tmp_path / "exp"
    _tiny_experiment(exp, {"T_C": (210.0, 110.0), "U_V": (150.0, 260.0)})
    # Pair U_V's target references are gone: its scoring job fails, T_C's scores all the same.
    for f in layout.ref_dirs(exp, "U_V")[0].iterdir():
        f.unlink()
    # A cluster setting given for the grid (a Hydra override of the recipe) reaches stages 6-7's jobs too.
    r = _recipe(exp, "--pairs", "T:C U:V", "--stage", "6", "--stop_stage", "7", "--launcher", "submitit_local",
                "--synth_steps", "2", "--vocoder", "griffinlim", "--n_timesteps", "2", "hydra.launcher.timeout_min=7")
    assert r.returncode == 1, r.stderr
    assert "stage 6: finished for T:C U:V" in r.stdout and "stage 7: finished" not in r.stdout
    for stage in ("synth", "score"):
        assert (f"INFO: {stage}: 2 job(s), one per pair, by submitit's local executor: partition (default), 7 min, "
                "1 GPU(s) and 8 CPUs a job") in r.stderr
    for pair in ("T_C", "U_V"):
        assert f"synth of pair {pair}: local job " in r.stderr
        for gen in (layout.step0_dir(exp, pair) / "synth/step_0000000",
                    layout.run_dir(exp, pair, "l2", 0.0, 0) / "synth/step_0000002"):
            assert (gen / "u1.wav").is_file() and (gen / "synth.json").is_file(), gen
    want = "cuda:0 (" if HAS_CUDA else "cpu ("
    logs = _job_logs(exp, "synth")
    # One job per pair, each logging the device its syntheses ran on (step 0 and step 2).
    assert len(logs) == 2 and [f.read_text().count(f"INFO: device: {want}") for f in logs] == [2, 2]

    (line,) = [ln for ln in r.stderr.splitlines() if " failed: " in ln]
    assert line.startswith("score job ") and "(pair U_V) failed: FileNotFoundError: " in line
    assert "ref_target: no audio files found" in line
    log_file = Path(line.rsplit("log: ", 1)[1])
    assert log_file in _job_logs(exp, "score") and "ref_target: no audio files found" in log_file.read_text()
    (ok,) = [f for f in _job_logs(exp, "score") if f != log_file]
    assert ok.read_text().count(f"INFO: device: {want}") == 1  # once for the stage's two directories

    from gradtts.scoring.cli import ScoreConfig, score

    out = layout.run_dir(exp, "T_C", "l2", 0.0, 0) / "score/step_0000002"
    s = json.loads((out / "summary.json").read_text())
    assert (s["pair"], s["step"], s["encoder"], s["device"]) == ("T_C", 2, "ge2e", "cuda:0" if HAS_CUDA else "cpu")
    assert (layout.step0_dir(exp, "T_C") / "score/step_0000000/summary.json").is_file()
    # The job's numbers are this process's: the same directory scored here, embeddings computed afresh.
    ref_t, ref_c = layout.ref_dirs(exp, "T_C")
    here = score(ScoreConfig(gen_dir=s["gen_dir"], ref_target=str(ref_t), ref_intruder=str(ref_c),
                             out_dir=str(tmp_path / "here"), cache_dir=str(tmp_path / "cache")))
    assert (here["S_T"], here["S_C"]) == (s["S_T"], s["S_C"]) and -1 <= s["S_T"] <= 1
