"""Compare the same fine-tunings trained in two precisions (the study's bf16 check); prints markdown.

    python egs/synthvox/local/precision_check.py egs/synthvox/results/runs.csv \
        egs/synthvox/results/bf16_check/runs.csv [--names bf16 fp32]

Both files are ``runs.csv`` of ``gradtts-report``. Rows are matched on (loss, pair, p, seed, step); R is
matched too, and ΔR of every loss against l2 is computed from both. Prints one row per matched cell and the
largest differences, next to the spread of S_T between seeds in the first file (the noise the study lives with).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict


def _rows(path: str) -> dict[tuple, dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return {(r["loss"], r["pair"], float(r["p"]), int(r["seed"]), int(r["step"])): r
                for r in csv.DictReader(f) if r["kind"] == "run"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("--names", nargs=2, default=("bf16", "fp32"))
    a = ap.parse_args(argv)
    x, y = _rows(a.first), _rows(a.second)
    keys = sorted(set(x) & set(y))
    if not keys:
        raise SystemExit("no fine-tuning is in both files")
    n1, n2 = a.names
    print(f"| loss | pair | p | seed | step | S_T {n1} | S_T {n2} | R {n1} | R {n2} |")
    print("|---|---|---|---|---|---:|---:|---:|---:|")
    d_st, d_r = [], []
    for k in keys:
        r1, r2 = x[k], y[k]
        st1, st2 = float(r1["S_T"]), float(r2["S_T"])
        d_st.append(abs(st1 - st2))
        cells = [f"{st1:.3f}", f"{st2:.3f}"]
        if r1["R"] not in ("", "nan") and r2["R"] not in ("", "nan"):
            d_r.append(float(r1["R"]) - float(r2["R"]))
            cells += [f"{float(r1['R']):+.3f}", f"{float(r2['R']):+.3f}"]
        else:
            cells += ["", ""]
        print(f"| {k[0]} | {k[1]} | {k[2]:.2f} | {k[3]} | {k[4]} | " + " | ".join(cells) + " |")
    dr = {}  # ΔR(loss, l2) per (pair, p, seed, step), in each precision
    for name, rows in ((n1, x), (n2, y)):
        for k in keys:
            if k[0] != "l2" and k[2] > 0 and ("l2",) + k[1:] in rows and rows[k]["R"] not in ("", "nan"):
                dr.setdefault(k, {})[name] = float(rows[k]["R"]) - float(rows[("l2",) + k[1:]]["R"])
    seed_sd = defaultdict(list)
    for k, r in x.items():
        seed_sd[(k[0], k[1], k[2], k[4])].append(float(r["S_T"]))
    spread = [statistics.stdev(v) for v in seed_sd.values() if len(v) > 1]
    print(f"\nmax |S_T {n1} − S_T {n2}| = {max(d_st):.3f} (mean {statistics.mean(d_st):.3f}) over {len(d_st)} cells; "
          f"mean |R {n1} − R {n2}| = {statistics.mean(abs(v) for v in d_r):.3f}" if d_r else "")
    for k, v in sorted(dr.items()):
        if len(v) == 2:
            print(f"ΔR({k[0]}, l2) at {k[1]} p={k[2]:.2f} seed {k[3]} step {k[4]}: "
                  f"{n1} {v[n1]:+.3f}, {n2} {v[n2]:+.3f}")
    if spread:
        print(f"for scale: the standard deviation of S_T between seeds of one cell in {a.first} is "
              f"{statistics.mean(spread):.3f} on average ({len(spread)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
