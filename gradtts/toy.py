"""The robust-loss mechanism in seconds: a 2-D diffusion trained on a clean mode plus an outlier mode.

    python -m gradtts.toy [--out DIR] [--p 0 0.1 0.3] [--seeds 0 1 2] [--steps 2000] [--quick]

Data: ``n`` points, a share ``p`` of them (exactly ``round(p * n)``) from an outlier blob at (+2, 0) and
the rest from a clean blob at (-2, 0), both isotropic with std ``MODE_STD``. The diffusion is Grad-TTS's
linear-beta VP SDE with prior mean mu = 0 (beta 0.05 -> 20, :mod:`gradtts.model.diffusion`): x_t given
x_0 is N(x_0 exp(-B_t / 2), 1 - exp(-B_t)) with B_t the integral of beta over [0, t]. A small MLP score
network s(x_t, t) is trained, exactly as Grad-TTS trains its U-Net, on the residual
a = sigma_t * s(x_t, t) + z with t ~ U(1e-5, 1 - 1e-5) and the element-wise loss rho(a, t) of each
setting (:func:`gradtts.losses.build_loss`), averaged over the batch and both coordinates (Adam, cosine
learning-rate decay).

Every loss setting of one (p, seed) shares the initial weights, the training set, every minibatch, t
and z, and the sampling noise (common random numbers): the settings differ only in their loss. They are
trained together as one batch of independent networks (:class:`ScoreMLP`; summing their losses leaves
each network's gradient, and so each one's Adam update, its own).

Sampling integrates the probability-flow ODE (``--sampler ode``, the default; ``sde`` for the reverse
SDE) from t = 1 to 0 with Euler steps evaluated at mid-points, as ``Diffusion.reverse_diffusion`` does.
Each generated point is assigned to the nearer mode centre; per (p, loss, seed) the run measures the
leakage (share assigned to the outlier mode; an exact fit of the corrupted data would give p) and the
spread of the clean mode (root-mean per-axis std of the points assigned to it, against ``MODE_STD``).

Outputs under ``--out``: ``toy_runs.csv`` (one row per p x loss x seed), ``toy_aggregate.csv`` (per p x
loss, mean and 95 % t-interval half-width over seeds), ``toy_table.md`` and ``toy.png``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from gradtts.errors import UserError
from gradtts.io import atomic_path, atomic_write_text, write_csv
from gradtts.losses import SCHEDULED_LOSSES, SCHEDULES, ScoreLoss, build_loss, canonical_schedule
from gradtts.model.diffusion import beta, beta_integral
from gradtts.report.stats import t_interval

PROG = "python -m gradtts.toy"
BETA_MIN, BETA_MAX = 0.05, 20.0
CLEAN_MEAN = (-2.0, 0.0)
OUTLIER_MEAN = (2.0, 0.0)
MODE_STD = 0.25
T_OFFSET = 1e-5          # t ~ U(offset, 1 - offset), as Diffusion.compute_loss
PE_SCALE = 1000.0        # the time embedding's scale, as Grad-TTS's estimator
N_FREQS = 16
DEFAULT_LOSSES = ("l2", "huber:0.1", "huber:1", "scheduled_huber:0.1", "scheduled_huber:0.01")
#: The losses the toy trains with: a fixed δ or a schedule's δ_min given on the command line.
TOY_LOSSES = ("l2", "huber", *SCHEDULED_LOSSES)

RUN_FIELDS = ("p", "loss", "seed", "n_train", "n_outliers", "n_samples", "leakage", "leakage_ref", "clean_std",
              "clean_std_true", "clean_std_err", "clean_shift", "final_loss")
AGG_METRICS = ("leakage", "clean_std", "clean_std_err", "clean_shift")


# ---------------------------------------------------------------- losses

@dataclass(frozen=True)
class LossSpec:
    """One loss setting, written ``l2``, ``huber:DELTA`` or ``scheduled_huber:DELTA_MIN[:SCHEDULE]``."""

    name: str
    value: float | None = None       # delta (huber) or delta_min (scheduled_huber)
    schedule: str = "exponential"

    @property
    def label(self) -> str:
        """The setting as written on the command line (the ``loss`` column of the tables)."""
        if self.name == "l2":
            return "l2"
        tail = "" if self.name == "huber" or self.schedule == "exponential" else f":{self.schedule}"
        return f"{self.name}:{self.value:g}{tail}"

    def build(self) -> ScoreLoss:
        """The loss object of :mod:`gradtts.losses`."""
        if self.name == "huber":
            return build_loss("huber", delta=self.value)
        if self.name in SCHEDULED_LOSSES:
            return build_loss(self.name, delta_min=self.value, schedule=self.schedule,
                              beta_min=BETA_MIN, beta_max=BETA_MAX)
        return build_loss(self.name)


def parse_loss_spec(text: str) -> LossSpec:
    """``l2`` | ``huber:DELTA`` | ``scheduled_huber:DELTA_MIN[:SCHEDULE]`` (or ``cauchy``/``tukey`` in the same
    form) -> :class:`LossSpec`. ``adaptive_huber`` is not offered: its δ is measured on a model's residuals."""
    form = ("write l2, huber:DELTA or scheduled_huber|cauchy|tukey:DELTA_MIN[:SCHEDULE], e.g. huber:0.1, "
            "scheduled_huber:0.01")
    parts = text.strip().split(":")
    name = parts[0]
    if name not in TOY_LOSSES:
        raise argparse.ArgumentTypeError(f"unknown loss {name!r}; choose one of {', '.join(TOY_LOSSES)} ({form})")
    if name == "l2":
        if len(parts) != 1:
            raise argparse.ArgumentTypeError(f"loss {text!r}: l2 takes no parameter ({form})")
        return LossSpec("l2")
    if len(parts) < 2 or len(parts) > (3 if name in SCHEDULED_LOSSES else 2):
        raise argparse.ArgumentTypeError(f"loss {text!r}: {form}")
    try:
        value = float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"loss {text!r}: {parts[1]!r} is not a number ({form})") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"loss {text!r}: the delta must be a positive number")
    schedule = parts[2] if len(parts) == 3 else "exponential"
    if schedule not in SCHEDULES:
        raise argparse.ArgumentTypeError(f"loss {text!r}: unknown schedule {schedule!r}; choose one of "
                                         f"{', '.join(SCHEDULES)}")
    schedule = canonical_schedule(schedule)  # one label per schedule, whichever name was given
    return LossSpec(name, value, schedule)


