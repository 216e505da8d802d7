"""Score-loss family: values against the formulas written out independently, limits, gradients, configs."""

import math
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from gradtts.losses import (SCHEDULE_NAMES, SCHEDULES, CauchyLoss, DeltaSchedule, L2Loss, LossConfig,
                            PseudoHuberLoss, ScheduledPseudoHuberLoss, TukeyLoss, build_loss, cauchy,
                            loss_from_config, pseudo_huber, tukey_biweight, vp_noise_to_signal)
from gradtts.report.plots import plot_delta_schedules
from gradtts.train.identity import loss_identity, loss_label, loss_tag

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _ref_huber(a, d):
    # The textbook form, in 50-digit decimal arithmetic so that its cancellation does not matter.
    getcontext().prec = 50
    a, d = Decimal(repr(float(a))), Decimal(repr(float(d)))
    return float(2 * d * ((a * a + d * d).sqrt() - d))


def _ref_cauchy(a, d):
    getcontext().prec = 50
    a, d = Decimal(repr(float(a))), Decimal(repr(float(d)))
    return float(d * d * (1 + a * a / (d * d)).ln())


def _ref_tukey(a, d):
    # The textbook biweight c^2/6 (1 - (1 - (a/c)^2)^3), times 2 so that rho ~ a^2 near 0.
    getcontext().prec = 50
    a, d = Decimal(repr(float(a))), Decimal(repr(float(d)))
    if abs(a) >= d:
        return float(d * d / 3)
    return float(d * d / 3 * (1 - (1 - (a / d) ** 2) ** 3))


def _ref_delta(name, t, dmin, bmin=0.05, bmax=20.0, t_step=0.5):
    if name == "exponential":
        return dmin ** t
    if name in ("backwards", "increasing"):
        return dmin ** (1.0 - t)
    if name == "linear":
        return 1.0 + (dmin - 1.0) * t
    if name == "step":
        return 1.0 if t < t_step else dmin
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


@pytest.mark.parametrize("name", SCHEDULES)
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


def test_schedule_names_and_alias():
    assert SCHEDULE_NAMES == ("exponential", "linear", "step", "constant", "increasing", "snr")
    assert SCHEDULES == (*SCHEDULE_NAMES, "backwards")


# δ(t) at t = 0, 0.5, 1 for δ_min = 0.01, worked out by hand (snr: r_0.5 = sqrt(e^2.51875 - 1)).
_R_HALF = math.sqrt(math.expm1(0.05 * 0.5 + 0.5 * 19.95 * 0.25))
_AT_0_HALF_1 = {
    "exponential": (1.0, 0.1, 0.01),
    "linear": (1.0, 0.505, 0.01),
    "step": (1.0, 0.01, 0.01),   # t = t_step already takes δ_min
    "constant": (0.01, 0.01, 0.01),
    "increasing": (0.01, 0.1, 1.0),
    "backwards": (0.01, 0.1, 1.0),
    "snr": (1.0, 0.99 / (1 + _R_HALF) ** 2 + 0.01, 0.99 / (1 + math.sqrt(math.expm1(10.025))) ** 2 + 0.01),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_values_at_0_half_1_and_monotone(name):
    sched = DeltaSchedule(name, 0.01, vp_noise_to_signal(0.05, 20.0))
    got = sched(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)).tolist()
    assert got == pytest.approx(_AT_0_HALF_1[name], rel=1e-12)
    assert abs(got[1] - 0.06172) < 1e-4 if name == "snr" else True
    d = np.diff(sched(torch.linspace(0, 1, 1001, dtype=torch.float64)).numpy())
    if name in ("increasing", "backwards"):
        assert (d >= 0).all() and d.sum() == pytest.approx(0.99)
    elif name == "constant":
        assert (d == 0).all()
    else:
        assert (d <= 0).all() and d.sum() == pytest.approx(-0.99, rel=1e-3)


