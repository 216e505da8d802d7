"""The reweighted L2 arm: w(t) = E|rho'_delta(t)(a)| / E|2a| of the matched scheduled pseudo-Huber loss, measured
by the probe, against the definition written out; its limits, its gradient, and a tiny fine-tuning run."""

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from gradtts.data.manifest import read_manifest
from gradtts.losses import (LOSSES, DeltaSchedule, LossConfig, ReweightedL2Loss, ScheduledPseudoHuberLoss, build_loss,
                            loss_from_config, matched_loss_from_config)
from gradtts.model.checkpoint import load_checkpoint
from gradtts.train import train
from gradtts.train.cli import compose
from gradtts.train.data import MelDataset
from gradtts.train.identity import loss_identity
from gradtts.train.probe import REWEIGHT_T, ProbeResult, matched_weights, probe_residuals
from train_fixtures import make_feats, save_tiny_base, smoke_overrides

T_GRID = [0.05, 0.3, 0.6, 0.95]


def _residuals(seed: int = 0, n: int = 20_000) -> ProbeResult:
    """Given |residual| elements, a different scale at each time (as a model's are), in probe form."""
    rng = np.random.default_rng(seed)
    chunks = [np.abs(rng.standard_t(4, size=n) * s).astype(np.float32) for s in (2.0, 1.0, 0.5, 0.2)]
    index = np.concatenate([np.full(n, k, dtype=np.int16) for k in range(len(chunks))])
    # Interleaved as the probe writes them (batch after batch, each t within a batch).
    order = rng.permutation(index.size)
    return ProbeResult(["u"], T_GRID, np.zeros((1, len(T_GRID))), np.concatenate(chunks)[order], index[order])


def _direct(a: np.ndarray, delta: float) -> float:
    """E|rho'(a)| / E|2a| with rho'(a) = 2 delta a / sqrt(a^2 + delta^2), the derivative of
    rho(a) = 2 delta (sqrt(a^2 + delta^2) - delta) written out by hand."""
    a = a.astype(np.float64)
    return float(np.mean(2 * delta * a / np.sqrt(a * a + delta * delta)) / np.mean(2 * a))


def _delta(schedule: str, delta_min: float, t: float, step_t: float = 0.5, beta=(0.05, 20.0)) -> float:
    """delta(t) written out from the schedule definitions."""
    if schedule == "exponential":
        return delta_min ** t
    if schedule == "step":
        return 1.0 if t < step_t else delta_min
    if schedule == "snr":
        r = np.sqrt(np.expm1(beta[0] * t + 0.5 * (beta[1] - beta[0]) * t * t))
        return (1 - delta_min) / (1 + r) ** 2 + delta_min
    raise AssertionError(schedule)


@pytest.mark.parametrize("fields", [{"schedule": "exponential", "delta_min": 0.1},
                                    {"schedule": "exponential", "delta_min": 0.01},
                                    {"schedule": "step", "delta_min": 0.2, "step_t": 0.4},
                                    {"schedule": "snr", "delta_min": 0.05, "beta_min": 0.1, "beta_max": 10.0}])
def test_probe_weights_are_the_mean_gradient_ratio(fields):
    probed = _residuals()
    matched = matched_loss_from_config({"name": "reweighted_l2", **fields}, beta_min=0.05, beta_max=20.0)
    assert isinstance(matched, ScheduledPseudoHuberLoss) and matched.schedule.name == fields["schedule"]
    got = matched_weights(probed, matched)
    beta = (fields.get("beta_min", 0.05), fields.get("beta_max", 20.0))
    want = [_direct(probed.abs_residuals[probed.t_index == k],
                    _delta(fields["schedule"], fields["delta_min"], t, fields.get("step_t", 0.5), beta))
            for k, t in enumerate(T_GRID)]
    assert got == pytest.approx(want, rel=1e-9)
    # Larger residuals relative to delta(t) give smaller weights: here the scale falls with t by 10x.
    assert all(0 < w < 1 for w in got)


