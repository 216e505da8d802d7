"""Ratings CSVs of the blind A/B page -> a preference table with intervals, and its markdown.

Per arm pair (arm_x, the arm tested, against arm_y, the reference) the table counts the ratings that prefer
x, prefer y, or have no preference (a tie is its own outcome: it is neither split nor dropped), and gives:

- each share of the ratings with a **Wilson score interval**; it treats ratings as independent draws, which
  they are not when one listener gives many, so with few listeners it is too narrow;
- the **net preference**, per listener the share preferring x minus the share preferring y (ties count 0,
  so it lies in [-1, 1] and 0 means no preference), averaged over listeners with a **t-interval over
  listeners** (df = listeners - 1): the listener is the unit, as the pair is in the similarity tables.

A listener who downloads several times sends overlapping files: a (listener, page, trial) rated more than
once counts once, with its latest choice.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from gradtts.report.listening.page import CHOICES, CSV_COLUMNS
from gradtts.report.listening.study import ListeningError


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval (low, high) of a proportion ``k / n``; (nan, nan) when ``n`` is 0."""
    from scipy.stats import norm

    if n == 0:
        return math.nan, math.nan
    z = float(norm.ppf(0.5 + level / 2))
    phat = k / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def read_ratings(csv_paths: Iterable[str | Path]) -> list[dict]:
    """Every rating of the CSVs, checked, with duplicates (same listener, page, trial) reduced to the latest."""
    latest: dict[tuple, dict] = {}
    for path in csv_paths:
        path = Path(path)
        if not path.is_file():
            raise ListeningError(f"{path}: ratings CSV not found; give the CSV files downloaded from ab.html")
        try:
            rows = _csv_rows(path)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ListeningError(f"{path}: unreadable ratings CSV ({exc}); give the file downloaded from ab.html "
                                 "unchanged") from exc
        if rows is None:
            raise ListeningError(f"{path}: empty file, not a ratings CSV of the A/B page; give the file "
                                 "downloaded from ab.html")
        fieldnames, records = rows
        missing = [c for c in CSV_COLUMNS if c not in fieldnames]
        if missing:
            raise ListeningError(f"{path}: not a ratings CSV of the A/B page, columns {', '.join(missing)} "
                                 "are missing")
        for n, row in enumerate(records, 2):
            where = f"{path}:{n}"
            if row["choice"] not in CHOICES:
                raise ListeningError(f"{where}: choice {row['choice']!r} is not one of {', '.join(CHOICES)}")
            if row["shown_as_A"] not in (row["arm_x"], row["arm_y"]):
                raise ListeningError(f"{where}: shown_as_A {row['shown_as_A']!r} is neither arm_x nor arm_y")
            shown_b = row["arm_y"] if row["shown_as_A"] == row["arm_x"] else row["arm_x"]
            expected = {"A": row["shown_as_A"], "B": shown_b, "none": ""}[row["choice"]]
            if row["preferred"] != expected:
                raise ListeningError(f"{where}: preferred {row['preferred']!r} does not follow from choice "
                                     f"{row['choice']} with {row['shown_as_A']!r} shown as A (edited by hand?)")
            key = (row["listener"], row["page"], row["trial"])
            if key not in latest or row["timestamp"] >= latest[key]["timestamp"]:
                latest[key] = dict(row)
    return list(latest.values())


def _csv_rows(path: Path) -> tuple[list[str], list[dict]] | None:
    """(header, rows) of a CSV file, None when it is empty; rows with a missing field have it as ''."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, restval="")
        if reader.fieldnames is None:
            return None
        return list(reader.fieldnames), list(reader)


def preference_table(csv_paths: Iterable[str | Path], by: Sequence[str] = (), level: float = 0.95) -> list[dict]:
    """Per arm pair (and per the CSV columns ``by``, e.g. ``("p",)``): counts, shares and intervals.

    Columns: ``arm_x, arm_y`` (+ ``by``), ``n`` (ratings), ``n_listeners``, ``n_x, n_y, n_tie``; for each of
    ``x, y, tie`` the share ``share_<o>`` with its Wilson interval ``share_<o>_lo, share_<o>_hi``; and ``net``
    (mean over listeners of share_x - share_y) with ``net_ci`` (t half-width), ``net_n`` (listeners), ``net_df``.
    """
    from gradtts.report.stats import t_interval

    bad = [c for c in by if c not in CSV_COLUMNS]
    if bad:
        raise ListeningError(f"--by {' '.join(bad)}: not a ratings column ({', '.join(CSV_COLUMNS)})")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in read_ratings(csv_paths):
        groups[(r["arm_x"], r["arm_y"], *(r[c] for c in by))].append(r)
    out = []
    for key in sorted(groups):
        g = groups[key]
        outcome = [("x" if r["preferred"] == r["arm_x"] else "y") if r["choice"] != "none" else "tie" for r in g]
        counts = {o: outcome.count(o) for o in ("x", "y", "tie")}
        row = {"arm_x": key[0], "arm_y": key[1], **dict(zip(by, key[2:])), "n": len(g),
               "n_listeners": len({r["listener"] for r in g}), **{f"n_{o}": k for o, k in counts.items()}}
        for o, k in counts.items():
            lo, hi = wilson_interval(k, len(g), level)
            row.update({f"share_{o}": k / len(g), f"share_{o}_lo": lo, f"share_{o}_hi": hi})
        per_listener: dict[str, list[int]] = defaultdict(list)
        for r, o in zip(g, outcome):
            per_listener[r["listener"]].append({"x": 1, "y": -1, "tie": 0}[o])
        net = t_interval([sum(v) / len(v) for _, v in sorted(per_listener.items())], level)
        row.update({"net": net.mean, "net_ci": net.half, "net_n": net.n, "net_df": net.df})
        out.append(row)
    return out


def _share(row: dict, o: str) -> str:
    return f"{row[f'share_{o}']:.2f} [{row[f'share_{o}_lo']:.2f}, {row[f'share_{o}_hi']:.2f}] ({row[f'n_{o}']})"


def preference_markdown(rows: Sequence[dict], by: Sequence[str] = (), level: float = 0.95) -> str:
    """The table of :func:`preference_table` in markdown, with a note saying what the intervals are."""
    from gradtts.report.tables import fmt_interval

    pct = f"{100 * level:g} %"
    head = ["arm", "vs", *by, "ratings", "listeners", "prefer arm", "prefer vs", "no preference",
            f"net preference ± {pct} (listeners)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["arm_x"], r["arm_y"], *(str(r[c]) for c in by), str(r["n"]), str(r["n_listeners"]),
                 _share(r, "x"), _share(r, "y"), _share(r, "tie"), fmt_interval(r["net"], r["net_ci"], r["net_n"])]
        lines.append("| " + " | ".join(cells) + " |")
    if not rows:
        lines.append("| (no ratings) |" + " |" * (len(head) - 1))
    note = (f"\nShares of the ratings (count in parentheses) with {pct} Wilson score intervals, which treat "
            "ratings as independent (too narrow when few listeners give many ratings). Net preference: per "
            "listener the share preferring the arm minus the share preferring the other, no preference counting "
            f"0, averaged over listeners with a {pct} t-interval over listeners (df = listeners − 1). A trial "
            "rated twice by one listener counts once (the latest choice).\n")
    return "\n".join(lines) + "\n" + note