# ---------------------------------------------------------------- data and forward process

def n_outliers(n: int, p: float) -> int:
    """How many of ``n`` training points are outliers: ``round(p * n)`` (Python's rounding)."""
    return round(p * n)


def make_data(n: int, p: float, generator: torch.Generator, std: float = MODE_STD) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x [n, 2], is_outlier [n] bool)``: exactly ``round(p * n)`` outliers, in random positions."""
    k = n_outliers(n, p)
    is_outlier = torch.zeros(n, dtype=torch.bool)
    is_outlier[torch.randperm(n, generator=generator)[:k]] = True
    centres = torch.where(is_outlier[:, None], torch.tensor(OUTLIER_MEAN), torch.tensor(CLEAN_MEAN))
    return centres + std * torch.randn(n, 2, generator=generator), is_outlier


def noise_std(t: torch.Tensor) -> torch.Tensor:
    """sigma_t = sqrt(1 - exp(-B_t)), the std of x_t given x_0 (``Diffusion.noise_std``)."""
    return torch.sqrt(-torch.expm1(-beta_integral(t, BETA_MIN, BETA_MAX)))


def diffuse(x0: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """x_t = x_0 exp(-B_t / 2) + sigma_t z for ``x0, z [B, 2]`` and ``t [B]`` (prior mean mu = 0)."""
    cum = beta_integral(t, BETA_MIN, BETA_MAX)[:, None]
    return x0 * torch.exp(-0.5 * cum) + z * noise_std(t)[:, None]


def marginal_std(t: float, std: float = MODE_STD) -> float:
    """Closed-form per-axis std of x_t when x_0 is one blob of per-axis std ``std``."""
    decay = math.exp(-beta_integral(t, BETA_MIN, BETA_MAX))
    return math.sqrt(std * std * decay + 1.0 - decay)


# ---------------------------------------------------------------- score network

def time_embedding(t: torch.Tensor, n_freqs: int = N_FREQS) -> torch.Tensor:
    """Sinusoidal embedding of ``PE_SCALE * t`` (sin then cos), as Grad-TTS's SinusoidalPosEmb: [B, 2 n_freqs]."""
    freqs = torch.exp(torch.arange(n_freqs, dtype=torch.float32) * (-math.log(10000.0) / (n_freqs - 1)))
    angle = PE_SCALE * t[:, None] * freqs[None]
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


