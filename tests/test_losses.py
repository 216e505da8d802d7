"""Score-loss family: values against the formulas written out independently, limits, gradients, configs."""

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest
import torch

from gradtts.losses import (DeltaSchedule, L2Loss, PseudoHuberLoss, ScheduledPseudoHuberLoss, build_loss,
                            loss_from_config, pseudo_huber, vp_noise_to_signal)
from gradtts.report.plots import plot_delta_schedules


def _ref_huber(a, d):
    # The textbook form, in 50-digit decimal arithmetic so that its cancellation does not matter.
    getcontext().prec = 50
    a, d = Decimal(repr(float(a))), Decimal(repr(float(d)))
    return float(2 * d * ((a * a + d * d).sqrt() - d))


def _ref_delta(name, t, dmin, bmin=0.05, bmax=20.0):
    if name == "exponential":
        return dmin ** t
    if name == "backwards":
        return dmin ** (1.0 - t)
    if name == "constant":
        return dmin
    integral = bmin * t + 0.5 * (bmax - bmin) * t * t
    alpha = math.exp(-0.5 * integral)
    sigma = math.sqrt(1.0 - math.exp(-integral))
    r = sigma / alpha
    return (1.0 - dmin) / (1.0 + r) ** 2 + dmin


@pytest.mark.parametrize("delta", [0.001, 0.01, 0.1, 1.0, 7.0])
def test_pseudo_huber_matches_formula(delta):
    a = np.array([-30.0, -2.5, -0.3, -1e-3, 0.0, 1e-4, 0.05, 0.7, 3.0, 100.0])
    got = pseudo_huber(torch.tensor(a, dtype=torch.float64), delta).numpy()
    want = np.array([_ref_huber(x, delta) for x in a])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
    # float32 stays accurate too (the stable form), relative to the value itself.
    got32 = pseudo_huber(torch.tensor(a, dtype=torch.float32), delta).numpy()
    np.testing.assert_allclose(got32, want, rtol=2e-6, atol=1e-30)


def test_limits_l2_for_large_delta_and_linear_growth_for_large_residual():
    a = torch.linspace(-3, 3, 61, dtype=torch.float64)
    # delta -> infinity: rho -> a^2 (relative error ~ a^2 / (4 delta^2)).
    for d, tol in [(1e2, 3e-4), (1e4, 3e-8)]:
        np.testing.assert_allclose(pseudo_huber(a, d).numpy(), (a ** 2).numpy(), rtol=tol, atol=1e-12)
    # |a| >> delta: rho ~ 2 delta |a| - 2 delta^2, so rho / (2 delta |a|) -> 1.
    d = 0.01
    big = torch.tensor([1e2, 1e3, 1e4], dtype=torch.float64)
    ratio = pseudo_huber(big, d) / (2 * d * big)
    np.testing.assert_allclose(ratio.numpy(), [1 - d / 1e2, 1 - d / 1e3, 1 - d / 1e4], rtol=1e-6)
    # |a| << delta: rho ~ a^2.
    np.testing.assert_allclose(pseudo_huber(torch.tensor([1e-4]), 1.0).item(), 1e-8, rtol=1e-6)


