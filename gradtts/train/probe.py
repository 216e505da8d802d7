"""Score residuals of a model on a few-shot set at fixed diffusion times, with seeded noise.

The trainer's own residual table (:mod:`gradtts.train.tracker`) sums residuals at whatever t each visit
drew, so a clip's mean mixes its oddness with its luck in t (the residual's size depends strongly on t).
Here every clip is scored at the same times ``t_values``, on its whole utterance, with noise drawn from a
seeded generator, and nothing touches the training random streams. Three users:

- the adaptive δ rule (:func:`adaptive_delta`): a quantile of the per-element |residual| of the
  starting model, fixed before training;
- the reweighted L2 arm (:func:`matched_weights`): at each t of :data:`REWEIGHT_T`, the ratio of the matched
  loss's mean |gradient| to L2's over the starting model's residual elements, fixed before training;
- the residual filter (:mod:`gradtts.train.filters`): each clip's mean squared residual at each t, divided
  by the median over clips at that t, then averaged over t (large = the model finds the clip odd).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from gradtts.losses import ScoreLoss
from gradtts.model import GradTTS
from gradtts.model.masks import sequence_mask
from gradtts.train.data import MelDataset, collate

#: The diffusion times of a probe when the config does not give them: spread over (0, 1) like training's t.
DEFAULT_T = (0.1, 0.3, 0.5, 0.7, 0.9)
#: The probe times of the reweighted L2 arm's w(t) table. Denser than DEFAULT_T and close to both ends because
#: w is interpolated linearly between them and held constant beyond them, and training draws t from all of (0, 1).
REWEIGHT_T = (0.01, *(round(0.05 * k, 2) for k in range(1, 20)), 0.99)


@dataclass
class ProbeResult:
    """``msr[i, k]``: clip i's mean squared residual at ``t_values[k]``; ``abs_residuals``: every masked element,
    probed at ``t_values[t_index[j]]`` (element j)."""

    utts: list[str]
    t_values: list[float]
    msr: np.ndarray
    abs_residuals: np.ndarray
    t_index: np.ndarray | None = None

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
    where: list[np.ndarray] = []
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
                    where.append(np.full(chunks[-1].size, k, dtype=np.int16))
    finally:
        model.train(was_training)
    return ProbeResult(utts, [float(t) for t in t_values], msr, np.concatenate(chunks) if chunks else np.zeros(0),
                       np.concatenate(where) if where else np.zeros(0, dtype=np.int16))


def adaptive_delta(abs_residuals: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of the |residual| elements: δ such that that share of elements lies in the quadratic zone."""
    if not 0 < quantile < 1:
        raise ValueError(f"loss.quantile must lie in (0, 1), got {quantile}")
    if abs_residuals.size == 0:
        raise ValueError("no residual elements to take a quantile of (empty few-shot set?)")
    return float(np.quantile(abs_residuals.astype(np.float64), quantile))


def gradient_ratio(loss: ScoreLoss, abs_residuals: np.ndarray, t: float) -> float:
    """E|rho'_t(a)| / E|2 a| over the elements: ``loss``'s mean gradient magnitude relative to L2's at time t.

    rho' is the autograd derivative of ``loss`` itself (float64), so it is the loss exactly as training uses
    it; |a| stands for a since rho' is odd in a for every loss here.
    """
    a = torch.as_tensor(np.asarray(abs_residuals, dtype=np.float64)).reshape(1, -1).requires_grad_(True)
    if a.numel() == 0:
        raise ValueError(f"no residual elements at t={t:g} to measure the gradient ratio on (empty few-shot set?)")
    loss(a, torch.tensor([float(t)], dtype=torch.float64)).sum().backward()
    l2_mean = float((2.0 * a.detach()).mean())
    if not l2_mean > 0:
        raise ValueError(f"every residual element at t={t:g} is 0: the gradient ratio is undefined")
    return float(a.grad.abs().mean()) / l2_mean


def matched_weights(probed: ProbeResult, loss: ScoreLoss) -> list[float]:
    """w(t_k) = :func:`gradient_ratio` of ``loss`` on the elements probed at each ``probed.t_values[k]``."""
    if probed.t_index is None:
        raise ValueError("the probe result has no per-element times (t_index): probe with probe_residuals")
    return [gradient_ratio(loss, probed.abs_residuals[probed.t_index == k], t) for k, t in enumerate(probed.t_values)]


def reweight_record(model: GradTTS, dataset: MelDataset, matched: ScoreLoss, seed: int,
                    t_values: Sequence[float] = REWEIGHT_T) -> dict[str, Any]:
    """The reweighted L2 arm's ``run.json`` record: w(t) on ``t_values`` for ``matched``, probed with ``seed``."""
    probed = probe_residuals(model, dataset, t_values, seed=seed)
    return {"matched": repr(matched), "probe_t": [float(t) for t in t_values], "seed": int(seed),
            "weights": matched_weights(probed, matched), "n_elements": int(probed.abs_residuals.size)}
