"""The base model's voice-ID curve: own-voice similarity, margin and top-1 against training steps.

    python egs/synthvox/local/base_curve.py egs/synthvox/base/voiceid/curve.tsv egs/synthvox/base/voiceid_curve.png
    python egs/synthvox/local/base_curve.py CURVE_TSV --add STEP VOICEID_JSON   # append a measurement, then plot

CURVE_TSV has one row per measured checkpoint (``step  s_own  s_other  margin  top1  n_voices``), the numbers
``python -m gradtts.scoring.voiceid`` prints for it; ``--add`` takes them from its ``voiceid.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

COLUMNS = ("step", "s_own", "s_other", "margin", "top1", "n_voices")


def read_curve(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f, delimiter="\t")]


def row_from_voiceid(step: int, result: dict) -> dict[str, float]:
    """One curve row from what ``voiceid.json`` holds (its ``generated`` block)."""
    g = result["generated"]
    return {"step": step, "s_own": g["S_own"], "s_other": g["S_other"], "margin": g["margin"],
            "top1": round(g["top1_voice"] * g["n_voices"]), "n_voices": g["n_voices"]}


def write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    rows = sorted({int(r["step"]): r for r in rows}.values(), key=lambda r: r["step"])
    lines = ["\t".join(COLUMNS)] + ["\t".join(f"{r[k]:g}" if k in ("step", "top1", "n_voices") else f"{r[k]:.4f}"
                                              for k in COLUMNS) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict[str, float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(steps, [r["s_own"] for r in rows], "o-", label="S_own (own voice)")
    a.plot(steps, [r["s_other"] for r in rows], "s--", label="S_other (other voices)")
    a.plot(steps, [r["margin"] for r in rows], "^-", label="margin")
    a.set_xlabel("training step")
    a.set_ylabel("GE2E cosine")
    a.legend(fontsize=8)
    b.plot(steps, [100 * r["top1"] / r["n_voices"] for r in rows], "o-")
    b.set_xlabel("training step")
    b.set_ylabel("top-1 voice ID (%)")
    b.set_ylim(0, 100)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("curve", type=Path)
    p.add_argument("png", type=Path, nargs="?")
    p.add_argument("--add", nargs=2, metavar=("STEP", "VOICEID_JSON"))
    a = p.parse_args(argv)
    rows = read_curve(a.curve) if a.curve.is_file() else []
    if a.add:
        rows.append(row_from_voiceid(int(a.add[0]), json.loads(Path(a.add[1]).read_text())))
        write_curve(a.curve, rows)
    if a.png:
        plot(read_curve(a.curve), a.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