@pytest.mark.parametrize("name", ["exponential", "snr", "constant", "backwards"])
@pytest.mark.parametrize("dmin", [0.1, 0.01, 0.001])
def test_schedules_match_formulas(name, dmin):
    ts = [1e-5, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 1 - 1e-5, 1.0]
    sched = DeltaSchedule(name, dmin, vp_noise_to_signal(0.05, 20.0))
    got = sched(torch.tensor(ts, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, [_ref_delta(name, t, dmin) for t in ts], rtol=1e-10)


def test_schedule_endpoints():
    t = torch.tensor([0.0, 1.0])
    assert DeltaSchedule("exponential", 0.01)(t).tolist() == pytest.approx([1.0, 0.01])
    assert DeltaSchedule("backwards", 0.01)(t).tolist() == pytest.approx([0.01, 1.0])
    snr = DeltaSchedule("snr", 0.01, vp_noise_to_signal(0.05, 20.0))(t)
    assert snr[0].item() == pytest.approx(1.0)
    # At t = 1 the noise-to-signal ratio is sqrt(e^10.025 - 1) ~ 150, so delta is just above c.
    r1 = math.sqrt(math.expm1(0.05 + 0.5 * 19.95))
    assert snr[1].item() == pytest.approx(0.99 / (1 + r1) ** 2 + 0.01, rel=1e-5)


@pytest.mark.parametrize("loss", [L2Loss(), PseudoHuberLoss(0.01),
                                  *(build_loss("scheduled_huber", delta_min=0.001, schedule=s)
                                    for s in ("exponential", "snr", "constant", "backwards"))])
def test_gradients_finite_at_zero_and_match_formula(loss):
    a = torch.tensor([[[0.0, 0.0, 1e-7]], [[0.0, -0.5, 2.0]]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.3, 0.999], dtype=torch.float64)
    rho = loss(a, t)
    assert rho.shape == a.shape
    rho.sum().backward()
    assert torch.isfinite(a.grad).all()
    assert a.grad[0, 0, 0].item() == 0.0 and a.grad[1, 0, 0].item() == 0.0
    # Derivative of 2 d (sqrt(a^2 + d^2) - d) is 2 d a / sqrt(a^2 + d^2) (or 2a for L2).
    d = loss.delta(t)
    x = a.detach()
    if d is None:
        want = 2 * x
    else:
        d = d.double().reshape(2, 1, 1)
        want = 2 * d * x / torch.sqrt(x * x + d * d)
    torch.testing.assert_close(a.grad, want, rtol=1e-9, atol=1e-12)


def test_scheduled_loss_uses_each_samples_delta():
    loss = build_loss("scheduled_huber", delta_min=0.01, schedule="exponential")
    a = torch.full((3, 2, 4), 0.5, dtype=torch.float64)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    rho = loss(a, t)
    for i, tt in enumerate(t.tolist()):
        assert torch.allclose(rho[i], torch.full((2, 4), _ref_huber(0.5, 0.01 ** tt), dtype=torch.float64))


def test_build_loss_from_config_and_errors():
    assert isinstance(loss_from_config({"name": "l2"}), L2Loss)
    h = loss_from_config({"name": "huber", "delta": 0.2})
    assert isinstance(h, PseudoHuberLoss) and h.delta(torch.tensor([0.5])).item() == pytest.approx(0.2)
    s = loss_from_config({"name": "scheduled_huber", "delta_min": 0.01, "schedule": "snr",
                          "beta_min": None, "beta_max": None}, beta_min=0.1, beta_max=10.0)
    assert isinstance(s, ScheduledPseudoHuberLoss)
    assert s.delta(torch.tensor([0.4])).item() == pytest.approx(_ref_delta("snr", 0.4, 0.01, 0.1, 10.0), rel=1e-6)
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        build_loss("l1")
    with pytest.raises(ValueError, match="unknown delta schedule 'cosine'"):
        build_loss("scheduled_huber", schedule="cosine")
    with pytest.raises(ValueError, match="delta_min must be > 0"):
        build_loss("scheduled_huber", delta_min=0.0)
    with pytest.raises(ValueError, match="needs noise_to_signal"):
        DeltaSchedule("snr", 0.1)


def test_loss_works_as_gradtts_score_loss_hook():
    """Inside the model hook the L2 object reproduces the official loss exactly."""
    from gradtts.model import GradTTS, OFFICIAL_CONFIG

    cfg = dict(OFFICIAL_CONFIG, n_enc_channels=16, filter_channels=32, filter_channels_dp=16, n_enc_layers=1,
               dec_dim=8, enc_dropout=0.0)
    model = GradTTS(**cfg)
    y = torch.randn(2, 80, 16)
    mask = torch.ones(2, 1, 16)
    mask[1, :, 12:] = 0
    mu = torch.randn(2, 80, 16)
    t = torch.tensor([0.2, 0.7])
    torch.manual_seed(1)
    ref, _ = model.decoder.loss_t(y, mask, mu, t)
    torch.manual_seed(1)
    ours, _ = model.decoder.loss_t(y, mask, mu, t, score_loss=L2Loss())
    assert torch.allclose(ref, ours, rtol=1e-6)
    torch.manual_seed(1)
    hub, _ = model.decoder.loss_t(y, mask, mu, t, score_loss=PseudoHuberLoss(1e4))
    assert hub.item() == pytest.approx(ref.item(), rel=1e-5)


def test_plot_delta_schedules(tmp_path):
    # The figure lives in the report layer; it draws the schedules of this module.
    out = tmp_path / "delta.png"
    plot_delta_schedules(out, delta_mins=(0.1, 0.01))
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # One 3.2 x 3.0 inch panel per schedule (all four by default) at 120 dpi: width and height from the IHDR.
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (4 * 384, 360)
    plot_delta_schedules(out, schedules=("snr",))
    assert int.from_bytes(out.read_bytes()[16:20], "big") == 384
