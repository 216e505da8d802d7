"""Tidy CSV and paper-style markdown tables of the aggregated results."""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Sequence

from gradtts.io import atomic_write_text


def write_csv(path: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Rows (dicts) as a CSV with the union of their keys, written atomically."""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_csv(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def fmt(mean: float, half: float, digits: int = 3) -> str:
    """``mean ± half`` (or the mean alone when the interval is undefined)."""
    if math.isnan(mean):
        return "–"
    return f"{mean:+.{digits}f}" + ("" if math.isnan(half) else f" ± {half:.{digits}f}")


def markdown_table(agg: Sequence[dict], metric: str, step) -> str:
    """Rows: loss; columns: corruption level p; cells: mean ± 95 % CI of ``metric`` at ``step``."""
    rows = [r for r in agg if str(r["step"]) == str(step)]
    ps = sorted({float(r["p"]) for r in rows})
    losses = sorted({r["loss"] for r in rows})
    cell = {(r["loss"], float(r["p"])): fmt(float(r[metric]), float(r[f"{metric}_ci"])) for r in rows}
    head = f"| loss | " + " | ".join(f"p = {p:.2f}" for p in ps) + " |\n"
    head += "|---|" + "---|" * len(ps) + "\n"
    return head + "".join(f"| {loss} | " + " | ".join(cell.get((loss, p), "–") for p in ps) + " |\n" for loss in losses)
