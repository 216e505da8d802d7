"""Score-loss family of "scheduled pseudo-Huber" diffusion training (Khrapov et al. 2024), with other robust losses.

Generic: every function works on a residual tensor ``a`` of any shape ``[B, ...]`` and per-sample
diffusion times ``t`` of shape ``[B]`` (t = 0 clean, t = 1 pure noise); nothing here knows about
Grad-TTS. A loss object is called as ``loss(residual, t) -> rho`` (element-wise, same shape as the
residual); the caller reduces it over its mask (Grad-TTS: sum(rho) / (sum(mask) * n_feats)).

- ``l2``:               rho(a) = a**2
- ``huber``:            rho(a) = 2 delta (sqrt(a**2 + delta**2) - delta)          (constant delta)
- ``scheduled_huber``:  rho_t(a) = 2 delta(t) (sqrt(a**2 + delta(t)**2) - delta(t))
- ``adaptive_huber``:   scheduled_huber whose delta_min is not set by hand but measured: the ``quantile`` of the
                        starting model's |residual| on the training set, fixed before training (the caller
                        measures it and passes it as ``delta_min``)
- ``cauchy``:           rho_t(a) = delta(t)**2 log(1 + a**2 / delta(t)**2)
- ``tukey``:            rho_t(a) = delta(t)**2 / 3 (1 - (1 - (a / delta(t))**2)**3) for |a| <= delta(t), else
                        delta(t)**2 / 3 (Tukey's biweight, scaled so that rho ~ a**2 for |a| << delta)
- ``reweighted_l2``:    rho_t(a) = w(t) a**2, the control of scheduled_huber's reweighting of t: w(t) is the ratio
                        E|rho'_delta(t)(a)| / E|2 a| of the scheduled pseudo-Huber loss's mean gradient magnitude to
                        L2's, measured on the starting model's residuals before training (the caller measures it
                        on a grid of t and passes the table; w is linear in t between grid points)

Every loss but l2 and reweighted_l2 behaves like a**2 for |a| << delta, so delta sets where "small" ends and the losses
differ only in how they treat large residuals: pseudo-Huber grows linearly, Cauchy logarithmically,
Tukey not at all (its gradient is zero beyond delta: such residuals are ignored).

Schedules of delta(t) (:data:`SCHEDULES`) with delta_min the value reached at t = 1 (at t = 0 for increasing):
``exponential`` delta_min**t (the paper's), ``linear`` 1 - (1 - delta_min) t, ``step`` 1 for t < t_step and
delta_min from t_step on, ``constant`` delta_min, ``increasing`` delta_min**(1 - t) (the reverse of
exponential; ``backwards`` is its older name and an exact alias), ``snr`` (1 - c)/(1 + r_t)**2 + c with
c = delta_min and r_t the noise-to-signal ratio.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

#: delta(t) of each documented schedule, as a function of the :class:`DeltaSchedule` (its ``delta_min``,
#: ``t_step``, ``noise_to_signal``) and a float tensor of times. This table is the one registration point of a
#: schedule: its key is then accepted by ``loss.schedule`` (checked when the config is composed), enters run
#: identities and directory tags (``scheduled_huber_<name>_dmin<delta_min>``) and the schedule plot.
SCHEDULE_FUNCTIONS: dict[str, Callable[["DeltaSchedule", torch.Tensor], torch.Tensor]] = {
    "exponential": lambda s, t: torch.exp(t * math.log(s.delta_min)),
    "linear": lambda s, t: 1.0 - (1.0 - s.delta_min) * t,
    "step": lambda s, t: torch.where(t < s.t_step, torch.ones_like(t), torch.full_like(t, s.delta_min)),
    "constant": lambda s, t: torch.full_like(t, s.delta_min),
    "increasing": lambda s, t: torch.exp((1.0 - t) * math.log(s.delta_min)),
    "snr": lambda s, t: (1.0 - s.delta_min) / (1.0 + s.noise_to_signal(t)) ** 2 + s.delta_min,
}
#: The documented schedule names, one per curve (the plot and the docs go through these).
SCHEDULE_NAMES = tuple(SCHEDULE_FUNCTIONS)
#: Other accepted spellings -> the schedule they mean; ``backwards`` was the first name of ``increasing``.
SCHEDULE_ALIASES = {"backwards": "increasing"}
#: Every accepted schedule name (the documented ones, then the aliases).
SCHEDULES = SCHEDULE_NAMES + tuple(SCHEDULE_ALIASES)
#: Default diffusion time where the ``step`` schedule drops from 1 to delta_min.
STEP_T = 0.5

#: The loss whose per-t mean gradient magnitude ``reweighted_l2`` matches (with the config's schedule and delta_min).
REWEIGHT_MATCHES = "scheduled_huber"

#: ``noise_to_signal(t) -> r_t`` for the ``snr`` schedule.
NoiseToSignal = Callable[[torch.Tensor], torch.Tensor]


def l2(a: torch.Tensor) -> torch.Tensor:
    """Squared residual ``a**2``."""
    return a * a


def pseudo_huber(a: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """``2 delta (sqrt(a^2 + delta^2) - delta)``: ~a^2 for |a| << delta, ~2 delta |a| for |a| >> delta.

    Evaluated as ``2 delta a^2 / (sqrt(a^2 + delta^2) + delta)``, the same value without the
    cancellation that makes the textbook form lose every digit in float32 when delta >> |a|.
    ``delta`` broadcasts against ``a`` (a float or a tensor, e.g. ``[B, 1, 1]``).
    """
    delta = torch.as_tensor(delta, dtype=a.dtype, device=a.device)
    a2 = a * a
    return 2.0 * delta * a2 / (torch.sqrt(a2 + delta * delta) + delta)


def _working(a: torch.Tensor, delta: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """``a`` and ``delta`` in at least float32 (a half-precision a / delta overflows for |a| >> delta)."""
    dtype = torch.promote_types(a.dtype, torch.float32)
    if isinstance(delta, torch.Tensor):
        return a.to(dtype), delta.to(device=a.device, dtype=dtype)
    # A Python float goes straight to the working dtype (not through float32 on its way to float64).
    return a.to(dtype), torch.tensor(delta, dtype=dtype, device=a.device)


def cauchy(a: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """Cauchy (Lorentzian) loss ``delta^2 log(1 + a^2 / delta^2)``: ~a^2 for |a| << delta, ~2 delta^2 log(|a| / delta)
    for |a| >> delta; its gradient ``2 a / (1 + a^2 / delta^2)`` peaks at |a| = delta and decays as 2 delta^2 / a.

    Evaluated with ``log1p``, exact to rounding for |a| << delta, in at least float32 (the result has that
    dtype: a float16 residual is promoted). ``delta`` broadcasts against ``a``.
    """
    a, delta = _working(a, delta)
    u = a / delta
    return delta * delta * torch.log1p(u * u)


def tukey_biweight(a: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """Tukey's biweight ``delta^2 / 3 (1 - (1 - (a / delta)^2)^3)`` for |a| <= delta, ``delta^2 / 3`` beyond.

    The textbook ``c^2 / 6 (...)`` is multiplied by 2 (with c = delta) so that rho ~ a^2 for |a| << delta, like
    the other losses here; the gradient is ``2 a (1 - (a / delta)^2)^2`` inside and exactly 0 beyond delta.
    Evaluated as ``a^2 (1 - u^2 (1 - u^2 / 3))`` with u = a / delta, the same polynomial without the
    cancellation of ``1 - (1 - u^2)^3`` at small u, in at least float32 (the result has that dtype).
    ``delta`` broadcasts against ``a``.
    """
    a, delta = _working(a, delta)
    # Clamping a to [-delta, delta] gives the constant branch (and its zero gradient) without torch.where,
    # whose unused branch could put inf * 0 = NaN into the gradient.
    inside = torch.minimum(torch.maximum(a, -delta), delta)
    u2 = (inside / delta) ** 2
    return inside * inside * (1.0 - u2 * (1.0 - u2 / 3.0))


def vp_noise_to_signal(beta_min: float, beta_max: float) -> NoiseToSignal:
    """r_t = sigma_t / exp(-1/2 int_0^t beta) for a variance-preserving SDE with linear beta.

    int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / 2 and sigma_t^2 = 1 - exp(-int beta),
    so r_t = sqrt(exp(int beta) - 1).
    """
    def ratio(t: torch.Tensor) -> torch.Tensor:
        integral = beta_min * t + 0.5 * (beta_max - beta_min) * t * t
        return torch.sqrt(torch.expm1(integral))

    return ratio


def canonical_schedule(name: str) -> str:
    """The documented name of a schedule (``backwards`` -> ``increasing``); ValueError for an unknown one."""
    if name not in SCHEDULES:
        aliases = ", ".join(f"{k} = {v}" for k, v in SCHEDULE_ALIASES.items())
        raise ValueError(f"unknown delta schedule {name!r} (option loss.schedule); choose one of "
                         f"{', '.join(SCHEDULE_NAMES)} (aliases: {aliases})")
    return SCHEDULE_ALIASES.get(name, name)


class DeltaSchedule:
    """delta(t) for one of :data:`SCHEDULES`; ``noise_to_signal`` is needed by ``snr`` only, ``t_step`` by ``step``.

    ``name`` holds the documented name (an alias is resolved on construction, so both spellings give the
    same object).
    """

    def __init__(self, name: str, delta_min: float, noise_to_signal: NoiseToSignal | None = None,
                 t_step: float = STEP_T):
        name = canonical_schedule(name)
        if not delta_min > 0:
            raise ValueError(f"delta_min must be > 0, got {delta_min}")
        if name == "snr" and noise_to_signal is None:
            raise ValueError("the 'snr' schedule needs noise_to_signal(t), e.g. vp_noise_to_signal(beta_min, beta_max)")
        if name == "step" and not 0 < t_step < 1:
            raise ValueError(f"the 'step' schedule's switch time (option loss.step_t) must lie strictly between 0 "
                             f"and 1, got {t_step}; for delta_min at every t use loss.schedule=constant")
        self.name = name
        self.delta_min = float(delta_min)
        self.noise_to_signal = noise_to_signal
        self.t_step = float(t_step)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        if not t.is_floating_point():
            t = t.float()
        return SCHEDULE_FUNCTIONS[self.name](self, t)

    def __repr__(self) -> str:
        step = f", t_step={self.t_step}" if self.name == "step" else ""
        return f"DeltaSchedule({self.name!r}, delta_min={self.delta_min}{step})"


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape ``[B]`` to ``[B, 1, ..., 1]`` so it broadcasts against ``like``."""
    return values.reshape(values.shape[0], *([1] * (like.dim() - 1))).to(like.dtype)


