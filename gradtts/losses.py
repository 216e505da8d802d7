"""Score-loss family of "scheduled pseudo-Huber" diffusion training (Khrapov et al. 2024).

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

Schedules of delta(t) with delta_min the value reached at t = 1:
``exponential`` delta_min**t, ``snr`` (1 - c)/(1 + r_t)**2 + c with c = delta_min and r_t the
noise-to-signal ratio, ``constant`` delta_min, ``backwards`` delta_min**(1 - t).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

SCHEDULES = ("exponential", "snr", "constant", "backwards")
LOSSES = ("l2", "huber", "scheduled_huber", "adaptive_huber")

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


def vp_noise_to_signal(beta_min: float, beta_max: float) -> NoiseToSignal:
    """r_t = sigma_t / exp(-1/2 int_0^t beta) for a variance-preserving SDE with linear beta.

    int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / 2 and sigma_t^2 = 1 - exp(-int beta),
    so r_t = sqrt(exp(int beta) - 1).
    """
    def ratio(t: torch.Tensor) -> torch.Tensor:
        integral = beta_min * t + 0.5 * (beta_max - beta_min) * t * t
        return torch.sqrt(torch.expm1(integral))

    return ratio


class DeltaSchedule:
    """delta(t) for one of :data:`SCHEDULES`; ``noise_to_signal`` is needed by ``snr`` only."""

    def __init__(self, name: str, delta_min: float, noise_to_signal: NoiseToSignal | None = None):
        if name not in SCHEDULES:
            raise ValueError(f"unknown delta schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
        if not delta_min > 0:
            raise ValueError(f"delta_min must be > 0, got {delta_min}")
        if name == "snr" and noise_to_signal is None:
            raise ValueError("the 'snr' schedule needs noise_to_signal(t), e.g. vp_noise_to_signal(beta_min, beta_max)")
        self.name = name
        self.delta_min = float(delta_min)
        self.noise_to_signal = noise_to_signal

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        if self.name == "exponential":
            return torch.exp(t * math.log(self.delta_min))
        if self.name == "backwards":
            return torch.exp((1.0 - t) * math.log(self.delta_min))
        if self.name == "constant":
            return torch.full_like(t, self.delta_min)
        c = self.delta_min
        return (1.0 - c) / (1.0 + self.noise_to_signal(t)) ** 2 + c

    def __repr__(self) -> str:
        return f"DeltaSchedule({self.name!r}, delta_min={self.delta_min})"


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


class ScheduledPseudoHuberLoss(ScoreLoss):
    """Pseudo-Huber whose delta follows a schedule over diffusion time."""

    name = "scheduled_huber"

    def __init__(self, schedule: DeltaSchedule):
        self.schedule = schedule

    def __call__(self, residual: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # delta(t) is computed in float32 even under autocast: delta_min**t is tiny near t = 1.
        delta = self.schedule(t.to(torch.promote_types(t.dtype, torch.float32)))
        return pseudo_huber(residual, _per_sample(delta, residual))

    def delta(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        return self.schedule(t if t.is_floating_point() else t.float())

    def __repr__(self) -> str:
        return f"ScheduledPseudoHuberLoss({self.schedule!r})"


class AdaptivePseudoHuberLoss(ScheduledPseudoHuberLoss):
    """Scheduled pseudo-Huber whose delta_min was measured from the data (see ``LossConfig.quantile``)."""

    name = "adaptive_huber"

    def __init__(self, schedule: DeltaSchedule, quantile: float):
        super().__init__(schedule)
        self.quantile = float(quantile)

    def __repr__(self) -> str:
        return f"AdaptivePseudoHuberLoss({self.schedule!r}, quantile={self.quantile})"


@dataclass
class LossConfig:
    """Hydra group ``loss/``: which loss and its parameters (options ``l2``, ``huber``, ``scheduled_huber``,
    ``adaptive_huber``).

    - ``l2``: the official Grad-TTS score loss, rho(a) = a^2;
    - ``huber``: constant-delta pseudo-Huber, rho(a) = 2 delta (sqrt(a^2 + delta^2) - delta);
    - ``scheduled_huber``: scheduled pseudo-Huber (Khrapov et al. 2024), delta(t) from a schedule that
      reaches ``delta_min`` at t = 1;
    - ``adaptive_huber``: scheduled pseudo-Huber with delta_min = the ``quantile`` of the per-element |residual|
      of the starting model on the training set (at t in 0.1, 0.3, ..., 0.9, seeded noise), measured once
      before training and recorded in the run's ``run.json``.

    The beta range (used by the ``snr`` schedule only) is None to take the model's own.
    """

    name: str = "l2"                   # l2 | huber | scheduled_huber | adaptive_huber
    delta: float = 0.1                 # huber
    delta_min: float = 0.1             # scheduled_huber: delta at t = 1
    # scheduled_huber, adaptive_huber: exponential (the paper's, delta_min**t) | snr | constant | backwards
    schedule: str = "exponential"
    quantile: float = 0.5              # adaptive_huber: delta_min = this quantile of the starting |residual|
    beta_min: Optional[float] = None   # snr schedule: None uses the model's beta range
    beta_max: Optional[float] = None


def build_loss(name: str = "l2", *, delta: float = 0.1, delta_min: float = 0.1, schedule: str = "exponential",
               beta_min: float = 0.05, beta_max: float = 20.0, noise_to_signal: NoiseToSignal | None = None,
               quantile: float = 0.5) -> ScoreLoss:
    """Make a loss from config values; ``noise_to_signal`` defaults to the linear-beta VP SDE's.

    ``adaptive_huber`` takes its measured delta_min as ``delta_min`` (``quantile`` is recorded with it).
    """
    if name == "l2":
        return L2Loss()
    if name == "huber":
        return PseudoHuberLoss(delta)
    if name in ("scheduled_huber", "adaptive_huber"):
        if noise_to_signal is None and schedule == "snr":
            noise_to_signal = vp_noise_to_signal(beta_min, beta_max)
        sched = DeltaSchedule(schedule, delta_min, noise_to_signal)
        if name == "scheduled_huber":
            return ScheduledPseudoHuberLoss(sched)
        return AdaptivePseudoHuberLoss(sched, quantile)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")


def loss_from_config(cfg, beta_min: float = 0.05, beta_max: float = 20.0, measured_delta_min: float | None = None
                     ) -> ScoreLoss:
    """:func:`build_loss` from a :class:`LossConfig`, dict or OmegaConf node.

    ``beta_min``/``beta_max`` are used where the config leaves them None (pass the model's);
    ``measured_delta_min`` is required by ``adaptive_huber`` (the value its quantile rule gave).
    """
    get = cfg.get if hasattr(cfg, "get") else (lambda k, d=None: getattr(cfg, k, d))
    if get("name", "l2") == "adaptive_huber":
        if measured_delta_min is None:
            raise ValueError("loss=adaptive_huber needs its delta_min measured from the data first "
                             "(the trainer does this; outside it, pass measured_delta_min)")
        q = float(get("quantile", 0.5))
        if not 0 < q < 1:
            raise ValueError(f"loss.quantile must lie in (0, 1), got {q}")
        return build_loss("adaptive_huber", delta_min=measured_delta_min, schedule=get("schedule", "exponential"),
                          beta_min=beta_min if get("beta_min", None) is None else get("beta_min"),
                          beta_max=beta_max if get("beta_max", None) is None else get("beta_max"), quantile=q)
    bmin = get("beta_min", None)
    bmax = get("beta_max", None)
    return build_loss(get("name", "l2"), delta=get("delta", 0.1), delta_min=get("delta_min", 0.1),
                      schedule=get("schedule", "exponential"), beta_min=beta_min if bmin is None else bmin,
                      beta_max=beta_max if bmax is None else bmax)