class ScoreMLP(nn.Module):
    """``members`` independent MLP score networks s(x, t) evaluated as one batch.

    Each member: [x, time embedding] -> ``layers`` hidden SiLU layers of width ``hidden`` -> 2 outputs.
    All members start from the same weights (drawn from ``generator``, uniform +-1/sqrt(fan_in) as
    ``nn.Linear``), so that members trained with different losses differ only by their loss.
    """

    def __init__(self, members: int, generator: torch.Generator, hidden: int = 64, layers: int = 3):
        super().__init__()
        dims = [2 + 2 * N_FREQS] + [hidden] * layers + [2]
        self.members = members
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(d_in)
            w = (2.0 * torch.rand(d_in, d_out, generator=generator) - 1.0) * bound
            b = (2.0 * torch.rand(1, d_out, generator=generator) - 1.0) * bound
            self.weights.append(nn.Parameter(w.expand(members, -1, -1).clone()))
            self.biases.append(nn.Parameter(b.expand(members, -1, -1).clone()))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Scores ``[members, B, 2]`` of ``x`` (``[B, 2]``, shared by all members, or ``[members, B, 2]``)."""
        if x.dim() == 2:
            x = x.expand(self.members, -1, -1)
        h = torch.cat([x, time_embedding(t).expand(self.members, -1, -1)], dim=-1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = nn.functional.silu(h)
        return h


def train_scores(x: torch.Tensor, losses: Sequence[ScoreLoss], steps: int, generator: torch.Generator,
                 batch: int = 256, lr: float = 2e-3, hidden: int = 64, progress=None) -> tuple[ScoreMLP, list[float]]:
    """Train one network per loss on ``x [n, 2]``; returns the model and each member's mean loss over the last
    tenth of the steps.

    Each step draws a minibatch, t ~ U(1e-5, 1 - 1e-5) and z ~ N(0, I) from ``generator`` (shared by the
    members), forms a = sigma_t s(x_t, t) + z and minimises mean(rho(a, t)) of each member's loss with Adam,
    its learning rate decaying from ``lr`` to 0 on a cosine (a constant rate left the mode weights of one
    seed several points off; the decay settles them).
    ``progress`` (a tqdm bar or None) is advanced by one per step.
    """
    model = ScoreMLP(len(losses), generator, hidden=hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    tail = max(1, steps // 10)
    totals = torch.zeros(len(losses), dtype=torch.float64)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        x0 = x[torch.randint(x.shape[0], (batch,), generator=generator)]
        t = torch.rand(batch, generator=generator).clamp(T_OFFSET, 1.0 - T_OFFSET)
        z = torch.randn(batch, 2, generator=generator)
        residual = model(diffuse(x0, t, z), t) * noise_std(t)[None, :, None] + z
        per_member = torch.stack([loss(residual[k], t).mean() for k, loss in enumerate(losses)])
        opt.zero_grad(set_to_none=True)
        per_member.sum().backward()
        opt.step()
        if step >= steps - tail:
            totals += per_member.detach().double()
        if progress is not None:
            progress.update(1)
    return model, (totals / tail).tolist()


@torch.no_grad()
def sample(model: ScoreMLP, n: int, n_steps: int, generator: torch.Generator, stochastic: bool = False) -> torch.Tensor:
    """``[members, n, 2]`` points by Euler integration from t = 1 to 0 at mid-points, from x_1 ~ N(0, I).

    ``stochastic=False`` follows the probability-flow ODE, ``True`` the reverse SDE; the start and the step
    noise are drawn from ``generator`` and shared by the members (as ``Diffusion.reverse_diffusion``).
    """
    h = 1.0 / n_steps
    x = torch.randn(n, 2, generator=generator).expand(model.members, -1, -1)
    for i in range(n_steps):
        t = torch.full((n,), 1.0 - (i + 0.5) * h)
        beta_t = beta(t, BETA_MIN, BETA_MAX)[None, :, None]
        score = model(x, t)
        if stochastic:
            eps = torch.randn(n, 2, generator=generator)
            dx = (-0.5 * x - score) * beta_t * h + eps * torch.sqrt(beta_t * h)
        else:
            dx = 0.5 * (-x - score) * beta_t * h
        x = x - dx
    return x


# ---------------------------------------------------------------- metrics

def assign_outlier(points: torch.Tensor) -> torch.Tensor:
    """Bool ``[..., n]``: strictly nearer the outlier centre than the clean one (a tie counts as clean)."""
    d_clean = (points - torch.tensor(CLEAN_MEAN, dtype=points.dtype)).square().sum(-1)
    d_out = (points - torch.tensor(OUTLIER_MEAN, dtype=points.dtype)).square().sum(-1)
    return d_out < d_clean


def mode_metrics(points: torch.Tensor, true_std: float = MODE_STD) -> dict[str, float]:
    """Leakage and clean-mode spread of generated ``points [n, 2]``.

    - ``leakage``: share of the points nearer the outlier centre;
    - ``clean_std``: sqrt of the mean over the two axes of the (n - 1)-normalised variance of the points
      assigned to the clean mode (NaN with fewer than two); ``clean_std_err`` = clean_std - ``true_std``;
    - ``clean_shift``: distance of their mean from the clean centre (NaN with none).
    """
    points = points.double()
    out = assign_outlier(points)
    clean = points[~out]
    std = math.sqrt(clean.var(dim=0, unbiased=True).mean().item()) if len(clean) >= 2 else math.nan
    shift = (clean.mean(0) - torch.tensor(CLEAN_MEAN, dtype=torch.float64)).norm().item() if len(clean) else math.nan
    return {"leakage": out.double().mean().item(), "clean_std": std, "clean_std_err": std - true_std,
            "clean_shift": shift}


def aggregate(rows: Sequence[dict], level: float = 0.95) -> list[dict]:
    """Per (p, loss), in first-seen order: mean and t-interval half-width (``*_ci``) over seeds of each metric."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["p"], r["loss"]), []).append(r)
    out = []
    for (p, loss), rs in groups.items():
        row = {"p": p, "loss": loss, "n_seeds": len(rs), "leakage_ref": p, "clean_std_true": rs[0]["clean_std_true"]}
        for m in AGG_METRICS:
            iv = t_interval([float(r[m]) for r in rs], level)
            row[m], row[f"{m}_ci"] = iv.mean, iv.half
        out.append(row)
    return out