@pytest.mark.parametrize("t_step", [0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_schedule_jumps_at_t_step(t_step, dtype):
    sched = DeltaSchedule("step", 0.05, t_step=t_step)
    ts = torch.tensor([0.0, t_step], dtype=dtype)
    below = torch.nextafter(ts[1:], torch.zeros(1, dtype=dtype))
    got = sched(torch.cat([ts, below, torch.ones(1, dtype=dtype)]))
    assert got.dtype == dtype
    assert got.tolist() == pytest.approx([1.0, 0.05, 1.0, 0.05])
    # The jump is the only change: the schedule is 1 before and delta_min from t_step on.
    dense = sched(torch.linspace(0, 1, 2001, dtype=torch.float64))
    assert int((dense.diff() != 0).sum()) == 1


def test_backwards_is_an_exact_alias_of_increasing():
    t = torch.rand(64, dtype=torch.float64)
    inc, bwd = DeltaSchedule("increasing", 0.02), DeltaSchedule("backwards", 0.02)
    assert inc.name == bwd.name == "increasing" and repr(inc) == repr(bwd)
    assert torch.equal(inc(t), bwd(t))
    a = torch.randn(64, 3, dtype=torch.float64)
    for loss in ("scheduled_huber", "cauchy", "tukey"):
        assert torch.equal(build_loss(loss, delta_min=0.02, schedule="backwards")(a, t),
                           build_loss(loss, delta_min=0.02, schedule="increasing")(a, t))
        cfgs = [{"name": loss, "delta_min": 0.02, "schedule": s, "step_t": 0.5} for s in ("backwards", "increasing")]
        assert loss_identity(cfgs[0]) == loss_identity(cfgs[1])
        assert loss_tag(cfgs[0]) == loss_tag(cfgs[1]) == f"{loss}_backwards_dmin0.02"
        assert loss_label(cfgs[0]) == loss_label(cfgs[1]) == f"{loss}(increasing, δ_min=0.02)"
    ada = [{"name": "adaptive_huber", "quantile": 0.5, "schedule": s} for s in ("backwards", "increasing")]
    assert loss_tag(ada[0]) == loss_tag(ada[1]) == "adaptive_huber_backwards_q0.5"


# ---- Cauchy and Tukey --------------------------------------------------------------------------------------

_A = [-30.0, -2.5, -0.3, -1e-3, 0.0, 1e-4, 0.05, 0.7, 1.0, 3.0, 100.0]


@pytest.mark.parametrize("delta", [0.001, 0.01, 0.1, 1.0, 7.0])
@pytest.mark.parametrize("fn,ref", [(cauchy, _ref_cauchy), (tukey_biweight, _ref_tukey)])
def test_cauchy_and_tukey_match_formulas(fn, ref, delta):
    a = np.array(_A + [delta, -delta, 0.999 * delta, 1.001 * delta])
    want = np.array([ref(x, delta) for x in a])
    got = fn(torch.tensor(a, dtype=torch.float64), delta)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-300)
    got32 = fn(torch.tensor(a, dtype=torch.float32), delta)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), want, rtol=3e-6, atol=1e-30)


@pytest.mark.parametrize("fn", [pseudo_huber, cauchy, tukey_biweight])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_loss_is_a_squared_near_zero(fn, dtype):
    # rho / a^2 -> 1 as a -> 0: 1 - u^2/4 (pseudo-Huber), 1 - u^2/2 (Cauchy), 1 - u^2 (Tukey), u = a / delta,
    # with the next terms below u^4 / 3.
    coef = {pseudo_huber: 0.25, cauchy: 0.5, tukey_biweight: 1.0}[fn]
    eps = 3e-6 if dtype == torch.float32 else 1e-12
    for delta in (0.01, 1.0, 7.0):
        u = torch.tensor([1e-1, 3e-2, 1e-2, 1e-3, 1e-5], dtype=torch.float64)
        a = (u * delta).to(dtype)
        u = a.double() / delta  # the u actually evaluated
        ratio = fn(a, delta).double() / a.double() ** 2
        gap = (ratio - (1 - coef * u ** 2)).abs()
        assert (gap <= u ** 4 / 3 + eps).all(), (delta, gap)
        assert ((ratio - 1).abs() <= coef * u ** 2 + u ** 4 / 3 + eps).all()


