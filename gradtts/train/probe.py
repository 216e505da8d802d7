"""Score residuals of a model on a few-shot set at fixed diffusion times, with seeded noise.

The trainer's own residual table (:mod:`gradtts.train.tracker`) sums residuals at whatever t each visit
drew, so a clip's mean mixes its oddness with its luck in t (the residual's size depends strongly on t).
Here every clip is scored at the same times ``t_values``, on its whole utterance, with noise drawn from a
seeded generator, and nothing touches the training random streams. Two users:

- the adaptive δ rule (:func:`adaptive_delta`): a quantile of the per-element |residual| of the
  starting model, fixed before training;
- the residual filter (:mod:`gradtts.train.filters`): each clip's mean squared residual at each t, divided
  by the median over clips at that t, then averaged over t (large = the model finds the clip odd).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from gradtts.model import GradTTS
from gradtts.model.masks import sequence_mask
from gradtts.train.data import MelDataset, collate

#: The diffusion times of a probe when the config does not give them: spread over (0, 1) like training's t.
DEFAULT_T = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass
class ProbeResult:
    """``msr[i, k]``: clip i's mean squared residual at ``t_values[k]``; ``abs_residuals``: every masked element."""

    utts: list[str]
    t_values: list[float]
    msr: np.ndarray
    abs_residuals: np.ndarray

    def clip_scores(self) -> np.ndarray:
        """Each clip's residual relative to the other clips: mean over t of msr / median over clips of msr."""
        med = np.median(self.msr, axis=0, keepdims=True)
        return (self.msr / np.maximum(med, 1e-12)).mean(axis=1)


@torch.no_grad()
def probe_residuals(model: GradTTS, dataset: MelDataset, t_values: Sequence[float] = DEFAULT_T, seed: int = 0,
                    batch_size: int = 8) -> ProbeResult:
    """Residuals ``a = sigma_t s(x_t) + z`` of every clip of ``dataset`` at each t, the model in eval mode.

    Batches are made in dataset order; the noise of time k comes from ``seed`` and k only, so two models
    probed on the same set see the same draws. The model's train/eval mode and the global random state
    are restored.
    """
    if not t_values or not all(0 < float(t) < 1 for t in t_values):
        raise ValueError(f"probe times must lie in (0, 1), got {list(t_values)}")
    was_training = model.training
    model.eval()
    dev = model.device
    n = len(dataset)
    msr = np.zeros((n, len(t_values)), dtype=np.float64)
    chunks: list[np.ndarray] = []
    utts = [it.utt for it in dataset.items]
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            for start in range(0, n, batch_size):
                batch = collate([dataset[i] for i in range(start, min(n, start + batch_size))])
                x, xl = batch["x"].to(dev), batch["x_lengths"].to(dev)
                y, yl = batch["y"].to(dev), batch["y_lengths"].to(dev)
                spk = model._speaker(batch["spk"].to(dev) if model.n_spks > 1 else None)
                mu_x, _, x_mask = model.encoder(x, xl, spk)
                y_mask = sequence_mask(yl, y.shape[-1]).unsqueeze(1).to(x_mask)
                attn = model.align(mu_x, x_mask, y, y_mask)
                mu_y = torch.matmul(attn.squeeze(1).transpose(1, 2), mu_x.transpose(1, 2)).transpose(1, 2)
                dec = model.decoder
                for k, t in enumerate(t_values):
                    torch.manual_seed(int(seed) * 1_000_003 + 7919 * k + start)
                    tt = torch.full((y.shape[0],), float(t), dtype=y.dtype, device=dev)
                    xt, z = dec.forward_diffusion(y, y_mask, mu_y, tt)
                    sigma = dec.noise_std(tt.unsqueeze(-1).unsqueeze(-1))
                    a = (dec.estimator(xt, y_mask, mu_y, tt, spk) * sigma + z) * y_mask
                    count = y_mask.sum(dim=(1, 2)) * model.n_feats
                    msr[start:start + y.shape[0], k] = ((a * a).sum(dim=(1, 2)) / count).double().cpu().numpy()
                    keep = y_mask.expand_as(a).bool()
                    chunks.append(a[keep].abs().float().cpu().numpy())
    finally:
        model.train(was_training)
    return ProbeResult(utts, [float(t) for t in t_values], msr, np.concatenate(chunks) if chunks else np.zeros(0))


def adaptive_delta(abs_residuals: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of the |residual| elements: δ such that that share of elements lies in the quadratic zone."""
    if not 0 < quantile < 1:
        raise ValueError(f"loss.quantile must lie in (0, 1), got {quantile}")
    if abs_residuals.size == 0:
        raise ValueError("no residual elements to take a quantile of (empty few-shot set?)")
    return float(np.quantile(abs_residuals.astype(np.float64), quantile))
