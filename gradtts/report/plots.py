"""Figures: a metric per arm or comparison (:func:`plot_metric`: lines against fine-tuning step, or a forest
plot when there is one step; one panel per corruption level, pair-level 95 % intervals as error bars) and the
δ(t) schedules of the score losses (:func:`plot_delta_schedules`)."""

from __future__ import annotations

import math
import os
from typing import Sequence

from gradtts.io import atomic_path


def plot_metric(agg: Sequence[dict], metric: str, path: str | os.PathLike, title: str | None = None,
                series: str = "arm", note: str | None = None) -> dict:
    """Plot ``metric`` ± ``{metric}_ci`` of ``agg`` rows, one series per ``series`` value, and say how.

    Panels are the p > 0 levels (p = 0 is the reference of R and L, flat at 0), or every level when
    the rows hold none above 0. With several steps each series is a line against ``step``; with one step
    (an ablation at a single checkpoint) a line has nothing to join, so the figure becomes a forest plot:
    one row per series, its interval drawn across a zero line. The legend (lines) sits below the axes and
    the figure grows with the number of series, so neither covers the data. Rows whose metric is NaN are
    left out; a figure without any point still gets written, with ``note`` (or a default) saying why it is
    empty, so a report always has its files.

    Returns ``{"layout": "lines" | "forest" | "empty", "series": [...], "panels": [p, ...]}``, where for
    a forest ``series`` is read back from the drawn y-axis, top row first.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts_rows = [r for r in agg if not math.isnan(float(r[metric]))]
    ps = (sorted({float(r["p"]) for r in agg if float(r["p"]) > 0}) or sorted({float(r["p"]) for r in agg})
          or [math.nan])
    names = sorted({str(r[series]) for r in pts_rows})
    all_steps = sorted({int(r["step"]) for r in pts_rows})
    layout = "empty" if not pts_rows else ("forest" if len(all_steps) == 1 else "lines")

    def points(name: str, p: float) -> list[tuple[int, float, float]]:
        # An undefined interval (one pair) is drawn as a bare point, not as a zero-width bar.
        return sorted((int(r["step"]), float(r[metric]), 0.0 if math.isnan(h := float(r[f"{metric}_ci"])) else h)
                      for r in pts_rows if str(r[series]) == name and float(r["p"]) == p)

    if layout == "forest":
        label_w = 0.075 * max(len(n) for n in names)   # inches of y tick labels, about 7.5 pt per character
        fig, axes = plt.subplots(1, len(ps), figsize=(label_w + 3.6 * len(ps), 1.2 + 0.3 * len(names)),
                                 sharey=True, squeeze=False)
        for ax, p in zip(axes[0], ps):
            for i, name in enumerate(names):
                for _, mean, half in points(name, p):
                    ax.errorbar([mean], [i], xerr=[half], fmt="o", capsize=3, color=f"C{i % 10}")
            ax.axvline(0, color="grey", lw=0.8)
            ax.set_title(f"p = {p:.2f}, step {all_steps[0]}" if not math.isnan(p) else f"step {all_steps[0]}")
            ax.set_xlabel(metric)
            ax.grid(alpha=0.3, axis="x")
        ax0 = axes[0][0]
        ax0.set_yticks(range(len(names)), names, fontsize=8)
        ax0.set_ylim(len(names) - 0.5, -0.5)   # first name on top, as in the tables
        fig.suptitle(title or metric)
        fig.tight_layout()
        drawn = [t.get_text() for t in ax0.get_yticklabels()]
    else:
        legend_h = 0.22 * len(names)
        fig, axes = plt.subplots(1, len(ps), figsize=(max(4.2 * len(ps), 6.0), 3.4 + legend_h), sharey=True,
                                 squeeze=False)
        # Lines share their steps: shift each series sideways a little so the error bars do not overlap.
        dodge = 0.012 * ((all_steps[-1] - all_steps[0]) or 1) if all_steps else 0.0
        for ax, p in zip(axes[0], ps):
            for i, name in enumerate(names):
                pts = points(name, p)
                if not pts:
                    continue
                steps, means, halves = zip(*pts)
                xs = [s + (i - (len(names) - 1) / 2) * dodge for s in steps]
                ax.errorbar(xs, means, yerr=halves, marker="o", capsize=3, label=name, color=f"C{i % 10}")
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_title(f"p = {p:.2f}" if not math.isnan(p) else "")
            ax.set_xlabel("fine-tuning step")
            if all_steps:
                ax.set_xticks(all_steps)
            ax.grid(alpha=0.3)
        if not pts_rows:
            axes[0][0].text(0.5, 0.5, note or f"no {metric} values to plot", ha="center", va="center",
                            transform=axes[0][0].transAxes, wrap=True)
        axes[0][0].set_ylabel(metric)
        fig.suptitle(title or metric)
        if names:
            # One entry per series, even when a series is missing from the first panel.
            legend: dict = {}
            for ax in axes[0]:
                for handle, lab in zip(*ax.get_legend_handles_labels()):
                    legend.setdefault(lab, handle)
            fig.legend(list(legend.values()), list(legend), loc="lower center", fontsize=8, frameon=False)
            fig.tight_layout(rect=(0, legend_h / (3.4 + legend_h), 1, 1))
        else:
            fig.tight_layout()
        drawn = names
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return {"layout": layout, "series": drawn, "panels": ps}


#: Line styles of :func:`plot_delta_schedules`, so that curves that meet (all reach δ_min at t = 1) stay apart.
_STYLES = ("-", "--", "-.", ":", (0, (8, 2, 2, 2, 2, 2)), (0, (3, 1, 1, 1)))


def plot_delta_schedules(path: str | os.PathLike, delta_mins: Sequence[float] = (0.1, 0.01),
                         schedules: Sequence[str] | None = None, beta_min: float = 0.05, beta_max: float = 20.0,
                         step_t: float = 0.5, n_points: int = 401, log_y: bool = True) -> None:
    """Draw δ(t) on t in [0, 1] to a PNG: one panel per δ_min, one line per schedule.

    ``schedules`` defaults to :data:`gradtts.losses.SCHEDULE_NAMES` (every schedule once, aliases left out);
    ``beta_min``/``beta_max`` set the noise-to-signal ratio of ``snr`` and ``step_t`` the switch time of
    ``step``. δ is drawn on a log axis (``log_y``), where the exponential schedule is a straight line.
    Each panel is 4.0 x 3.2 inches at 100 dpi, with the legend below the panels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    # Imported here: the report stage reads CSV/JSON and should not pay for torch unless it draws this.
    from gradtts.losses import SCHEDULE_NAMES, DeltaSchedule, vp_noise_to_signal

    schedules = SCHEDULE_NAMES if schedules is None else tuple(schedules)
    if not schedules or not delta_mins:
        raise ValueError("plot_delta_schedules: give at least one schedule and one delta_min")
    # float64 so that the step's jump sits exactly at step_t on the grid
    t = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64)
    ratio = vp_noise_to_signal(beta_min, beta_max)
    fig, axes = plt.subplots(1, len(delta_mins), figsize=(4.0 * len(delta_mins), 3.2), sharey=True,
                             squeeze=False)
    for ax, dmin in zip(axes[0], delta_mins):
        for i, name in enumerate(schedules):
            sched = DeltaSchedule(name, dmin, ratio, t_step=step_t)
            label = f"{name} (t_step={step_t:g})" if sched.name == "step" else name
            ax.plot(t.numpy(), sched(t).numpy(), ls=_STYLES[i % len(_STYLES)], lw=1.5, label=label)
        ax.set_title(f"δ_min = {dmin:g}")
        ax.set_xlabel("diffusion time t")
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("δ(t)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    ncol = min(len(labels), 3 * len(delta_mins))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    # Room at the bottom for the legend's rows (about 0.18 inch each).
    rows = -(-len(labels) // ncol)
    fig.tight_layout(rect=(0, min(0.5, (0.05 + 0.18 * rows) / 3.2), 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
