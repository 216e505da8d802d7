"""Filter-then-train baselines and the adaptive δ rule: the probe's residuals, the choice of clips, the runs."""

import json
import os

import numpy as np
import pytest
import torch

from gradtts.data.manifest import Manifest, ManifestEntry, read_manifest
from gradtts.model.checkpoint import load_checkpoint
from gradtts.model.masks import sequence_mask
from gradtts.train import train
from gradtts.train.adapt import add_speaker_rows
from gradtts.train.cli import compose
from gradtts.train.data import MelDataset, collate
from gradtts.train.filters import FilterError, choose, embedding_filter, n_to_drop, robust_centroid
from gradtts.train.probe import adaptive_delta, probe_residuals
from train_fixtures import make_feats, save_tiny_base, smoke_overrides


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return save_tiny_base(tmp_path_factory.mktemp("base") / "base.pt")


@pytest.fixture(scope="module")
def few(tmp_path_factory):
    return make_feats(tmp_path_factory.mktemp("few") / "feats", {"T": 10}, seed=3, corrupt={"T_002", "T_007"})


def _model_and_set(base_ckpt, feats):
    base, info = load_checkpoint(base_ckpt)
    model = add_speaker_rows(base, 1)
    items = read_manifest(feats).items
    return model, MelDataset(items, {"T": 3}, model.n_feats)


@pytest.mark.slow  # 17 CPU-s on the loaded 2-core machine (alignment JIT, two probes)
def test_probe_residual_is_the_score_loss_at_that_time(base_ckpt, few):
    """msr[i, k] equals the decoder's own L2 score loss of clip i alone at t_k with the same noise."""
    model, ds = _model_and_set(base_ckpt, few)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    res = probe_residuals(model, ds, [0.2, 0.8], seed=5, batch_size=1)
    assert torch.equal(torch.rand(3), before), "the probe must not consume the global random stream"
    assert model.training, "the model's mode is restored"
    assert res.msr.shape == (10, 2) and res.utts == [f"T_{i:03d}" for i in range(10)]
    assert res.abs_residuals.size == 2 * 80 * sum(ds.lengths)
    model.eval()
    with torch.no_grad():
        for i in (0, 7):
            b = collate([ds[i]])
            spk = model._speaker(b["spk"])
            mu_x, _, x_mask = model.encoder(b["x"], b["x_lengths"], spk)
            y_mask = sequence_mask(b["y_lengths"], b["y"].shape[-1]).unsqueeze(1).to(x_mask)
            attn = model.align(mu_x, x_mask, b["y"], y_mask)
            mu_y = torch.matmul(attn.squeeze(1).transpose(1, 2), mu_x.transpose(1, 2)).transpose(1, 2)
            for k, t in enumerate((0.2, 0.8)):
                torch.manual_seed(5 * 1_000_003 + 7919 * k + i)  # the probe's documented seeding
                loss, _ = model.decoder.loss_t(b["y"], y_mask, mu_y, torch.tensor([t]), spk)
                assert res.msr[i, k] == pytest.approx(loss.item(), rel=1e-5)
    again = probe_residuals(model, ds, [0.2, 0.8], seed=5, batch_size=1)
    assert np.array_equal(again.msr, res.msr)
    # Clip scores: each t's msr over its median across clips, averaged over t.
    expected = (res.msr / np.median(res.msr, axis=0)).mean(1)
    assert np.allclose(res.clip_scores(), expected)
    with pytest.raises(ValueError, match="probe times must lie in"):
        probe_residuals(model, ds, [0.0, 0.5])


def test_adaptive_delta_is_the_quantile():
    a = np.abs(np.random.default_rng(0).normal(size=10_001)).astype(np.float32)
    assert adaptive_delta(a, 0.5) == pytest.approx(float(np.median(a.astype(np.float64))))
    assert adaptive_delta(a, 0.1) == pytest.approx(float(np.quantile(a.astype(np.float64), 0.1)))
    for q in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="loss.quantile must lie in"):
            adaptive_delta(a, q)


def _items(n, corrupt=()):
    return [ManifestEntry(f"u{i:02d}", "T", "x", [0], "m.npy", 10, f"u{i:02d}" in corrupt) for i in range(n)]


def test_choose_drops_the_largest_scores_and_records_intruders():
    items = _items(10, corrupt={"u03", "u08"})
    scores = [0.1, 0.2, 0.3, 5.0, 0.2, 0.1, 0.9, 0.3, 4.0, 0.1]
    res = choose("residual", items, scores, 0.3)
    assert res.dropped == ["u03", "u08", "u06"] and len(res.kept) == 7
    s = res.summary()
    assert (s["n_in"], s["n_kept"], s["intruders_in"], s["intruders_removed"], s["intruders_kept"]) == (10, 7, 2, 2, 0)
    # Ties break on the utterance id, so the choice is stable.
    assert choose("x", _items(4), [1, 1, 1, 1], 0.5).dropped == ["u00", "u01"]
    assert [n_to_drop(20, d) for d in (0, 0.3, 0.25, 0.99)] == [0, 6, 5, 19]
    with pytest.raises(ValueError, match=r"filter.drop must lie in \[0, 1\)"):
        n_to_drop(10, 1.0)


def test_robust_centroid_resists_a_minority():
    rng = np.random.default_rng(1)
    target = rng.normal(size=16)
    other = rng.normal(size=16)
    e = np.stack([target + 0.1 * rng.normal(size=16) for _ in range(7)] +
                 [other + 0.1 * rng.normal(size=16) for _ in range(3)])
    t = target / np.linalg.norm(target)
    plain = e / np.linalg.norm(e, axis=1, keepdims=True)
    plain = plain.mean(0) / np.linalg.norm(plain.mean(0))
    robust = robust_centroid(e)
    assert robust @ t > 0.99 and robust @ t > plain @ t + 0.05


