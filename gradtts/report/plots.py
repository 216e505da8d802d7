"""R and L against fine-tuning step: one line per loss, one panel per corruption level, 95 % CI bands."""

from __future__ import annotations

import math
import os
from typing import Sequence

from gradtts.io import atomic_path


def plot_metric(agg: Sequence[dict], metric: str, path: str | os.PathLike, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ps = sorted({float(r["p"]) for r in agg if float(r["p"]) > 0}) or sorted({float(r["p"]) for r in agg})
    losses = sorted({r["loss"] for r in agg})
    fig, axes = plt.subplots(1, len(ps), figsize=(4.2 * len(ps), 3.4), sharey=True, squeeze=False)
    for ax, p in zip(axes[0], ps):
        for loss in losses:
            pts = sorted((int(r["step"]), float(r[metric]), float(r[f"{metric}_ci"]))
                         for r in agg if r["loss"] == loss and float(r["p"]) == p)
            if not pts:
                continue
            steps, means, halves = zip(*pts)
            line, = ax.plot(steps, means, marker="o", label=loss)
            lo = [m - (h if not math.isnan(h) else 0) for m, h in zip(means, halves)]
            hi = [m + (h if not math.isnan(h) else 0) for m, h in zip(means, halves)]
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"p = {p:.2f}")
        ax.set_xlabel("fine-tuning step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric)
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(title or metric)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