def test_float32_keeps_tiny_residuals_where_the_textbook_forms_lose_them():
    a = torch.tensor([1e-6, 3e-5, 1e-4, 2e-3], dtype=torch.float32)
    for delta in (1.0, 7.0):
        want = np.array([_ref_cauchy(x, delta) for x in a.double().tolist()])
        np.testing.assert_allclose(cauchy(a, delta).numpy(), want, rtol=2e-6)
        want = np.array([_ref_tukey(x, delta) for x in a.double().tolist()])
        np.testing.assert_allclose(tukey_biweight(a, delta).numpy(), want, rtol=2e-6)
        # The textbook forms in float32 round 1 + a^2/delta^2 and (1 - u^2)^3 to 1 and give 0 here.
        d = torch.tensor(delta, dtype=torch.float32)
        assert (d * d * torch.log(1 + a[:2] ** 2 / d ** 2) == 0).all()
        assert (d * d / 3 * (1 - (1 - (a[:2] / d) ** 2) ** 3) == 0).all()


def test_half_precision_residuals_are_evaluated_in_float32():
    # (a / delta)^2 = 1e6 overflows float16; the losses promote instead of returning inf.
    a = torch.tensor([1.0, -0.5, 1e-3], dtype=torch.float16)
    for fn, ref in ((cauchy, _ref_cauchy), (tukey_biweight, _ref_tukey)):
        got = fn(a, 1e-3)
        assert got.dtype == torch.float32 and torch.isfinite(got).all()
        np.testing.assert_allclose(got.numpy(), [ref(x, 1e-3) for x in a.double().tolist()], rtol=1e-5)
    loss = build_loss("cauchy", delta_min=1e-3, schedule="exponential")
    t = torch.tensor([0.999, 0.5], dtype=torch.bfloat16)
    res = torch.full((2, 4), 0.25, dtype=torch.bfloat16)
    got = loss(res, t)
    # delta(t) is taken in float32 from the bf16 time (0.99609375), not rounded to bf16 itself.
    want = [_ref_cauchy(0.25, 1e-3 ** float(tt)) for tt in t.float().tolist()]
    np.testing.assert_allclose(got[:, 0].numpy(), want, rtol=1e-6)


def test_cauchy_grows_logarithmically():
    # rho - 2 delta^2 log(|a| / delta) = delta^2 log(1 + delta^2 / a^2) ~ delta^4 / a^2.
    for delta in (0.01, 0.1, 1.0):
        big = torch.tensor([1e2, 1e3, 1e4], dtype=torch.float64) * delta
        rho = cauchy(big, delta)
        lead = 2 * delta ** 2 * torch.log(big / delta)
        np.testing.assert_allclose((rho - lead).numpy(), (delta ** 4 / big ** 2).numpy(), rtol=1e-4)
        assert ((rho / lead - 1).abs() < 1e-4).all()
        # Far below the pseudo-Huber value at the same delta, which grows linearly.
        assert (rho < pseudo_huber(big, delta) / 10).all()


def test_tukey_is_flat_beyond_delta():
    for delta in (0.01, 0.3, 2.0):
        a = torch.tensor([1.0, 1.0 + 1e-9, 1.5, 10.0, 1e6, -1.0, -3.0], dtype=torch.float64) * delta
        a.requires_grad_(True)
        rho = tukey_biweight(a, delta)
        np.testing.assert_allclose(rho.detach().numpy(), delta ** 2 / 3, rtol=1e-12)
        rho.sum().backward()
        # Exactly 0 beyond delta; at |a| = delta psi is 0 too, up to rounding of the polynomial's terms.
        edge = a.detach().abs() == delta
        assert (a.grad[~edge] == 0).all() and (a.grad[edge].abs() < 1e-15 * delta).all() and edge.sum() == 2
        # Continuous at |a| = delta from inside, with a vanishing slope.
        inside = torch.tensor([1 - 1e-6], dtype=torch.float64) * delta
        assert tukey_biweight(inside, delta).item() == pytest.approx(delta ** 2 / 3, rel=1e-10)


