"""A run's identity: directories, resume and pairing keys tell apart every setting that changes training."""

import json
import subprocess
import sys

import pytest
import torch

from gradtts.model.checkpoint import load_checkpoint, save_checkpoint
from gradtts.model.config import build_model
from gradtts.train import train
from gradtts.train.cli import compose
from gradtts.train.identity import (RunIdentityError, arm_label, arm_of, arm_tag, digest, loss_label, loss_tag,
                                    run_identity)
from train_fixtures import make_feats, save_tiny_base, smoke_overrides

FT = ("experiment=finetune", "model=tiny", "trainer.device=cpu", "trainer.progress=false", "trainer.tensorboard=false",
      "trainer.sample_every=0", "trainer.deterministic=false", "data.batch_size=4", "data.out_size=32",
      "optim.lr=1e-3", "trainer.save_every=0")


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return save_tiny_base(tmp_path_factory.mktemp("base") / "base.pt")


def test_loss_tags_and_labels_tell_delta_apart():
    assert loss_tag({"name": "l2", "delta": 0.5}) == "l2"
    assert loss_tag({"name": "huber", "delta": 0.1}) == "huber_d0.1"
    sh = {"name": "scheduled_huber", "delta_min": 0.01, "schedule": "exponential", "delta": 0.1}
    assert loss_tag(sh) == "scheduled_huber_exponential_dmin0.01"
    assert loss_label(sh) == "scheduled_huber(exponential, δ_min=0.01)"
    assert loss_tag({**sh, "delta_min": 0.1}) != loss_tag(sh)
    ada = {**sh, "name": "adaptive_huber", "quantile": 0.25}
    assert loss_tag(ada) == "adaptive_huber_exponential_q0.25"
    assert loss_label(ada) == "adaptive_huber(exponential, q=0.25)"


def test_arm_tags_add_the_filter_and_lora_only_when_used():
    l2 = {"name": "l2"}
    assert arm_tag(l2, {"name": "none", "drop": 0.3}, {"method": "full", "rank": 4}) == "l2"
    flt = {"name": "residual", "drop": 0.2, "probe_steps": 60, "probe_t": [0.5]}
    lora = {"method": "lora", "rank": 8, "alpha": None, "lora_targets": ["conv"]}
    assert arm_tag(l2, flt, lora) == "l2_filter-residual0.2_lora-r8"
    assert arm_label(l2, flt, lora) == "l2 + residual filter (drop 0.2) + LoRA r=8"


def test_identity_covers_training_settings(base_ckpt, tmp_path):
    feats = make_feats(tmp_path / "few", {"T": 6}, seed=1)
    base = [*smoke_overrides(feats, tmp_path / "o"), *FT, f"adapt.checkpoint={base_ckpt}"]
    ref = run_identity(compose(base), feats / "manifest.jsonl")
    for change in ("loss=huber", "loss=scheduled_huber", "optim.lr=2e-3", "data.batch_size=2", "data.out_size=64",
                   "trainer.precision=bf16", "trainer.seed=5"):
        assert run_identity(compose([*base, change]), feats / "manifest.jsonl") != ref, change
    # The beyond-the-paper arms are part of it; their fields enter only when used, so that the identities (and arm
    # ids) of the study's full fine-tuning runs without a filter are what they were before those arms existed.
    assert "filter" not in ref and set(ref["adapt"]) == {"n_spks", "pe_scale", "trainable", "checkpoint_sha256"}
    variants = {"filter=residual": ("filter", {"name": "residual", "drop": 0.3, "probe_steps": 60,
                                               "probe_t": [0.1, 0.3, 0.5, 0.7, 0.9]}),
                "filter=embedding": ("filter", {"name": "embedding", "drop": 0.3, "encoder": "ge2e",
                                                "encoder_source": None}),
                "adapt.method=lora": ("adapt", None)}
    for change, (key, value) in variants.items():
        ident = run_identity(compose([*base, change]), feats / "manifest.jsonl")
        assert digest(arm_of(ident)) != digest(arm_of(ref)), change
        if value is not None:
            assert ident[key] == value
    lora = run_identity(compose([*base, "adapt.method=lora", "adapt.rank=8"]), feats / "manifest.jsonl")["adapt"]
    assert (lora["method"], lora["rank"], lora["alpha"], lora["lora_targets"]) == ("lora", 8, None,
                                                                                    ["attention", "conv"])
    # Not part of it: how far the run goes and which checkpoints are kept (checkpoint s is the same either way).
    same = run_identity(compose([*base, "trainer.max_steps=7", "trainer.save_steps=[3]"]), feats / "manifest.jsonl")
    assert same == ref
    # The arm drops seed and few-shot set, so R/L pair runs of one configuration across p and seeds.
    other = make_feats(tmp_path / "few2", {"T": 6}, seed=2)
    ident2 = run_identity(compose([*base, "trainer.seed=9"]), other / "manifest.jsonl")
    assert ident2 != ref and digest(arm_of(ident2)) == digest(arm_of(ref))
    # The base checkpoint counts by content.
    torch.manual_seed(3)
    alt = tmp_path / "alt.pt"
    save_checkpoint(alt, build_model(compose(["data.feats_dir=x", "model=tiny"]).model, n_spks=3),
                    dictionary="test-dictionary", spk2id={"a": 0, "b": 1, "c": 2}, step=1000)
    assert run_identity(compose([*base, f"adapt.checkpoint={alt}"]), feats / "manifest.jsonl") != ref


