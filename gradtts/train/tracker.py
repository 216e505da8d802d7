"""Per-utterance residual tracking during fine-tuning: which few-shot clips does the model find odd?

Every time an utterance is in a batch its mean squared residual a^2 = (sigma_t s + z)^2 over its
decoder segment is added (whatever the training loss), and so is its mean training loss rho. The
table ranks utterances by running mean a^2, largest first, with the manifest's ``corrupt`` flag, so a
user can see whether the intruders rank on top. t is drawn at random per visit, so the means settle
only after several visits per clip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from gradtts.io import atomic_open


class UtteranceTracker:
    """Running sums per utterance: squared residual, loss, visits."""

    def __init__(self, utts: Sequence[str], spks: Sequence[str], corrupt: Sequence[bool]):
        self.utts, self.spks, self.corrupt = list(utts), list(spks), [bool(c) for c in corrupt]
        self.sq = [0.0] * len(self.utts)
        self.loss = [0.0] * len(self.utts)
        self.count = [0] * len(self.utts)

    def update(self, indices: Sequence[int], sq: Sequence[float], loss: Sequence[float]) -> None:
        for i, s, v in zip(indices, sq, loss):
            self.sq[i] += float(s)
            self.loss[i] += float(v)
            self.count[i] += 1

    def state_dict(self) -> dict[str, Any]:
        return {"utts": list(self.utts), "sq": list(self.sq), "loss": list(self.loss), "count": list(self.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["utts"]) != self.utts:
            raise ValueError("the checkpoint's tracked utterances differ from the manifest's: resume with the "
                             "same data.feats_dir, or start a new trainer.out_dir")
        self.sq, self.loss, self.count = list(state["sq"]), list(state["loss"]), [int(c) for c in state["count"]]

    def ranking(self) -> list[dict[str, Any]]:
        rows = [{"utt": u, "spk": s, "corrupt": c, "visits": n,
                 "mean_sq_residual": (q / n if n else float("nan")), "mean_loss": (v / n if n else float("nan"))}
                for u, s, c, q, v, n in zip(self.utts, self.spks, self.corrupt, self.sq, self.loss, self.count)]
        rows.sort(key=lambda r: (r["visits"] == 0, -(r["mean_sq_residual"] if r["visits"] else 0.0), r["utt"]))
        for rank, r in enumerate(rows, 1):
            r["rank"] = rank
        return rows

    def write_tsv(self, path: str | Path) -> None:
        """Ranked table: rank, utt, spk, corrupt (0/1), visits, mean_sq_residual, mean_loss."""
        with atomic_open(path) as f:
            f.write("rank\tutt\tspk\tcorrupt\tvisits\tmean_sq_residual\tmean_loss\n")
            for r in self.ranking():
                f.write(f"{r['rank']}\t{r['utt']}\t{r['spk']}\t{int(r['corrupt'])}\t{r['visits']}\t"
                        f"{r['mean_sq_residual']:.6g}\t{r['mean_loss']:.6g}\n")