def _psi(name, x, d):
    """The analytic derivative rho'(a) of each loss."""
    if d is None:
        return 2 * x
    u2 = (x / d) ** 2
    if name == "cauchy":
        return 2 * x / (1 + u2)
    if name == "tukey":
        return torch.where(u2 <= 1, 2 * x * (1 - u2) ** 2, torch.zeros_like(x))
    return 2 * d * x / torch.sqrt(x * x + d * d)


@pytest.mark.parametrize("loss", [L2Loss(), PseudoHuberLoss(0.01),
                                  *(build_loss(name, delta_min=dmin, schedule=s)
                                    for name, dmin in (("scheduled_huber", 0.001), ("cauchy", 0.001), ("tukey", 0.3))
                                    for s in SCHEDULE_NAMES)])
def test_gradients_finite_at_zero_and_match_formula(loss):
    a = torch.tensor([[[0.0, 0.0, 1e-7, 0.2]], [[0.0, -0.5, 2.0, 0.001]]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.3, 0.999], dtype=torch.float64)
    rho = loss(a, t)
    assert rho.shape == a.shape
    rho.sum().backward()
    assert torch.isfinite(a.grad).all()
    assert a.grad[0, 0, 0].item() == 0.0 and a.grad[1, 0, 0].item() == 0.0
    # psi(a) = rho'(a): 2 d a / sqrt(a^2 + d^2) (pseudo-Huber), 2a / (1 + a^2/d^2) (Cauchy),
    # 2a (1 - a^2/d^2)^2 inside delta and 0 beyond (Tukey), 2a (L2).
    d = loss.delta(t)
    want = _psi(loss.name, a.detach(), None if d is None else d.double().reshape(2, 1, 1))
    torch.testing.assert_close(a.grad, want, rtol=1e-9, atol=1e-12)
    if loss.name == "tukey":
        # The test covers both branches: some residuals inside delta(t), some beyond.
        inside = (a.detach().abs() < d.reshape(2, 1, 1)) & (a.detach() != 0)
        assert inside.any() and (~inside & (a.detach() != 0)).any()


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


@pytest.mark.parametrize("name,cls", [("cauchy", CauchyLoss), ("tukey", TukeyLoss),
                                      ("scheduled_huber", ScheduledPseudoHuberLoss)])
def test_scheduled_losses_from_config(name, cls):
    t = torch.tensor([0.0, 0.2, 0.25, 0.9, 1.0], dtype=torch.float64)
    for schedule in SCHEDULES:
        cfg = OmegaConf.structured(LossConfig(name=name, schedule=schedule, delta_min=0.02, step_t=0.25))
        loss = loss_from_config(cfg, beta_min=0.05, beta_max=20.0)
        assert type(loss) is cls and loss.name == name
        np.testing.assert_allclose(loss.delta(t).numpy(),
                                   [_ref_delta(schedule, x, 0.02, t_step=0.25) for x in t.tolist()], rtol=1e-10)
    # schedule=constant: a constant-delta loss, delta = delta_min at every t.
    loss = build_loss(name, delta_min=0.5, schedule="constant")
    a = torch.tensor([[0.1, 2.0], [0.1, 2.0]], dtype=torch.float64)
    rho = loss(a, torch.tensor([0.1, 0.8], dtype=torch.float64))
    assert torch.equal(rho[0], rho[1])
    ref = {"cauchy": _ref_cauchy, "tukey": _ref_tukey, "scheduled_huber": _ref_huber}[name]
    np.testing.assert_allclose(rho[0].numpy(), [ref(0.1, 0.5), ref(2.0, 0.5)], rtol=1e-12)
    assert repr(build_loss(name, schedule="step", step_t=0.25)) == f"{cls.__name__}(DeltaSchedule('step', " \
        "delta_min=0.1, t_step=0.25))"


