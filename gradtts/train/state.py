"""Training state on disk: RNG snapshots and the checkpoint directory (atomic saves, resume, pruning).

A training checkpoint is our model checkpoint (``gradtts.model.checkpoint.checkpoint_payload``)
with extras: ``optimizer``, ``scheduler``, ``rng`` (one snapshot per rank), ``sampler`` (epoch and
batches consumed), ``tracker``, ``train`` (the resolved config) and ``n_base_spks``. Every value is
a tensor or plain Python data so that ``torch.load(weights_only=True)`` reads it.

A step exists when its ``step_<7-digit step>.pt`` does: the checkpoint is written (renamed into place) last
and deleted first, and its companions (``.yaml`` config, ``.residuals.tsv``) without it are removed
when the directory is opened, so a crash never leaves a visible config of a checkpoint that is not there.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gradtts.io import atomic_path, atomic_write_text, remove_stale_temps

log = logging.getLogger(__name__)

_STEP_FILE = re.compile(r"^step_(\d{7,})\.pt$")
# Files that belong to one checkpoint and mean nothing without it.
_COMPANION_FILE = re.compile(r"^(step_\d{7,})\.(yaml|residuals\.tsv|voice\.pt)$")
COMPANION_SUFFIXES = (".yaml", ".residuals.tsv", ".voice.pt")


def step_name(step: int) -> str:
    return f"step_{step:07d}"


def rng_snapshot() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python ``random`` states as weights-only-loadable data."""
    np_state = np.random.get_state(legacy=False)
    snap = {"torch": torch.get_rng_state(),
            "numpy": {"bit_generator": np_state["bit_generator"],
                      "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                      "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                      "gauss": float(np_state["gauss"])},
            "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        snap["cuda"] = torch.cuda.get_rng_state_all()
    return snap


def rng_restore(snap: dict[str, Any]) -> None:
    """Inverse of :func:`rng_snapshot`."""
    torch.set_rng_state(snap["torch"])
    npd = snap["numpy"]
    np.random.set_state({"bit_generator": npd["bit_generator"],
                         "state": {"key": npd["key"].numpy().astype(np.uint32), "pos": npd["pos"]},
                         "has_gauss": npd["has_gauss"], "gauss": npd["gauss"]})
    version, state, gauss = snap["python"]
    random.setstate((version, tuple(state), gauss))
    if "cuda" in snap and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(snap["cuda"])


def _is_rank_zero() -> bool:
    """True unless this is a non-zero rank of an initialised process group (one rank cleans shared dirs)."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class CheckpointDir:
    """``ckpt/step_<7-digit step>.pt`` (+ ``.yaml`` config beside it) with pruning of old resume points.

    Opening it deletes what a killed save or prune left: partial checkpoints (temporary files) and
    configs / residual tables whose checkpoint is missing, unless ``remove_temps`` is false; under
    data-parallel training only rank 0 does so.
    """

    def __init__(self, root: str | Path, keep_steps: list[int] | tuple[int, ...] = (), keep_last: int = 1,
                 remove_temps: bool = True):
        self.root = Path(root)
        self.keep_steps = set(int(s) for s in keep_steps)
        self.keep_last = max(1, keep_last)
        if remove_temps and _is_rank_zero():
            # A kill during a save leaves a full-size temporary file that no later save replaces.
            n = remove_stale_temps(self.root, recursive=False)
            if n:
                log.warning("removed %d partial checkpoint file(s) left by an interrupted save in %s", n, self.root)
            orphans = self._remove_orphans()
            if orphans:
                log.warning("removed %s in %s: left without their checkpoint by an interrupted save or prune",
                            ", ".join(orphans), self.root)

    def path(self, step: int) -> Path:
        return self.root / f"{step_name(step)}.pt"

    def steps(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.root.iterdir() if (m := _STEP_FILE.match(p.name)))

    def latest(self) -> Path | None:
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def _remove_orphans(self) -> list[str]:
        """Delete ``step_*.yaml`` / ``step_*.residuals.tsv`` whose ``step_*.pt`` is missing; returns their names."""
        if not self.root.is_dir():
            return []
        removed = []
        for p in sorted(self.root.iterdir()):
            m = _COMPANION_FILE.match(p.name)
            if m and p.is_file() and not (self.root / f"{m.group(1)}.pt").exists():
                p.unlink(missing_ok=True)
                removed.append(p.name)
        return removed

    def save(self, step: int, payload: dict[str, Any], config_yaml: str | None = None) -> Path:
        """Write the checkpoint and its config atomically, then prune; returns the checkpoint path.

        Both are complete in temporary files before either becomes visible; the config is renamed into
        place just before the checkpoint, so a kill between the two renames leaves a config without a
        checkpoint, which the next opening removes (never a checkpoint whose config was lost).
        """
        path = self.path(step)
        yaml_path = path.with_suffix(".yaml")
        had_pt = path.exists()
        try:
            with atomic_path(path) as tmp:
                # A file object: torch's C++ writer would report a full disk without an errno.
                with open(tmp, "wb") as f:
                    torch.save(payload, f)
                if config_yaml is not None:
                    atomic_write_text(yaml_path, config_yaml)
        except BaseException:
            if config_yaml is not None and not had_pt and not path.exists():
                yaml_path.unlink(missing_ok=True)  # the checkpoint's rename failed: its config goes too
            raise
        self._prune()
        return path

    def _prune(self) -> None:
        periodic = [s for s in self.steps() if s not in self.keep_steps]
        for s in periodic[:-self.keep_last]:
            # The checkpoint first: a kill in between leaves companions that the next opening removes.
            for suffix in (".pt",) + COMPANION_SUFFIXES:
                self.path(s).with_suffix(suffix).unlink(missing_ok=True)


def load_training_state(path: str | Path) -> dict[str, Any]:
    """The whole checkpoint dict (weights-only load)."""
    return torch.load(path, map_location="cpu", weights_only=True)
