"""Training loop: base training, bit-identical resume (in process and after SIGKILL), non-finite stop."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gradtts.model.checkpoint import load_checkpoint
from gradtts.train import NonFiniteLossError, train
from gradtts.train.cli import compose
from gradtts.train.state import load_training_state
from train_fixtures import make_feats, smoke_overrides

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    return make_feats(tmp_path_factory.mktemp("feats"), {"a": 4, "b": 4, "c": 4}, seed=3)


def _weights(path):
    return load_training_state(path)["model"]


def _assert_same_weights(p, q):
    a, b = _weights(p), _weights(q)
    assert list(a) == list(b)
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"


@pytest.mark.slow  # 30 training steps with TensorBoard: 32 CPU-s (tests/conftest.py)
def test_base_training_writes_loadable_checkpoints_and_learns(feats, tmp_path):
    out = tmp_path / "run"
    s = train(compose(smoke_overrides(feats, out, "trainer.max_steps=30", "trainer.save_every=10",
                                      "trainer.keep_last=1", "trainer.save_steps=[10]", "trainer.tensorboard=true")))
    assert s["step"] == 30 and s["spk2id"] == {"a": 0, "b": 1, "c": 2}
    ckpt = out / "ckpt"
    # step 10 is listed (kept), 20 was a resume point pruned by 30.
    assert sorted(p.name for p in ckpt.iterdir()) == ["step_0000010.pt", "step_0000010.yaml",
                                                      "step_0000030.pt", "step_0000030.yaml"]
    model, info = load_checkpoint(ckpt / "step_0000030.pt")
    assert info.step == 30 and info.spk2id == {"a": 0, "b": 1, "c": 2} and model.n_spks == 3
    assert info.dictionary == "test-dictionary"
    assert {"optimizer", "scheduler", "rng", "sampler", "train"} <= set(info.extra)
    assert info.extra["train"]["trainer"]["max_steps"] == 30
    assert "max_steps: 30" in (ckpt / "step_0000030.yaml").read_text()
    diff = [h["diff"] for h in s["history"]]
    assert np.mean(diff[-5:]) < 0.8 * np.mean(diff[:5])
    log = (out / "train_log.tsv").read_text().splitlines()
    assert log[0].split("\t")[:4] == ["step", "dur", "prior", "diff"] and len(log) == 1 + 6
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())
    done = json.loads((out / "train_done.json").read_text())
    assert done["step"] == 30 and len(done["rank_digests"]) == 1


@pytest.mark.slow  # 3 training runs, one with TensorBoard samples: 18 CPU-s in the full suite (tests/conftest.py)
def test_resume_is_bit_identical_in_process(feats, tmp_path):
    ov = ("trainer.save_every=4", "loss=scheduled_huber", "loss.delta_min=0.01")
    # The uninterrupted run also logs TensorBoard samples (synthesis + Griffin-Lim): they must not touch
    # the training RNG, so its weights still equal the sample-free interrupted run's.
    full = train(compose(smoke_overrides(feats, tmp_path / "full", "trainer.max_steps=10", *ov,
                                         "trainer.tensorboard=true", "trainer.sample_every=3",
                                         "trainer.vocoder=griffinlim")))
    part = train(compose(smoke_overrides(feats, tmp_path / "part", "trainer.max_steps=6", *ov)))
    assert part["step"] == 6
    resumed = train(compose(smoke_overrides(feats, tmp_path / "part", "trainer.max_steps=10", *ov)))
    assert [h["step"] for h in resumed["history"]] == [7, 8, 9, 10]
    assert [h["diff"] for h in resumed["history"]] == [h["diff"] for h in full["history"][6:]]
    _assert_same_weights(tmp_path / "full/ckpt/step_0000010.pt", tmp_path / "part/ckpt/step_0000010.pt")
    # A finished run re-launched does nothing (idempotent stage).
    again = train(compose(smoke_overrides(feats, tmp_path / "part", "trainer.max_steps=10", *ov)))
    assert again["history"] == [] and again["step"] == 10


@pytest.mark.slow  # a 40-step training command, and one killed and resumed: 145 CPU-s (tests/conftest.py)
def test_resume_after_sigkill_is_bit_identical(feats, tmp_path):
    def args(out):
        return [sys.executable, "-m", "gradtts.train", *smoke_overrides(
            feats, out, "trainer.max_steps=40", "trainer.save_every=5", "trainer.keep_last=2",
            "trainer.deterministic=true")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(args(tmp_path / "full"), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(args(tmp_path / "kill"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (tmp_path / "kill/ckpt/step_0000005.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps = sorted(p.name for p in (tmp_path / "kill/ckpt").glob("step_*.pt"))
    assert steps and "step_0000040.pt" not in steps, f"the run was not interrupted ({steps})"
    for p in (tmp_path / "kill/ckpt").glob("step_*.pt"):  # atomic writes: every visible checkpoint is whole
        assert load_training_state(p)["step"] == int(p.stem.split("_")[1])
    done = subprocess.run(args(tmp_path / "kill"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_same_weights(tmp_path / "full/ckpt/step_0000040.pt", tmp_path / "kill/ckpt/step_0000040.pt")


def test_non_finite_loss_names_step_utterances_and_checkpoint(tmp_path):
    feats = make_feats(tmp_path / "f", {"a": 6, "b": 6}, seed=1)
    mel = np.load(feats / "mels/b_002.npy")
    mel[3, 2] = np.nan
    np.save(feats / "mels/b_002.npy", mel)
    with pytest.raises(NonFiniteLossError) as err:
        train(compose(smoke_overrides(feats, tmp_path / "run", "trainer.max_steps=50", "trainer.save_every=1",
                                      "data.batch_size=2")))
    msg = str(err.value)
    step = int(msg.split("at step ")[1].split(";")[0])
    assert "non-finite loss (dur=" in msg and "b_002" in msg.split("batch utterances: ")[1].split(";")[0]
    if step > 1:
        assert f"last good checkpoint: {tmp_path / 'run/ckpt'}/step_{step - 1:07d}.pt" in msg
    else:
        assert "last good checkpoint: none" in msg


def test_cli_reports_non_finite_loss(tmp_path):
    feats = make_feats(tmp_path / "f", {"a": 2}, seed=1)
    for p in (feats / "mels").glob("*.npy"):
        np.save(p, np.full_like(np.load(p), np.inf))
    r = subprocess.run([sys.executable, "-m", "gradtts.train", *smoke_overrides(feats, tmp_path / "run")],
                       capture_output=True, text=True)
    assert r.returncode == 3 and "error: non-finite loss" in r.stderr and "a_00" in r.stderr


def test_bf16_autocast_step_and_official_defaults(feats, tmp_path):
    s = train(compose(smoke_overrides(feats, tmp_path / "bf16", "trainer.max_steps=2", "trainer.precision=bf16")))
    assert all(np.isfinite([h["diff"], h["prior"], h["dur"]]).all() for h in s["history"])
    cfg = compose([f"data.feats_dir={feats}"])
    assert (cfg.optim.lr, cfg.data.batch_size, cfg.data.out_size, cfg.optim.grad_clip) == (1e-4, 16, 172, 1.0)
    assert cfg.loss.name == "l2" and cfg.model.n_enc_channels == 128


def test_bad_config_values_are_reported(feats, tmp_path):
    with pytest.raises(ValueError, match="trainer.precision='fp8'"):
        train(compose(smoke_overrides(feats, tmp_path / "x", "trainer.precision=fp8")))
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        train(compose(smoke_overrides(feats, tmp_path / "y", "loss.name=l1")))


def test_init_from_continues_a_base_model_from_its_weights(feats, tmp_path):
    """trainer.init_from: the checkpoint's weights and speakers, steps counted on, its digest in the identity."""
    from train_fixtures import save_tiny_base

    from gradtts.digest import file_digest

    base = save_tiny_base(tmp_path / "base.pt", seed=5)  # speakers a, b, c; step 1000
    start, _ = load_checkpoint(base)
    out = tmp_path / "more"
    s = train(compose(smoke_overrides(feats, out, f"trainer.init_from={base}", "trainer.max_steps=1004",
                                      "trainer.save_steps=[1000]", "trainer.save_every=0")))
    assert s["step"] == 1004 and s["spk2id"] == {"a": 0, "b": 1, "c": 2}
    first = _weights(out / "ckpt" / "step_0001000.pt")
    assert all(torch.equal(first[k], v) for k, v in start.state_dict().items())  # starts exactly at the file
    last = _weights(out / "ckpt" / "step_0001004.pt")
    assert not torch.equal(last["encoder.emb.weight"], first["encoder.emb.weight"])  # the encoder trains too
    ident = json.loads((out / "run.json").read_text())["identity"]
    assert ident["init_sha256"] == file_digest(base)

    other = make_feats(tmp_path / "other", {"a": 2, "zz": 2}, seed=1)
    with pytest.raises(ValueError, match=r"speakers \['zz'\] are not in .*base.pt"):
        train(compose(smoke_overrides(other, tmp_path / "bad", f"trainer.init_from={base}")))
    with pytest.raises(ValueError, match="exclude each other"):
        train(compose(smoke_overrides(feats, tmp_path / "both", f"trainer.init_from={base}",
                                      f"adapt.checkpoint={base}")))