def test_scheduled_loss_config_defaults():
    cfg = LossConfig()
    assert (cfg.delta_min, cfg.schedule, cfg.step_t) == (0.1, "exponential", 0.5)
    loss = loss_from_config({"name": "tukey"})
    assert isinstance(loss, TukeyLoss) and loss.schedule.name == "exponential" and loss.schedule.delta_min == 0.1


def test_bad_schedule_options_raise_clear_errors():
    with pytest.raises(ValueError, match=r"unknown delta schedule 'cosine' \(option loss.schedule\); choose one of "
                                         r"exponential, linear, step, constant, increasing, snr \(aliases: backwards"):
        loss_from_config({"name": "cauchy", "schedule": "cosine"})
    for bad in (0.0, 1.0, -0.2, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"'step' schedule's switch time \(option loss.step_t\) must lie "
                                             r"strictly between 0 and 1"):
            loss_from_config({"name": "tukey", "schedule": "step", "step_t": bad})
    # step_t is read by the step schedule only.
    assert loss_from_config({"name": "tukey", "schedule": "linear", "step_t": 1.5}).schedule.name == "linear"
    with pytest.raises(ValueError, match="delta_min must be > 0"):
        build_loss("cauchy", delta_min=-1.0)


# ---- identities, tags and labels ---------------------------------------------------------------------------

def test_existing_identities_tags_and_labels_are_unchanged():
    full = OmegaConf.to_container(OmegaConf.structured(LossConfig()))
    cases = [
        ({"name": "l2"}, {"name": "l2"}, "l2", "l2"),
        ({"name": "huber", "delta": 0.1}, {"name": "huber", "delta": 0.1}, "huber_d0.1", "huber(δ=0.1)"),
        ({"name": "scheduled_huber", "delta_min": 0.1, "schedule": "exponential"},
         {"name": "scheduled_huber", "delta_min": 0.1, "schedule": "exponential"},
         "scheduled_huber_exponential_dmin0.1", "scheduled_huber(exponential, δ_min=0.1)"),
        ({"name": "scheduled_huber", "delta_min": 0.01, "schedule": "snr"},
         {"name": "scheduled_huber", "delta_min": 0.01, "schedule": "snr", "beta_min": None, "beta_max": None},
         "scheduled_huber_snr_dmin0.01", "scheduled_huber(snr, δ_min=0.01)"),
        ({"name": "scheduled_huber", "delta_min": 0.1, "schedule": "backwards"},
         {"name": "scheduled_huber", "delta_min": 0.1, "schedule": "backwards"},
         "scheduled_huber_backwards_dmin0.1", "scheduled_huber(increasing, δ_min=0.1)"),
        ({"name": "adaptive_huber", "quantile": 0.5, "schedule": "exponential"},
         {"name": "adaptive_huber", "quantile": 0.5, "schedule": "exponential"},
         "adaptive_huber_exponential_q0.5", "adaptive_huber(exponential, q=0.5)"),
    ]
    for fields, ident, tag, label in cases:
        cfg = {**full, **fields}  # a whole config, step_t included, as the trainer passes it
        assert loss_identity(cfg) == ident
        assert list(loss_identity(cfg)) == list(ident)  # and in the same order
        assert (loss_tag(cfg), loss_label(cfg)) == (tag, label)


