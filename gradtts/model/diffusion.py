"""The Grad-TTS diffusion: forward SDE, reverse SDE / probability-flow ODE (Euler), and the score loss.

dx_t = 1/2 (mu - x_t) beta_t dt + sqrt(beta_t) dW_t, beta_t = beta_min + t (beta_max - beta_min).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from gradtts.model.unet import GradLogPEstimator2d

#: ``score_loss(residual, t) -> rho`` maps the residual a = sigma_t * score + z ``[B, F, T]`` and the
#: diffusion times ``[B]`` to the element-wise loss; None means the official a**2.
ScoreLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: ``noise(shape, mask) -> eps`` draws the standard normal noise of sampling, ``[B, n_feats, T]`` for the
#: frame mask ``[B, 1, T]`` (on any device and dtype: it is moved to the model's). None means ``torch.randn``
#: on the global generator, as in the official code. See :class:`gradtts.model.inference.SeededNoise`.
NoiseSource = Callable[[torch.Size, torch.Tensor], torch.Tensor]


def beta(t: torch.Tensor | float, beta_min: float, beta_max: float) -> torch.Tensor | float:
    """Noise rate beta_t."""
    return beta_min + (beta_max - beta_min) * t


def beta_integral(t: torch.Tensor | float, beta_min: float, beta_max: float) -> torch.Tensor | float:
    """Integral of beta over [0, t]."""
    return beta_min * t + 0.5 * (beta_max - beta_min) * (t ** 2)


class Diffusion(nn.Module):
    def __init__(self, n_feats: int, dim: int, n_spks: int = 1, spk_emb_dim: int = 64, beta_min: float = 0.05,
                 beta_max: float = 20.0, pe_scale: float = 1000):
        super().__init__()
        self.n_feats = n_feats
        self.beta_min = beta_min
        self.beta_max = beta_max
        self.estimator = GradLogPEstimator2d(dim, n_spks=n_spks, spk_emb_dim=spk_emb_dim, pe_scale=pe_scale)

    def noise_std(self, t: torch.Tensor) -> torch.Tensor:
        """sigma_t = sqrt(1 - exp(-integral of beta)), the std of x_t given x_0."""
        return torch.sqrt(1.0 - torch.exp(-beta_integral(t, self.beta_min, self.beta_max)))

    def forward_diffusion(self, x0: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor, t: torch.Tensor):
        """Sample x_t | x_0; returns ``(x_t * mask, z * mask)`` with the standard normal draw z."""
        cum = beta_integral(t.unsqueeze(-1).unsqueeze(-1), self.beta_min, self.beta_max)
        mean = x0 * torch.exp(-0.5 * cum) + mu * (1.0 - torch.exp(-0.5 * cum))
        variance = 1.0 - torch.exp(-cum)
        z = torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, requires_grad=False)
        xt = mean + z * torch.sqrt(variance)
        return xt * mask, z * mask

    @torch.no_grad()
    def reverse_diffusion(self, z: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor, n_timesteps: int,
                          stoc: bool = False, spk: torch.Tensor | None = None,
                          noise: NoiseSource | None = None) -> torch.Tensor:
        """Euler integration from t = 1 to 0 in ``n_timesteps`` uniform steps, evaluated at mid-points.

        ``stoc=False`` follows the probability-flow ODE, ``stoc=True`` the reverse SDE, whose step noise
        comes from ``noise`` (one draw per step; default the global ``torch.randn``).
        """
        h = 1.0 / n_timesteps
        xt = z * mask
        for i in range(n_timesteps):
            t = (1.0 - (i + 0.5) * h) * torch.ones(z.shape[0], dtype=z.dtype, device=z.device)
            beta_t = beta(t.unsqueeze(-1).unsqueeze(-1), self.beta_min, self.beta_max)
            score = self.estimator(xt, mask, mu, t, spk)
            if stoc:
                drift = (0.5 * (mu - xt) - score) * beta_t * h
                eps = (torch.randn(z.shape, dtype=z.dtype, device=z.device) if noise is None
                       else noise(z.shape, mask).to(z))
                dxt = drift + eps * torch.sqrt(beta_t * h)
            else:
                dxt = 0.5 * (mu - xt - score) * beta_t * h
            xt = (xt - dxt) * mask
        return xt

    @torch.no_grad()
    def forward(self, z, mask, mu, n_timesteps, stoc=False, spk=None, noise: NoiseSource | None = None):
        return self.reverse_diffusion(z, mask, mu, n_timesteps, stoc, spk, noise)

    def loss_t(self, x0: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor, t: torch.Tensor,
               spk: torch.Tensor | None = None, score_loss: ScoreLoss | None = None,
               return_per_utt: bool = False):
        """Score-matching loss at given times.

        Returns ``(loss, x_t)``, or ``(loss, x_t, per_utt)`` with each utterance's own normalised loss
        (detached) when ``return_per_utt``. The loss is sum(rho(a) * mask) / (sum(mask) * n_feats).
        """
        xt, z = self.forward_diffusion(x0, mask, mu, t)
        sigma = self.noise_std(t.unsqueeze(-1).unsqueeze(-1))
        residual = self.estimator(xt, mask, mu, t, spk) * sigma + z
        rho = residual ** 2 if score_loss is None else score_loss(residual, t) * mask
        loss = torch.sum(rho) / (torch.sum(mask) * self.n_feats)
        if not return_per_utt:
            return loss, xt
        per_utt = rho.detach().sum(dim=(1, 2)) / (mask.sum(dim=(1, 2)) * self.n_feats)
        return loss, xt, per_utt

    def compute_loss(self, x0: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor,
                     spk: torch.Tensor | None = None, offset: float = 1e-5, score_loss: ScoreLoss | None = None,
                     return_per_utt: bool = False):
        """Draw one t ~ U(offset, 1 - offset) per utterance and return :meth:`loss_t`."""
        t = torch.rand(x0.shape[0], dtype=x0.dtype, device=x0.device, requires_grad=False)
        t = torch.clamp(t, offset, 1.0 - offset)
        return self.loss_t(x0, mask, mu, t, spk, score_loss=score_loss, return_per_utt=return_per_utt)