@pytest.mark.slow  # a 2-job Hydra multirun of 3 steps: 17 CPU-s in a full-suite run (tests/conftest.py)
def test_multirun_job_logs_hold_the_trainers_lines(feats, tmp_path):
    # Each job of a Hydra multirun logs to <sweep dir>/<job number>/train.log: its own run's lines, nothing else.
    runs, sweep = tmp_path / "runs", tmp_path / "sweep"
    cmd = [sys.executable, "-m", "gradtts.train", "-m", *smoke_overrides(feats, "x"),
           f"trainer.out_dir='{runs}/seed${{trainer.seed}}'", "trainer.seed=0,1", "trainer.max_steps=3",
           f"hydra.sweep.dir='{sweep}'", "hydra.sweep.subdir=${hydra.job.num}"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    for job, seed in ((0, 0), (1, 1)):
        out = runs / f"seed{seed}"
        last = json.loads((out / "train_done.json").read_text())["last"]
        logged = [line.split(" INFO: ", 1)[1] for line in (sweep / str(job) / "train.log").read_text().splitlines()]
        assert logged == [
            "device: cpu (1 thread)",
            f"training on {feats}: 12 utterances, steps 0 to 3, trainable encoder,decoder,spk_emb -> {out}",
            f"step 3: saved {out}/ckpt/step_0000003.pt (loss dur {last['dur']:.4f}, prior {last['prior']:.4f}, "
            f"diff {last['diff']:.4f})",
            f"done: step 3, checkpoints in {out}/ckpt"]
        assert f"done: step 3, checkpoints in {out}/ckpt" in r.stderr  # and on the console, as before
    assert not list(runs.glob("*/*.log"))  # a multirun's run dirs hold no Hydra log: it is in the sweep dir