def test_new_loss_and_schedule_tags():
    full = OmegaConf.to_container(OmegaConf.structured(LossConfig()))
    cases = [
        ({"name": "cauchy"}, "cauchy_exponential_dmin0.1", "cauchy(exponential, δ_min=0.1)"),
        ({"name": "tukey", "delta_min": 0.5, "schedule": "constant"}, "tukey_constant_dmin0.5",
         "tukey(constant, δ_min=0.5)"),
        ({"name": "scheduled_huber", "delta_min": 0.01, "schedule": "linear"}, "scheduled_huber_linear_dmin0.01",
         "scheduled_huber(linear, δ_min=0.01)"),
        ({"name": "scheduled_huber", "schedule": "step"}, "scheduled_huber_step0.5_dmin0.1",
         "scheduled_huber(step at t=0.5, δ_min=0.1)"),
        ({"name": "cauchy", "schedule": "step", "step_t": 0.25}, "cauchy_step0.25_dmin0.1",
         "cauchy(step at t=0.25, δ_min=0.1)"),
        ({"name": "tukey", "schedule": "increasing", "delta_min": 0.01}, "tukey_backwards_dmin0.01",
         "tukey(increasing, δ_min=0.01)"),
        ({"name": "adaptive_huber", "schedule": "step", "step_t": 0.7}, "adaptive_huber_step0.7_q0.5",
         "adaptive_huber(step at t=0.7, q=0.5)"),
        ({"name": "reweighted_l2", "delta_min": 0.01}, "reweighted_l2_exponential_dmin0.01",
         "reweighted_l2(exponential, δ_min=0.01)"),
        ({"name": "reweighted_l2", "schedule": "step", "step_t": 0.3}, "reweighted_l2_step0.3_dmin0.1",
         "reweighted_l2(step at t=0.3, δ_min=0.1)"),
        ({"name": "reweighted_l2", "schedule": "increasing"}, "reweighted_l2_backwards_dmin0.1",
         "reweighted_l2(increasing, δ_min=0.1)"),
    ]
    for fields, tag, label in cases:
        assert (loss_tag({**full, **fields}), loss_label({**full, **fields})) == (tag, label)
    assert loss_identity({**full, "name": "cauchy", "schedule": "step", "step_t": 0.25}) == {
        "name": "cauchy", "delta_min": 0.1, "schedule": "step", "step_t": 0.25}
    # step_t splits step arms only; cauchy and tukey never read delta or quantile.
    base = {**full, "name": "tukey"}
    assert loss_identity({**base, "step_t": 0.3, "delta": 9.0, "quantile": 0.9}) == loss_identity(base)
    assert loss_identity({**base, "schedule": "step", "step_t": 0.3}) != loss_identity({**base, "schedule": "step"})
    tags = {loss_tag({**full, "name": n, "schedule": s}) for n in ("scheduled_huber", "cauchy", "tukey")
            for s in SCHEDULE_NAMES}
    assert len(tags) == 18


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
    # Cauchy and Tukey with a huge constant delta are L2 too (relative gaps ~ a^2 / delta^2).
    for name in ("cauchy", "tukey"):
        torch.manual_seed(1)
        got, _ = model.decoder.loss_t(y, mask, mu, t, score_loss=build_loss(name, delta_min=1e4, schedule="constant"))
        assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    # With delta_min**t small the robust losses are far below L2 (the residuals are ~1).
    torch.manual_seed(1)
    small, _ = model.decoder.loss_t(y, mask, mu, t, score_loss=build_loss("tukey", delta_min=0.01))
    assert small.item() < 0.2 * ref.item()


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_plot_delta_schedules(tmp_path):
    # The figure lives in the report layer; it draws the schedules of this module, all in each panel.
    out = tmp_path / "delta.png"
    plot_delta_schedules(out, delta_mins=(0.1, 0.01))
    png = out.read_bytes()
    assert len(png) > 5000
    # One 4.0 x 3.2 inch panel per delta_min at 100 dpi: width and height from the IHDR.
    assert _png_size(png) == (2 * 400, 320)
    plot_delta_schedules(out, delta_mins=(0.01,), schedules=("snr", "backwards"), step_t=0.2)
    assert _png_size(out.read_bytes()) == (400, 320)
    with pytest.raises(ValueError, match="unknown delta schedule 'cosine'"):
        plot_delta_schedules(out, schedules=("cosine",))


def test_committed_schedule_figure_is_small_and_current():
    png = (DOCS / "schedules.png").read_bytes()
    assert len(png) < 150_000
    # docs/schedules.md regenerates it with the defaults: two delta_min panels.
    assert _png_size(png) == (800, 320)
    text = (DOCS / "schedules.md").read_text()
    assert "plot_delta_schedules('docs/schedules.png')" in text
    for name in SCHEDULES:
        assert f"`{name}`" in text