@pytest.mark.slow  # synthesises 8 clips and embeds them with GE2E: about 15 CPU-s
def test_embedding_filter_drops_the_other_voice(tmp_path):
    from data_prep.synthvox import build

    d = build(tmp_path / "data", n_voices=2, utts_per_voice=4, first_voice=4, progress=False)
    spk = sorted(d.speakers)
    # The few-shot set: 4 clips of the first voice, labelled as it, and 2 of the second one (intruders).
    utts = d.spk2utt[spk[0]] + d.spk2utt[spk[1]][:2]
    items = [ManifestEntry(u, spk[0], "x", [0], "m.npy", 10, u.startswith(spk[1])) for u in utts]
    manifest = Manifest(tmp_path / "feats", items, {"data_dir": str(tmp_path / "data")})
    res = embedding_filter(manifest, items, 0.34, "ge2e")
    assert sorted(res.dropped) == sorted(d.spk2utt[spk[1]][:2])
    assert res.summary()["intruders_removed"] == 2 and res.details["encoder"] == "ge2e"
    gone = Manifest(tmp_path / "feats", items, {"data_dir": str(tmp_path / "nowhere")})
    with pytest.raises(FilterError, match="the embedding filter needs the clips' audio"):
        embedding_filter(gone, items, 0.3, "ge2e")


def _ft(feats, out, base, *extra):
    return compose(smoke_overrides(
        feats, out, "experiment=finetune", "model=tiny", f"adapt.checkpoint={base}", "trainer.max_steps=4",
        "trainer.save_steps=[0,4]", "trainer.device=cpu", "trainer.progress=false", "trainer.tensorboard=false",
        "trainer.sample_every=0", "trainer.deterministic=false", "data.batch_size=4", "data.out_size=32",
        "optim.lr=1e-3", *extra))


@pytest.mark.slow  # a probe pass and two fine-tunings: 24 CPU-s on the loaded 2-core machine
def test_residual_filter_run_records_its_choice_and_reuses_it(base_ckpt, few, tmp_path):
    out = tmp_path / "ft"
    # +study.*: a grid job's extra keys, which the probe's own config must leave out.
    cfg = _ft(few, out, base_ckpt, "filter=residual", "filter.probe_steps=3", "filter.drop=0.2", "+study.pair=T_C")
    train(cfg)
    flt = json.loads((out / "filter.json").read_text())
    rec = json.loads((out / "run.json").read_text())
    assert rec["arm_tag"] == "l2_filter-residual0.2" and rec["arm"] == "l2 + residual filter (drop 0.2)"
    assert rec["identity"]["filter"] == {"name": "residual", "drop": 0.2, "probe_steps": 3,
                                         "probe_t": [0.1, 0.3, 0.5, 0.7, 0.9]}
    kept = flt["result"]["kept"]
    assert len(kept) == 8 and rec["n_train"] == 8 and rec["filter"]["n_kept"] == 8
    assert rec["filter"]["intruders_in"] == 2 and rec["n_corrupt"] == rec["filter"]["intruders_kept"]
    # The probe was 3 L2 steps in its own directory; its weights are gone, its residual table stays.
    probe = json.loads((out / "filter_probe" / "run.json").read_text())
    assert probe["loss"] == "l2" and probe["filter"] is None
    assert not (out / "filter_probe" / "ckpt" / "step_0000003.pt").exists()
    # The main run trained on the kept clips only.
    with open(out / "ckpt" / "step_0000004.residuals.tsv") as f:
        assert sorted(line.split("\t")[1] for line in list(f)[1:]) == sorted(kept)
    # Extending the run reuses the choice instead of probing again.
    stamp = os.stat(out / "filter.json").st_mtime_ns
    train(_ft(few, out, base_ckpt, "filter=residual", "filter.probe_steps=3", "filter.drop=0.2", "+study.pair=T_C",
              "trainer.max_steps=5"))
    assert os.stat(out / "filter.json").st_mtime_ns == stamp


@pytest.mark.slow  # a fine-tuning and three probes: 30 CPU-s on the loaded 2-core machine
def test_adaptive_huber_measures_delta_min_on_the_starting_model(base_ckpt, few, tmp_path):
    out = tmp_path / "ada"
    train(_ft(few, out, base_ckpt, "loss=adaptive_huber", "loss.quantile=0.3"))
    rec = json.loads((out / "run.json").read_text())
    assert rec["arm_tag"] == "adaptive_huber_exponential_q0.3"
    assert rec["identity"]["loss"] == {"name": "adaptive_huber", "quantile": 0.3, "schedule": "exponential"}
    # The recorded value is the rule applied to the step-0 weights (the base with the new row), seed 1234.
    model, info = load_checkpoint(out / "ckpt" / "step_0000000.pt")
    ds = MelDataset(read_manifest(few).items, dict(info.spk2id), model.n_feats)
    expected = adaptive_delta(probe_residuals(model, ds, seed=1234).abs_residuals, 0.3)
    assert rec["adaptive"]["delta_min"] == pytest.approx(expected, rel=1e-6)
    assert f"delta_min={rec['adaptive']['delta_min']}" in info.extra["loss"]
    with pytest.raises(ValueError, match="loss.quantile must lie in"):
        train(_ft(few, tmp_path / "bad", base_ckpt, "loss=adaptive_huber", "loss.quantile=1.0"))