def test_weight_tends_to_one_as_delta_grows_and_falls_where_residuals_exceed_delta():
    # losses.py scales pseudo-Huber so that rho ~ a^2 for |a| << delta: rho' -> 2a, so w -> 1.
    a = np.abs(np.random.default_rng(1).normal(size=50_000)).astype(np.float32)
    probed = ProbeResult(["u"], [0.5], np.zeros((1, 1)), a, np.zeros(a.size, dtype=np.int16))
    weights = {d: matched_weights(probed, build_loss("scheduled_huber", delta_min=d, schedule="constant"))[0]
               for d in (1e-3, 0.1, 1.0, 10.0, 1e3, 1e6)}
    assert abs(weights[1e6] - 1) < 1e-9 and abs(weights[1e3] - 1) < 1e-5
    assert list(weights.values()) == sorted(weights.values())  # w grows with delta
    assert weights[0.1] < 0.2 and weights[1.0] < 0.8
    # Far beyond delta, rho' -> 2 delta sign(a): w -> delta / E|a|, from below.
    mean_a = float(a.astype(np.float64).mean())
    assert 0.99 * 1e-3 / mean_a < weights[1e-3] < 1e-3 / mean_a
    with pytest.raises(ValueError, match="every residual element at t=0.5 is 0"):
        matched_weights(ProbeResult(["u"], [0.5], np.zeros((1, 1)), np.zeros(3, np.float32), np.zeros(3, np.int16)),
                        build_loss("scheduled_huber"))


def test_weight_is_linear_in_t_between_grid_points_and_constant_beyond():
    loss = ReweightedL2Loss([0.1, 0.5, 0.9], [0.8, 0.4, 0.25])
    t = torch.tensor([1e-5, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1 - 1e-5])
    assert loss.weight(t).tolist() == pytest.approx(np.interp(t.numpy(), [0.1, 0.5, 0.9], [0.8, 0.4, 0.25]).tolist(),
                                                   rel=1e-6)
    assert loss.weight(torch.tensor([0.3])).item() == pytest.approx(0.6)
    assert ReweightedL2Loss([0.5], [0.3]).weight(torch.tensor([0.1, 0.9])).tolist() == pytest.approx([0.3, 0.3])
    for args, msg in [(([0.1, 0.5], [1.0]), "one weight per time"), (([0.5, 0.1], [1.0, 1.0]), "increase strictly"),
                      (([0.1, 0.5], [1.0, 0.0]), "finite and > 0"), (([0.1], [float("nan")]), "finite and > 0")]:
        with pytest.raises(ValueError, match=msg):
            ReweightedL2Loss(*args)


def test_reweighted_loss_gradient_is_w_times_l2():
    loss = ReweightedL2Loss([0.1, 0.5, 0.9], [0.8, 0.4, 0.25], matched=DeltaSchedule("exponential", 0.1))
    a = torch.randn(3, 80, 20, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.3, 0.7, 0.95])
    loss(a, t).sum().backward()
    w = torch.tensor([0.6, 0.325, 0.25], dtype=torch.float64).reshape(3, 1, 1)
    assert torch.allclose(a.grad, w * 2 * a.detach(), rtol=1e-6)
    # No outlier down-weighting: a residual 100x larger gets a gradient 100x larger.
    big = torch.tensor([[[100.0, 1.0]]], requires_grad=True)
    loss(big, torch.tensor([0.5])).sum().backward()
    assert big.grad[0, 0, 0] / big.grad[0, 0, 1] == pytest.approx(100.0)

    # Through the Grad-TTS score loss (masked mean) at one fixed t: every weight's gradient is w(t) times L2's.
    from gradtts.model import OFFICIAL_CONFIG, GradTTS

    torch.manual_seed(0)
    model = GradTTS(**dict(OFFICIAL_CONFIG, n_enc_channels=16, filter_channels=32, filter_channels_dp=16,
                           n_enc_layers=1, dec_dim=8, enc_dropout=0.0)).double()
    # float64: some weights' gradients are near 0 (ahead of a normalisation), float32 would leave only rounding.
    y, mu = torch.randn(2, 80, 16, dtype=torch.float64), torch.randn(2, 80, 16, dtype=torch.float64)
    mask = torch.ones(2, 1, 16, dtype=torch.float64)
    mask[1, :, 12:] = 0
    tt = torch.tensor([0.3, 0.3], dtype=torch.float64)
    grads = []
    for score_loss in (None, loss):
        model.zero_grad()
        torch.manual_seed(1)
        value, _ = model.decoder.loss_t(y, mask, mu, tt, score_loss=score_loss)
        value.backward()
        grads.append((value.item(), [p.grad.clone() for p in model.decoder.parameters() if p.grad is not None]))
    (l2_value, l2_grads), (rw_value, rw_grads) = grads
    assert rw_value == pytest.approx(0.6 * l2_value, rel=1e-6)
    assert len(rw_grads) == len(l2_grads) > 10
    scale = max(g.abs().max().item() for g in l2_grads)
    for g_rw, g_l2 in zip(rw_grads, l2_grads):
        assert torch.allclose(g_rw, 0.6 * g_l2, rtol=1e-6, atol=1e-10 * scale)


