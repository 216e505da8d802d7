"""Few-shot fine-tuning: new speaker row = mean of base rows, frozen parts unchanged, loss falls, tables."""

import csv

import numpy as np
import pytest
import torch

from gradtts.model.checkpoint import load_checkpoint
from gradtts.model.config import build_model
from gradtts.train import train
from gradtts.train.adapt import add_speaker_rows, set_trainable
from gradtts.train.cli import compose
from train_fixtures import make_feats, save_tiny_base, smoke_overrides


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return save_tiny_base(tmp_path_factory.mktemp("base") / "base.pt")


def test_add_speaker_rows_initialises_from_the_mean():
    torch.manual_seed(1)
    model = build_model(compose(["data.feats_dir=x", "model=tiny"]).model, n_spks=4)
    bigger = add_speaker_rows(model, 2)
    assert bigger.n_spks == 6 and bigger.config["n_spks"] == 6
    w = model.spk_emb.weight.detach()
    assert torch.equal(bigger.spk_emb.weight[:4], w)
    assert torch.allclose(bigger.spk_emb.weight[4], w.mean(0)) and torch.allclose(bigger.spk_emb.weight[5], w.mean(0))
    sd, sb = model.state_dict(), bigger.state_dict()
    assert all(torch.equal(sd[k], sb[k]) for k in sd if k != "spk_emb.weight")
    single = build_model(compose(["data.feats_dir=x", "model=tiny"]).model, n_spks=1)
    with pytest.raises(ValueError, match="single-speaker"):
        add_speaker_rows(single, 1)
    with pytest.raises(ValueError, match="unknown trainable part"):
        set_trainable(bigger, ["decoder", "postnet"])


@pytest.mark.slow  # 40 fine-tuning steps with checkpoints: 84 CPU-s (tests/conftest.py)
def test_finetune_new_speaker(base_ckpt, tmp_path):
    feats = make_feats(tmp_path / "few", {"T": 8}, seed=7, corrupt={"T_001", "T_005"})
    out = tmp_path / "ft"
    summary = train(compose(smoke_overrides(
        feats, out, "experiment=finetune", "model=tiny", f"adapt.checkpoint={base_ckpt}", "trainer.max_steps=40",
        "trainer.save_steps=[10,20,40]", "trainer.save_every=10", "trainer.device=cpu", "trainer.progress=false",
        "trainer.tensorboard=false", "trainer.sample_every=0", "trainer.deterministic=false", "data.batch_size=4",
        "data.out_size=32", "optim.lr=1e-3", "loss=scheduled_huber", "loss.delta_min=0.01")))
    assert summary["spk2id"] == {"a": 0, "b": 1, "c": 2, "T": 3} and summary["new_speakers"] == ["T"]
    ckpt = out / "ckpt"
    for s in (10, 20, 40):
        assert (ckpt / f"step_{s:07d}.pt").is_file() and (ckpt / f"step_{s:07d}.yaml").is_file()
        assert f"checkpoint: {base_ckpt}" in (ckpt / f"step_{s:07d}.yaml").read_text()
    base, _ = load_checkpoint(base_ckpt)
    tuned, info = load_checkpoint(ckpt / "step_0000040.pt")
    assert tuned.n_spks == 4 and info.spk2id["T"] == 3 and info.extra["new_speakers"] == ["T"]
    sb, st = base.state_dict(), tuned.state_dict()
    # Frozen: the whole text encoder and the base speaker rows are bit-identical.
    assert all(torch.equal(sb[k], st[k]) for k in sb if k.startswith("encoder."))
    assert torch.equal(st["spk_emb.weight"][:3], sb["spk_emb.weight"])
    # Trained: the new row (started at the mean of the base rows) and the decoder moved.
    start = sb["spk_emb.weight"].mean(0)
    assert not torch.allclose(st["spk_emb.weight"][3], start)
    assert sum(not torch.equal(sb[k], st[k]) for k in sb if k.startswith("decoder.")) > 0.9 * sum(
        k.startswith("decoder.") for k in sb)
    diff = [h["diff"] for h in summary["history"]]
    assert np.mean(diff[-8:]) < 0.8 * np.mean(diff[:8]), diff
    assert all("delta_mean" in h and 0.01 <= h["delta_min"] <= h["delta_max"] <= 1.0 for h in summary["history"])
    # The ranked residual table, with the corrupt flag, at every checkpoint.
    with open(ckpt / "step_0000040.residuals.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["rank"] for r in rows] == [str(i) for i in range(1, 9)]
    assert sorted(r["utt"] for r in rows) == [f"T_{i:03d}" for i in range(8)]
    assert {r["utt"] for r in rows if r["corrupt"] == "1"} == {"T_001", "T_005"}
    res = [float(r["mean_sq_residual"]) for r in rows]
    assert res == sorted(res, reverse=True) and sum(int(r["visits"]) for r in rows) == 40 * 4
    assert (ckpt / "step_0000010.residuals.tsv").is_file()