class ScoreLoss(abc.ABC):
    """Element-wise score loss ``(residual, t) -> rho``; ``delta(t)`` is None for L2."""

    name = "base"

    @abc.abstractmethod
    def __call__(self, residual: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """rho, the same shape as ``residual``; ``t`` holds one diffusion time per sample."""

    def delta(self, t: torch.Tensor) -> torch.Tensor | None:
        return None


class L2Loss(ScoreLoss):
    name = "l2"

    def __call__(self, residual: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return l2(residual)

    def __repr__(self) -> str:
        return "L2Loss()"


class PseudoHuberLoss(ScoreLoss):
    """Constant-delta pseudo-Huber."""

    name = "huber"

    def __init__(self, delta: float):
        if not delta > 0:
            raise ValueError(f"huber delta must be > 0, got {delta}")
        self._delta = float(delta)

    def __call__(self, residual: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return pseudo_huber(residual, self._delta)

    def delta(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        return torch.full_like(t if t.is_floating_point() else t.float(), self._delta)

    def __repr__(self) -> str:
        return f"PseudoHuberLoss(delta={self._delta})"


class ScheduledDeltaLoss(ScoreLoss):
    """A loss whose delta follows a :class:`DeltaSchedule` over diffusion time."""

    def __init__(self, schedule: DeltaSchedule):
        self.schedule = schedule

    def _delta_for(self, residual: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # delta(t) is computed in float32 even under autocast: delta_min**t is tiny near t = 1.
        delta = self.schedule(t.to(torch.promote_types(t.dtype, torch.float32)))
        return delta.reshape(delta.shape[0], *([1] * (residual.dim() - 1)))

    def delta(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        return self.schedule(t if t.is_floating_point() else t.float())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.schedule!r})"


class ScheduledPseudoHuberLoss(ScheduledDeltaLoss):
    """Pseudo-Huber whose delta follows a schedule over diffusion time."""

    name = "scheduled_huber"

    def __call__(self, residual: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # delta(t) is computed in float32 even under autocast: delta_min**t is tiny near t = 1.
        delta = self.schedule(t.to(torch.promote_types(t.dtype, torch.float32)))
        return pseudo_huber(residual, _per_sample(delta, residual))


class CauchyLoss(ScheduledDeltaLoss):
    """:func:`cauchy` with delta(t) from a schedule (``constant`` for a constant delta); float32 or wider."""

    name = "cauchy"

    def __call__(self, residual: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return cauchy(residual, self._delta_for(residual, t))


class TukeyLoss(ScheduledDeltaLoss):
    """:func:`tukey_biweight` with delta(t) from a schedule (``constant`` for a constant delta); float32 or wider."""

    name = "tukey"

    def __call__(self, residual: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return tukey_biweight(residual, self._delta_for(residual, t))


class AdaptivePseudoHuberLoss(ScheduledPseudoHuberLoss):
    """Scheduled pseudo-Huber whose delta_min was measured from the data (see ``LossConfig.quantile``)."""

    name = "adaptive_huber"

    def __init__(self, schedule: DeltaSchedule, quantile: float):
        super().__init__(schedule)
        self.quantile = float(quantile)

    def __repr__(self) -> str:
        return f"AdaptivePseudoHuberLoss({self.schedule!r}, quantile={self.quantile})"


class ReweightedL2Loss(ScoreLoss):
    """``w(t) a^2`` with w a table over t, linear between its times and constant beyond the first and last.

    The table is the measured ratio of the ``matched`` loss's mean |gradient| to L2's at each time (see
    :func:`gradtts.train.probe.matched_weights`), so this loss weights each t as that loss does on average
    while treating every residual alike (no down-weighting of outliers). ``matched`` is the schedule the
    table was measured for (kept for the record only: the loss never reads delta).
    """

    name = "reweighted_l2"

    def __init__(self, t_values: Sequence[float], weights: Sequence[float], matched: DeltaSchedule | None = None):
        t_values, weights = [float(t) for t in t_values], [float(w) for w in weights]
        if not t_values or len(t_values) != len(weights):
            raise ValueError(f"reweighted_l2 needs one weight per time, got {len(t_values)} times and "
                             f"{len(weights)} weights")
        if any(b <= a for a, b in zip(t_values, t_values[1:])):
            raise ValueError(f"reweighted_l2 times must increase strictly, got {t_values}")
        if not all(math.isfinite(w) and w > 0 for w in weights):
            raise ValueError(f"reweighted_l2 weights must be finite and > 0, got {weights}")
        self.t_values, self.weights, self.matched = t_values, weights, matched

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """w(t) per sample: linear interpolation in the table, the end values outside it (float32 or wider)."""
        t = torch.as_tensor(t)
        t = t.to(torch.promote_types(t.dtype, torch.float32))
        xs = torch.tensor(self.t_values, dtype=t.dtype, device=t.device)
        ys = torch.tensor(self.weights, dtype=t.dtype, device=t.device)
        if len(xs) == 1:
            return ys.expand_as(t).clone()
        tc = t.clamp(xs[0], xs[-1])
        hi = torch.searchsorted(xs, tc, right=True).clamp(1, len(xs) - 1)
        x0, x1, y0, y1 = xs[hi - 1], xs[hi], ys[hi - 1], ys[hi]
        return y0 + (tc - x0) / (x1 - x0) * (y1 - y0)

    def __call__(self, residual: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return _per_sample(self.weight(t), residual) * l2(residual)

    def __repr__(self) -> str:
        return f"ReweightedL2Loss(matched={self.matched!r}, t={self.t_values}, w={self.weights})"


@dataclass
class LossConfig:
    """Hydra group ``loss/``: which loss and its parameters (options ``l2``, ``huber``, ``scheduled_huber``,
    ``adaptive_huber``, ``cauchy``, ``tukey``, ``reweighted_l2``).

    - ``l2``: the official Grad-TTS score loss, rho(a) = a^2;
    - ``huber``: constant-delta pseudo-Huber, rho(a) = 2 delta (sqrt(a^2 + delta^2) - delta);
    - ``scheduled_huber``: scheduled pseudo-Huber (Khrapov et al. 2024), delta(t) from a schedule that
      reaches ``delta_min`` at t = 1;
    - ``adaptive_huber``: scheduled pseudo-Huber with delta_min = the ``quantile`` of the per-element |residual|
      of the starting model on the training set (at t in 0.1, 0.3, ..., 0.9, seeded noise), measured once
      before training and recorded in the run's ``run.json``;
    - ``cauchy``: rho(a) = delta^2 log(1 + a^2 / delta^2), and ``tukey``: Tukey's biweight scaled to ~a^2 near 0
      (see :func:`tukey_biweight`). Both take delta(t) from the same fields as ``scheduled_huber``:
      ``delta_min`` and ``schedule`` (``loss=cauchy loss.schedule=constant loss.delta_min=0.5`` is a
      constant-delta Cauchy loss with delta = 0.5); the ``huber`` field ``delta`` is not read;
    - ``reweighted_l2``: L2 with a weight w(t) per diffusion time, the ratio of the mean |gradient| of
      ``scheduled_huber`` with this config's ``schedule`` and ``delta_min`` (and ``step_t``, beta range) to L2's,
      measured on the starting model's residuals on the training set before training (on a fixed grid of t,
      seeded noise; recorded in ``run.json``): the reweighting of t that the scheduled loss makes, without
      its robustness.

    Schedules (``schedule``): ``exponential`` delta_min^t (the paper's), ``linear`` 1 - (1 - delta_min) t,
    ``step`` 1 for t < ``step_t`` then delta_min, ``constant`` delta_min, ``increasing`` delta_min^(1 - t) (the
    only one that starts at delta_min; ``backwards`` is an alias that gives the same run, identity and tag),
    ``snr`` (1 - delta_min) / (1 + r_t)^2 + delta_min with r_t the noise-to-signal ratio. ``step_t`` is read by
    the step schedule only, and the beta range by ``snr`` only (None to take the model's own).
    """

    name: str = "l2"                   # l2 | huber | scheduled_huber | adaptive_huber | cauchy | tukey | reweighted_l2
    delta: float = 0.1                 # huber
    # scheduled_huber, cauchy, tukey, reweighted_l2 (the matched loss's): delta at t = 1 (at t = 0 for increasing)
    delta_min: float = 0.1
    # scheduled_huber, adaptive_huber, cauchy, tukey, reweighted_l2:
    # exponential (the paper's) | linear | step | constant | increasing (alias backwards) | snr
    schedule: str = "exponential"
    step_t: float = STEP_T             # step schedule: delta = 1 for t < step_t, delta_min from step_t on
    quantile: float = 0.5              # adaptive_huber: delta_min = this quantile of the starting |residual|
    beta_min: Optional[float] = None   # snr schedule: None uses the model's beta range
    beta_max: Optional[float] = None


#: The robust losses whose delta follows a :class:`DeltaSchedule` set by ``delta_min`` and ``schedule``. This is
#: the one registration point of such a loss (a :class:`ScheduledDeltaLoss` subclass with its ``name`` and rho):
#: its name is then a choice of ``loss.name``, and its identity, directory tag (``<name>_<schedule>_dmin<delta_min>``)
#: and label follow from the schedule fields (:mod:`gradtts.train.identity`).
SCHEDULED_LOSS_CLASSES: dict[str, type[ScheduledDeltaLoss]] = {
    cls.name: cls for cls in (ScheduledPseudoHuberLoss, CauchyLoss, TukeyLoss)}
SCHEDULED_LOSSES = tuple(SCHEDULED_LOSS_CLASSES)
#: Every loss name (``loss.name``).
LOSSES = ("l2", "huber", *SCHEDULED_LOSSES, "adaptive_huber", "reweighted_l2")


#: A measured w(t) table of ``reweighted_l2``: ``(times, weights)``.
WeightTable = tuple[Sequence[float], Sequence[float]]


def build_loss(name: str = "l2", *, delta: float = 0.1, delta_min: float = 0.1, schedule: str = "exponential",
               beta_min: float = 0.05, beta_max: float = 20.0, noise_to_signal: NoiseToSignal | None = None,
               quantile: float = 0.5, step_t: float = STEP_T, weight_table: WeightTable | None = None) -> ScoreLoss:
    """Make a loss from config values; ``noise_to_signal`` defaults to the linear-beta VP SDE's.

    ``adaptive_huber`` takes its measured delta_min as ``delta_min`` (``quantile`` is recorded with it);
    ``reweighted_l2`` its measured ``weight_table`` (the schedule fields name the loss it was matched to);
    ``step_t`` is the switch time of the ``step`` schedule.
    """
    if name == "l2":
        return L2Loss()
    if name == "huber":
        return PseudoHuberLoss(delta)
    if name in (*SCHEDULED_LOSSES, "adaptive_huber", "reweighted_l2"):
        if noise_to_signal is None and schedule == "snr":
            noise_to_signal = vp_noise_to_signal(beta_min, beta_max)
        sched = DeltaSchedule(schedule, delta_min, noise_to_signal, t_step=step_t)
        if name == "adaptive_huber":
            return AdaptivePseudoHuberLoss(sched, quantile)
        if name == "reweighted_l2":
            if weight_table is None:
                raise ValueError("loss=reweighted_l2 needs its w(t) table measured first (the trainer does this; "
                                 "outside it, pass weight_table)")
            return ReweightedL2Loss(*weight_table, matched=sched)
        return SCHEDULED_LOSS_CLASSES[name](sched)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")


def _getter(cfg) -> Callable:
    """``get(key, default)`` of a :class:`LossConfig`, dict or OmegaConf node."""
    return cfg.get if hasattr(cfg, "get") else (lambda k, d=None: getattr(cfg, k, d))


def loss_from_config(cfg, beta_min: float = 0.05, beta_max: float = 20.0, measured_delta_min: float | None = None,
                     measured_weights: WeightTable | None = None) -> ScoreLoss:
    """:func:`build_loss` from a :class:`LossConfig`, dict or OmegaConf node.

    ``beta_min``/``beta_max`` are used where the config leaves them None (pass the model's);
    ``measured_delta_min`` is required by ``adaptive_huber`` (the value its quantile rule gave),
    ``measured_weights`` by ``reweighted_l2`` (the table :func:`gradtts.train.probe.matched_weights` gave).
    """
    get = _getter(cfg)
    step_t = float(get("step_t", STEP_T))
    if get("name", "l2") == "adaptive_huber":
        if measured_delta_min is None:
            raise ValueError("loss=adaptive_huber needs its delta_min measured from the data first "
                             "(the trainer does this; outside it, pass measured_delta_min)")
        q = float(get("quantile", 0.5))
        if not 0 < q < 1:
            raise ValueError(f"loss.quantile must lie in (0, 1), got {q}")
        return build_loss("adaptive_huber", delta_min=measured_delta_min, schedule=get("schedule", "exponential"),
                          beta_min=beta_min if get("beta_min", None) is None else get("beta_min"),
                          beta_max=beta_max if get("beta_max", None) is None else get("beta_max"), quantile=q,
                          step_t=step_t)
    bmin = get("beta_min", None)
    bmax = get("beta_max", None)
    return build_loss(get("name", "l2"), delta=get("delta", 0.1), delta_min=get("delta_min", 0.1),
                      schedule=get("schedule", "exponential"), beta_min=beta_min if bmin is None else bmin,
                      beta_max=beta_max if bmax is None else bmax, step_t=step_t, weight_table=measured_weights)


def matched_loss_from_config(cfg, beta_min: float = 0.05, beta_max: float = 20.0) -> ScoreLoss:
    """The loss a ``reweighted_l2`` config is matched to: :data:`REWEIGHT_MATCHES` with the config's schedule fields."""
    get = _getter(cfg)
    fields = {k: get(k, None) for k in ("delta_min", "schedule", "step_t", "beta_min", "beta_max")}
    return loss_from_config({k: v for k, v in fields.items() if v is not None} | {"name": REWEIGHT_MATCHES},
                            beta_min, beta_max)
