"""Filter-then-train baselines: drop the few-shot clips that look foreign, then fine-tune on the rest.

A reviewer's first question to a robust loss: why not remove the bad clips and keep L2? Two filters
answer it (``filter=residual`` / ``filter=embedding``), each dropping the ``filter.drop`` share of clips
it finds most foreign:

- ``residual``: a short fine-tuning pass (``filter.probe_steps`` steps of L2 from the same starting model,
  seed and batches as the run) adapts to the set; then every clip is scored by its score residual at fixed
  diffusion times relative to the other clips (:mod:`gradtts.train.probe`), and the largest are dropped;
- ``embedding``: every clip's speaker embedding (``filter.encoder``) is compared with the set's robust
  centroid (mean of the half of the clips nearest the coordinate-wise median), and the farthest are dropped.
  Scoring the result with the same encoder is circular; the run records which encoder filtered.

The choice is written to ``<out_dir>/filter.json`` with the run's identity and reused when the run is
resumed; the run's ``run.json`` carries its summary (clips kept, intruders removed).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gradtts.data.manifest import Manifest, ManifestEntry, ManifestError
from gradtts.errors import UserError
from gradtts.io import atomic_write_text
from gradtts.train.config import FILTERS

log = logging.getLogger(__name__)

FILTER_FILE = "filter.json"
PROBE_DIR = "filter_probe"


class FilterError(UserError, ValueError):
    """A filter that cannot run on this set (no audio for the embedding filter, nothing left to train on)."""


@dataclass
class FilterResult:
    """Which clips a filter kept, and how it scored them (larger score = more foreign)."""

    method: str
    kept: list[str]
    dropped: list[str]
    scores: dict[str, float]
    corrupt: dict[str, bool]
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What ``run.json`` records: counts, the dropped clips, intruders removed and kept."""
        removed = [u for u in self.dropped if self.corrupt.get(u)]
        return {"method": self.method, "n_in": len(self.kept) + len(self.dropped), "n_kept": len(self.kept),
                "dropped": list(self.dropped), "intruders_in": sum(self.corrupt.values()),
                "intruders_removed": len(removed), "intruders_kept": sum(1 for u in self.kept if self.corrupt.get(u)),
                **{k: v for k, v in self.details.items() if not isinstance(v, (list, dict))}}


def n_to_drop(n: int, drop: float) -> int:
    """round(drop * n) clips, at least one kept."""
    if not 0 <= drop < 1:
        raise ValueError(f"filter.drop must lie in [0, 1), got {drop}")
    return min(n - 1, int(math.floor(drop * n + 0.5)))


def choose(method: str, items: Sequence[ManifestEntry], scores: Sequence[float], drop: float,
           details: dict[str, Any] | None = None) -> FilterResult:
    """Drop the ``drop`` share with the largest scores (ties broken by utterance id, so the choice is stable)."""
    if len(items) != len(scores):
        raise ValueError("one score per clip")
    order = sorted(range(len(items)), key=lambda i: (-float(scores[i]), items[i].utt))
    k = n_to_drop(len(items), drop)
    dropped = {items[i].utt for i in order[:k]}
    return FilterResult(method, [it.utt for it in items if it.utt not in dropped],
                        [items[i].utt for i in order[:k]], {it.utt: float(s) for it, s in zip(items, scores)},
                        {it.utt: bool(it.corrupt) for it in items}, dict(details or {}))