def test_registered_with_the_scheduled_fields_and_built_from_its_table():
    assert "reweighted_l2" in LOSSES
    full = OmegaConf.to_container(OmegaConf.structured(LossConfig()))
    cfg = {**full, "name": "reweighted_l2", "delta_min": 0.01, "schedule": "step", "step_t": 0.3}
    assert loss_identity(cfg) == {"name": "reweighted_l2", "delta_min": 0.01, "schedule": "step", "step_t": 0.3}
    # The fields it never reads do not split its arm.
    assert loss_identity({**cfg, "delta": 7.0, "quantile": 0.9}) == loss_identity(cfg)
    with pytest.raises(ValueError, match="needs its w\\(t\\) table measured first"):
        loss_from_config(cfg)
    built = loss_from_config(cfg, measured_weights=([0.2, 0.8], [0.9, 0.1]))
    assert isinstance(built, ReweightedL2Loss) and built.delta(torch.tensor([0.5])) is None
    assert (built.t_values, built.weights, built.matched.name, built.matched.t_step) == ([0.2, 0.8], [0.9, 0.1],
                                                                                         "step", 0.3)
    matched = matched_loss_from_config(cfg)
    assert matched.name == "scheduled_huber" and repr(matched.schedule) == repr(built.matched)
    # An snr schedule takes the model's beta range where the config leaves it None.
    snr = matched_loss_from_config({**full, "name": "reweighted_l2", "schedule": "snr"}, beta_min=0.5, beta_max=5.0)
    t = torch.tensor([0.4])
    assert snr.delta(t).item() == pytest.approx(_delta("snr", 0.1, 0.4, beta=(0.5, 5.0)), rel=1e-6)
    # The config group offers it.
    assert compose(["data.feats_dir=x", "loss=reweighted_l2"]).loss.name == "reweighted_l2"


@pytest.mark.slow  # two short fine-tunings of the tiny model and two 21-time probes: about 42 CPU-s
def test_training_run_records_the_table_and_resumes_with_it(tmp_path):
    base = save_tiny_base(tmp_path / "base.pt")
    few = make_feats(tmp_path / "few", {"T": 4}, seed=3)
    out = tmp_path / "rw"

    def run(steps: int):
        train(compose(smoke_overrides(
            few, out, "experiment=finetune", "model=tiny", f"adapt.checkpoint={base}", f"trainer.max_steps={steps}",
            "trainer.save_steps=[0,4]", "trainer.device=cpu", "trainer.progress=false", "trainer.tensorboard=false",
            "trainer.sample_every=0", "trainer.deterministic=false", "data.batch_size=4", "data.out_size=32",
            "optim.lr=1e-3", "loss=reweighted_l2", "loss.delta_min=0.05")))
        return json.loads((out / "run.json").read_text())

    rec = run(4)
    assert rec["arm_tag"] == "reweighted_l2_exponential_dmin0.05"
    assert rec["arm"] == "reweighted_l2(exponential, δ_min=0.05)"
    assert rec["identity"]["loss"] == {"name": "reweighted_l2", "delta_min": 0.05, "schedule": "exponential"}
    table = rec["reweight"]
    assert table["probe_t"] == list(REWEIGHT_T) and len(table["weights"]) == 21
    assert table["matched"] == "ScheduledPseudoHuberLoss(DeltaSchedule('exponential', delta_min=0.05))"
    # The table is the definition applied to the step-0 weights (the base with the new row) and the run's seed.
    model, info = load_checkpoint(out / "ckpt" / "step_0000000.pt")
    ds = MelDataset(read_manifest(few).items, dict(info.spk2id), model.n_feats)
    probed = probe_residuals(model, ds, REWEIGHT_T, seed=table["seed"])
    assert table["n_elements"] == probed.abs_residuals.size
    want = [_direct(probed.abs_residuals[probed.t_index == k], 0.05 ** t) for k, t in enumerate(REWEIGHT_T)]
    assert table["weights"] == pytest.approx(want, rel=1e-5)
    assert all(0 < w < 1 for w in table["weights"]) and table["weights"][0] > table["weights"][-1]
    # The checkpoint's loss is that table.
    assert info.extra["loss"] == repr(ReweightedL2Loss(REWEIGHT_T, table["weights"],
                                                       DeltaSchedule("exponential", 0.05)))
    # A resume trains with the recorded table (measuring again on the starting weights matches it only to
    # float rounding, ~1e-9 here): the same table, bit for bit, in run.json and in the new checkpoint.
    again = run(6)
    assert again["reweight"] == table
    _, info6 = load_checkpoint(out / "ckpt" / "step_0000006.pt")
    assert info6.extra["loss"] == info.extra["loss"]