def test_resume_into_another_configuration_is_a_named_error(base_ckpt, tmp_path):
    feats = make_feats(tmp_path / "few", {"T": 6}, seed=1, corrupt={"T_002"})
    out = tmp_path / "run"
    args = [*smoke_overrides(feats, out), *FT, f"adapt.checkpoint={base_ckpt}", "loss=scheduled_huber",
            "trainer.max_steps=3", "trainer.save_steps=[0,3]"]
    train(compose([*args, "loss.delta_min=0.1"]))
    rec = json.loads((out / "run.json").read_text())
    assert rec["arm"] == "scheduled_huber(exponential, δ_min=0.1)" and rec["loss_tag"].endswith("dmin0.1")
    assert rec["n_train"] == 6 and rec["n_corrupt"] == 1 and rec["p_actual"] == pytest.approx(1 / 6)
    # Where it ran is recorded beside the identity, not in it (a run resumes on another machine).
    assert rec["machine"]["torch"] == torch.__version__ and rec["machine"]["device"] == "cpu"
    assert rec["machine"]["cpu"] and "machine" not in rec["identity"]
    # Step 0 is the base model plus the new speaker row, before any update.
    s0, info = load_checkpoint(out / "ckpt/step_0000000.pt")
    b, _ = load_checkpoint(base_ckpt)
    assert info.step == 0 and torch.allclose(s0.spk_emb.weight[3], b.spk_emb.weight.mean(0))
    assert all(torch.equal(v, s0.state_dict()[k]) for k, v in b.state_dict().items() if k != "spk_emb.weight")
    with pytest.raises(RunIdentityError, match=r"loss\.delta_min: 0\.1 -> 0\.01"):
        train(compose([*args, "loss.delta_min=0.01", "trainer.max_steps=6"]))
    with pytest.raises(RunIdentityError, match=r"optim\.lr: 0\.001 -> 0\.002"):
        train(compose([*args, "loss.delta_min=0.1", "optim.lr=2e-3", "trainer.max_steps=6"]))
    # The same configuration resumes and extends.
    assert train(compose([*args, "loss.delta_min=0.1", "trainer.max_steps=5"]))["step"] == 5


@pytest.mark.slow  # two fine-tunings: 8.5 CPU-s alone, 11-16 in full-suite runs (tests/conftest.py)
def test_delta_sweep_trains_two_distinct_runs(base_ckpt, tmp_path):
    """The recipe's stage-5 layout: a multirun over loss.delta_min gives one trained run per value."""
    feats = make_feats(tmp_path / "few", {"T": 6}, seed=1)
    root = tmp_path / "ft"
    cmd = [sys.executable, "-m", "gradtts.train", "-m", *smoke_overrides(feats, "unused"), *FT,
           f"adapt.checkpoint={base_ckpt}", "loss=scheduled_huber", "loss.delta_min=0.1,0.01",
           "trainer.max_steps=3", "trainer.save_steps=[3]",
           f"trainer.out_dir='{root}/${{loss_tag:${{loss}}}}/seed${{trainer.seed}}'",
           f"hydra.sweep.dir={root}/.hydra", "hydra.sweep.subdir=${hydra.job.num}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = sorted(p.parents[2].name for p in root.glob("*/seed*/ckpt/step_0000003.pt"))
    assert runs == ["scheduled_huber_exponential_dmin0.01", "scheduled_huber_exponential_dmin0.1"]
    recs = [json.loads(p.read_text()) for p in sorted(root.glob("*/seed*/run.json"))]
    assert {r["identity"]["loss"]["delta_min"] for r in recs} == {0.1, 0.01}
    assert len({r["arm_id"] for r in recs}) == 2
    a, b = (load_checkpoint(p)[0].state_dict() for p in sorted(root.glob("*/seed*/ckpt/step_0000003.pt")))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # both actually trained, differently