# ---- embedding -----------------------------------------------------------------------------------------------
def robust_centroid(embeddings: np.ndarray) -> np.ndarray:
    """Unit mean of the half of the (normalised) rows nearest their coordinate-wise median: a minority of
    foreign clips moves it little, unlike the plain mean."""
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    med = np.median(e, axis=0)
    med /= np.linalg.norm(med)
    near = np.argsort(-(e @ med))[:max(1, (len(e) + 1) // 2)]
    c = e[near].mean(0)
    return c / np.linalg.norm(c)


def clip_wavs(manifest: Manifest) -> dict[str, str]:
    """utt -> audio path, from the data dir the features were made from (``meta.json``'s ``data_dir``)."""
    from gradtts.data.datadir import read_datadir

    data_dir = manifest.meta.get("data_dir")
    if not data_dir or not Path(data_dir).is_dir():
        raise FilterError(f"{manifest.root}/meta.json: the embedding filter needs the clips' audio, but the data "
                          f"dir the features were made from ({data_dir!r}) is not there; re-run the feature stage "
                          "or use filter=residual")
    wavs = read_datadir(data_dir, check=False).wavs
    missing = [it.utt for it in manifest.items if it.utt not in wavs]
    if missing:
        raise FilterError(f"{data_dir}/wav.scp has no audio for {len(missing)} clips of {manifest.root} "
                          f"(e.g. {missing[0]}); the features and the data dir disagree, re-run the feature stage")
    return wavs


def embedding_filter(manifest: Manifest, items: Sequence[ManifestEntry], drop: float, encoder: str,
                     source: str | None = None, device: str = "cpu") -> FilterResult:
    """Drop the clips whose embedding is least similar to the set's robust centroid."""
    from gradtts.scoring.encoders import load_speaker_encoder

    wavs = clip_wavs(manifest)
    enc = load_speaker_encoder(encoder, source, device=device)
    emb = enc.embed_files([wavs[it.utt] for it in items])
    cos = emb.astype(np.float64) @ robust_centroid(emb) / np.linalg.norm(emb, axis=1)
    return choose("embedding", items, [-c for c in cos], drop,
                  {"encoder": encoder, "encoder_key": enc.cache_key,
                   "cosine": {it.utt: float(c) for it, c in zip(items, cos)}})


# ---- residual ------------------------------------------------------------------------------------------------
def probe_config(cfg: DictConfig) -> DictConfig:
    """The short L2 pass of the residual filter: the run's config with L2, no filter, its own directory."""
    from gradtts.train.config import TrainConfig

    # Only the trainer's own fields: a grid job's extra keys (study.*) would not pass the schema.
    fields = set(TrainConfig.__dataclass_fields__)
    probe = OmegaConf.create({k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k in fields})
    fc = cfg.filter
    probe.loss = {"name": "l2"}
    probe.filter = {"name": "none"}
    tc = probe.trainer
    tc.out_dir = str(Path(cfg.trainer.out_dir) / PROBE_DIR)
    tc.max_steps, tc.save_steps, tc.save_every, tc.keep_last = int(fc.probe_steps), [], 0, 1
    tc.tensorboard, tc.sample_every, tc.track_utts = False, 0, True
    return probe


def residual_filter(cfg: DictConfig, items: Sequence[ManifestEntry], train_fn: Callable[[DictConfig], dict],
                    device: str = "cpu") -> FilterResult:
    """Run the probe pass (``train_fn`` trains a config and returns its summary), then rank by residual."""
    from gradtts.model.checkpoint import load_checkpoint
    from gradtts.train.data import MelDataset
    from gradtts.train.probe import probe_residuals

    fc = cfg.filter
    if int(fc.probe_steps) < 1:
        raise ValueError(f"filter.probe_steps must be >= 1 for filter=residual, got {fc.probe_steps}")
    summary = train_fn(probe_config(cfg))
    ckpt = Path(summary["checkpoints"][-1])
    model, info = load_checkpoint(ckpt, device=device)
    probed = probe_residuals(model, MelDataset(list(items), dict(info.spk2id), model.n_feats),
                             list(fc.probe_t), seed=int(cfg.trainer.seed))
    scores = probed.clip_scores()
    # The probe's weights are only a means to the ranking; its residual table and log stay.
    shutil.rmtree(ckpt.parent, ignore_errors=True)
    return choose("residual", items, scores, float(fc.drop),
                  {"probe_steps": int(fc.probe_steps), "probe_t": [float(t) for t in fc.probe_t]})


# ---- the stage -----------------------------------------------------------------------------------------------
def run_filter(cfg: DictConfig, manifest: Manifest, items: Sequence[ManifestEntry], identity: dict[str, Any],
               train_fn: Callable[[DictConfig], dict], device: str = "cpu", is_main: bool = True
               ) -> FilterResult | None:
    """The filter of ``cfg.filter`` (None for ``none``), reused from ``filter.json`` when its identity matches."""
    fc = cfg.filter
    if fc.name not in FILTERS:
        raise ValueError(f"filter.name={fc.name!r}: choose one of {', '.join(FILTERS)}")
    if fc.name == "none":
        return None
    out = Path(cfg.trainer.out_dir) / FILTER_FILE
    if out.is_file():
        stored = json.loads(out.read_text(encoding="utf-8"))
        if stored.get("identity") == identity:
            res = FilterResult(**stored["result"])
            log.info("filter: reusing %s (%d of %d clips kept)", out, len(res.kept), len(items))
            return res
        log.warning("%s was written for another run; filtering again", out)
    if fc.name == "embedding":
        res = embedding_filter(manifest, items, float(fc.drop), str(fc.encoder), fc.encoder_source, device)
    else:
        res = residual_filter(cfg, items, train_fn, device)
    if not res.kept:
        raise FilterError(f"{manifest.root}: filter={fc.name} left no clip to train on")
    s = res.summary()
    log.info("filter=%s dropped %d of %d clips (%d of %d intruders): %s", fc.name, len(res.dropped), s["n_in"],
             s["intruders_removed"], s["intruders_in"], ", ".join(res.dropped))
    if is_main:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps({"identity": identity, "result": asdict(res)}, indent=1) + "\n")
    return res


def kept_items(items: Sequence[ManifestEntry], result: FilterResult | None) -> list[ManifestEntry]:
    """The items a filter kept, in manifest order."""
    if result is None:
        return list(items)
    keep = set(result.kept)
    unknown = keep - {it.utt for it in items}
    if unknown:
        raise ManifestError(f"the filter kept clips the manifest does not have: {sorted(unknown)[:3]}")
    return [it for it in items if it.utt in keep]