def _cell(mean: float, half: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" + ("" if math.isnan(half) else f" ± {half:.{digits}f}")


def markdown_table(agg: Sequence[dict], note: str = "") -> str:
    """The aggregate as a markdown table (mean ± 95 % t-interval half-width over seeds)."""
    true_std = agg[0]["clean_std_true"] if agg else MODE_STD
    lines = [f"| p | loss | seeds | leakage (exact fit = p) | clean-mode std (true {true_std:g}) | clean std − true "
             "| clean-mode shift |", "|---:|---|---:|---:|---:|---:|---:|"]
    for r in agg:
        lines.append(f"| {r['p']:g} | {r['loss']} | {r['n_seeds']} | {_cell(r['leakage'], r['leakage_ci'])} | "
                     f"{_cell(r['clean_std'], r['clean_std_ci'])} | "
                     f"{_cell(r['clean_std_err'], r['clean_std_err_ci']).replace('-', '−')} | "
                     f"{_cell(r['clean_shift'], r['clean_shift_ci'])} |")
    return "\n".join(lines) + "\n" + (f"\n{note}\n" if note else "")


# ---------------------------------------------------------------- figure

def plot(path: str | Path, train: tuple[torch.Tensor, torch.Tensor], samples: torch.Tensor, labels: Sequence[str],
         agg: Sequence[dict], title: str) -> None:
    """Scatter of the training set and of each loss's samples (one p, one seed) over bar charts of leakage
    and clean-mode std against loss, one bar per p, with 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(labels)
    fig = plt.figure(figsize=(2.4 * (k + 1), 6.2))
    grid = fig.add_gridspec(2, k + 1, height_ratios=(1.0, 1.1))
    x, is_out = train
    panels = [("training data", x, is_out)] + [(lab, samples[i], assign_outlier(samples[i]))
                                               for i, lab in enumerate(labels)]
    for col, (name, pts, out) in enumerate(panels):
        ax = fig.add_subplot(grid[0, col])
        for mask, colour in ((~out, "tab:blue"), (out, "tab:red")):
            ax.scatter(pts[mask, 0].numpy(), pts[mask, 1].numpy(), s=1.5, c=colour, alpha=0.35, linewidths=0)
        share = out.double().mean().item()
        ax.set_title(f"{name}\noutlier share {share:.3f}", fontsize=8)
        ax.set_xlim(-3.5, 3.5)
        ax.set_ylim(-2.0, 2.0)
        ax.set_xticks([-2, 0, 2])
        ax.set_yticks([-1, 0, 1])
        ax.tick_params(labelsize=7)
    ps = sorted({r["p"] for r in agg})
    width = 0.8 / len(ps)
    half = (k + 1) // 2
    bottom = (("leakage", "leakage (share nearer the outlier mode)"), ("clean_std_err", "clean-mode std − true std"))
    for (start, stop), (metric, ylabel) in zip(((0, half), (half, k + 1)), bottom):
        ax = fig.add_subplot(grid[1, start:stop])
        for j, p in enumerate(ps):
            rs = {r["loss"]: r for r in agg if r["p"] == p}
            xs = [i + (j - (len(ps) - 1) / 2) * width for i in range(k)]
            means = [rs[lab][metric] for lab in labels]
            halves = [0.0 if math.isnan(rs[lab][f"{metric}_ci"]) else rs[lab][f"{metric}_ci"] for lab in labels]
            bars = ax.bar(xs, means, width, yerr=halves, capsize=2, label=f"p = {p:g}")
            if metric == "leakage":
                ax.hlines(p, xs[0] - width / 2, xs[-1] + width / 2, colors=bars.patches[0].get_facecolor(),
                          linestyles="dashed", lw=1)
        if metric == "clean_std_err":
            ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xticks(range(k))
        ax.set_xticklabels(labels, rotation=20, fontsize=7, ha="right")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        # No "Software" text chunk: the bytes then depend on the pixels alone.
        fig.savefig(tmp, dpi=90, format="png", metadata={"Software": None})
    plt.close(fig)


# ---------------------------------------------------------------- the run

@dataclass
class ToyConfig:
    """Settings of one toy run (the command-line options)."""

    out: str = "exp/toy"
    ps: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.3])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    losses: list[LossSpec] = field(default_factory=lambda: [parse_loss_spec(s) for s in DEFAULT_LOSSES])
    n: int = 2000                    # training points
    steps: int = 2000                # Adam steps
    batch: int = 256
    lr: float = 2e-3
    hidden: int = 64
    n_samples: int = 2000            # generated points per loss setting
    sample_steps: int = 100          # Euler steps
    sampler: str = "ode"             # ode | sde
    plot_seed: int | None = None     # the seed whose samples are drawn (default: the first)
    progress: bool = True


def _validate(cfg: ToyConfig) -> None:
    for p in cfg.ps:
        if n_outliers(cfg.n, p) >= cfg.n:
            raise UserError(f"--p {p:g} with --n {cfg.n} leaves no clean training point; lower --p or raise --n")
    if len(set(cfg.ps)) != len(cfg.ps) or len(set(cfg.seeds)) != len(cfg.seeds):
        raise UserError("--p and --seeds must not repeat a value")
    labels = [s.label for s in cfg.losses]
    if len(set(labels)) != len(labels):
        raise UserError(f"--losses repeats a setting: {' '.join(labels)}")
    if cfg.plot_seed is not None and cfg.plot_seed not in cfg.seeds:
        raise UserError(f"--plot-seed {cfg.plot_seed} is not one of --seeds {' '.join(map(str, cfg.seeds))}")


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.6g}"


def run(cfg: ToyConfig) -> dict:
    """Train, sample and measure every p x seed x loss; write the four outputs; return rows, aggregate, paths."""
    from tqdm import tqdm

    _validate(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    losses = [s.build() for s in cfg.losses]
    labels = [s.label for s in cfg.losses]
    plot_seed = cfg.seeds[0] if cfg.plot_seed is None else cfg.plot_seed
    plot_p = max(cfg.ps)
    rows: list[dict] = []
    shown = None
    bar = tqdm(total=len(cfg.ps) * len(cfg.seeds) * cfg.steps, desc="toy", unit="step", mininterval=0.5,
               disable=not cfg.progress, file=sys.stderr)
    with bar:
        for p in cfg.ps:
            for seed in cfg.seeds:
                bar.set_postfix_str(f"p={p:g} seed={seed}")
                # Every draw below comes from g; the global seed is set as well so that a draw from the global
                # generator (a future edit, a library call) would be just as reproducible.
                torch.manual_seed(seed)
                g = torch.Generator().manual_seed(seed)
                x, is_out = make_data(cfg.n, p, g)
                model, final = train_scores(x, losses, cfg.steps, g, batch=cfg.batch, lr=cfg.lr, hidden=cfg.hidden,
                                            progress=bar)
                samples = sample(model, cfg.n_samples, cfg.sample_steps, g, stochastic=cfg.sampler == "sde")
                if p == plot_p and seed == plot_seed:
                    shown = ((x, is_out), samples)
                for k, lab in enumerate(labels):
                    m = mode_metrics(samples[k])
                    rows.append({"p": p, "loss": lab, "seed": seed, "n_train": cfg.n,
                                 "n_outliers": int(is_out.sum()), "n_samples": cfg.n_samples,
                                 "leakage": m["leakage"], "leakage_ref": p, "clean_std": m["clean_std"],
                                 "clean_std_true": MODE_STD, "clean_std_err": m["clean_std_err"],
                                 "clean_shift": m["clean_shift"], "final_loss": final[k]})
    agg = aggregate(rows)
    paths = {name: out / name for name in ("toy_runs.csv", "toy_aggregate.csv", "toy_table.md", "toy.png")}
    write_csv(paths["toy_runs.csv"], [{k: (_fmt(v) if isinstance(v, float) else v) for k, v in r.items()}
                                      for r in rows], RUN_FIELDS)
    write_csv(paths["toy_aggregate.csv"], [{k: (_fmt(v) if isinstance(v, float) else v) for k, v in r.items()}
                                           for r in agg])
    note = (f"Mean ± 95 % t-interval half-width over {len(cfg.seeds)} seeds ({' '.join(map(str, cfg.seeds))}); "
            f"{cfg.n} training points, {cfg.steps} Adam steps (batch {cfg.batch}, lr {cfg.lr:g}), "
            f"{cfg.n_samples} samples by {cfg.sample_steps} Euler steps of the "
            f"{'probability-flow ODE' if cfg.sampler == 'ode' else 'reverse SDE'}.")
    atomic_write_text(paths["toy_table.md"], markdown_table(agg, note))
    plot(paths["toy.png"], shown[0], shown[1], labels, agg,
         f"2-D VP diffusion, clean mode at {CLEAN_MEAN}, outlier mode at {OUTLIER_MEAN}; scatter: p = {plot_p:g}, "
         f"seed {plot_seed}; bars: mean ± 95 % CI over {len(cfg.seeds)} seeds (dashed: exact-fit leakage p)")
    return {"rows": rows, "aggregate": agg, "paths": paths}


# ---------------------------------------------------------------- command line

def _p_value(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give the outlier share in [0, 1)") from None
    if not 0.0 <= p < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1): the outlier share must be at least 0 and below 1 "
                                         "(at 1 there is no clean mode to measure)")
    return p


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"seed {v} must be >= 0")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return v


def build_parser() -> argparse.ArgumentParser:
    d = ToyConfig()
    ap = argparse.ArgumentParser(
        prog=PROG, description="2-D diffusion toy: leakage of an outlier mode under l2, pseudo-Huber and scheduled "
                               "pseudo-Huber score losses (see docs/toy.md).")
    ap.add_argument("--out", default=d.out, help=f"output directory (default {d.out})")
    ap.add_argument("--p", type=_p_value, nargs="+", default=d.ps, metavar="P",
                    help="outlier share(s) of the training set, each in [0, 1) (default 0 0.1 0.3)")
    ap.add_argument("--seeds", type=_seed, nargs="+", default=d.seeds, metavar="SEED", help="default 0 1 2")
    ap.add_argument("--losses", type=parse_loss_spec, nargs="+", default=None, metavar="LOSS",
                    help="settings l2 | huber:DELTA | scheduled_huber:DELTA_MIN[:SCHEDULE] (default "
                         f"{' '.join(DEFAULT_LOSSES)}; the schedule defaults to exponential)")
    ap.add_argument("--steps", type=_positive_int, default=None, help=f"Adam steps (default {d.steps})")
    ap.add_argument("--n", type=_positive_int, default=None, help=f"training points (default {d.n})")
    ap.add_argument("--batch", type=_positive_int, default=d.batch, help=f"minibatch size (default {d.batch})")
    ap.add_argument("--lr", type=_positive_float, default=d.lr, help=f"Adam learning rate (default {d.lr:g})")
    ap.add_argument("--hidden", type=_positive_int, default=d.hidden, help=f"MLP width (default {d.hidden})")
    ap.add_argument("--samples", type=_positive_int, default=None,
                    help=f"generated points per setting (default {d.n_samples})")
    ap.add_argument("--sample-steps", type=_positive_int, default=None,
                    help=f"Euler steps of the sampler (default {d.sample_steps})")
    ap.add_argument("--sampler", choices=("ode", "sde"), default=d.sampler,
                    help="probability-flow ODE (default) or reverse SDE")
    ap.add_argument("--plot-seed", type=_seed, default=None,
                    help="seed whose samples the scatter shows (default: the first)")
    ap.add_argument("--quick", action="store_true",
                    help="a seconds-long smoke run: 300 points, 60 steps, 300 samples, 10 Euler steps "
                         "(options given explicitly still win)")
    ap.add_argument("--threads", type=_positive_int, default=None,
                    help="torch.set_num_threads(N); by default torch's own choice (OMP_NUM_THREADS)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def config_from_args(args: argparse.Namespace) -> ToyConfig:
    """The :class:`ToyConfig` of parsed options (``--quick`` fills what was not given)."""
    quick = {"n": 300, "steps": 60, "n_samples": 300, "sample_steps": 10}
    d = ToyConfig()

    def pick(value, name):
        return value if value is not None else (quick[name] if args.quick else getattr(d, name))

    return ToyConfig(out=args.out, ps=list(args.p), seeds=list(args.seeds),
                     losses=list(args.losses) if args.losses else d.losses, n=pick(args.n, "n"),
                     steps=pick(args.steps, "steps"), batch=args.batch, lr=args.lr, hidden=args.hidden,
                     n_samples=pick(args.samples, "n_samples"), sample_steps=pick(args.sample_steps, "sample_steps"),
                     sampler=args.sampler, plot_seed=args.plot_seed, progress=not args.no_progress)


def summary_text(agg: Sequence[dict], seconds: float, paths: dict) -> str:
    """The end-of-run summary: per p and loss, leakage against p and clean-mode std against the true one."""
    lines = [f"{'p':>5}  {'loss':<22} {'leakage (ref p)':>24}  {'clean std (true ' + f'{MODE_STD:g})':>26}"]
    for r in agg:
        lines.append(f"{r['p']:>5g}  {r['loss']:<22} {_cell(r['leakage'], r['leakage_ci']):>16} ({r['p']:.3f})  "
                     f"{_cell(r['clean_std'], r['clean_std_ci']):>26}")
    lines.append(f"wall time {seconds:.1f} s; wrote " + ", ".join(str(p) for p in paths.values()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    start = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        result = run(config_from_args(args))
    except UserError as exc:
        parser.error(str(exc))
    print(summary_text(result["aggregate"], time.perf_counter() - start, result["paths"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
