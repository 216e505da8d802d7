"""``GradTTS``: text encoder + duration model + diffusion decoder, with the official module tree."""

from __future__ import annotations

import math
import random
from typing import NamedTuple

import torch
from torch import nn

from gradtts.model.alignment import maximum_path
from gradtts.model.diffusion import Diffusion, NoiseSource, ScoreLoss
from gradtts.model.encoder import TextEncoder
from gradtts.model.masks import duration_loss, fix_len_compatibility, generate_path, sequence_mask

# Constructor arguments in the official order: defined once, by ModelConfig.
from gradtts.model.config import CONFIG_KEYS


class Synthesis(NamedTuple):
    """What :meth:`GradTTS.synthesize` returns; tensors are cut to the longest utterance."""

    mu_y: torch.Tensor      # encoder outputs expanded to frames [B, n_feats, T]
    mel: torch.Tensor       # decoder outputs [B, n_feats, T]
    attn: torch.Tensor      # token-to-frame alignment [B, 1, T_x, T]
    lengths: torch.Tensor   # frames of each utterance [B]


class GradTTS(nn.Module):
    def __init__(self, n_vocab: int, n_spks: int, spk_emb_dim: int, n_enc_channels: int, filter_channels: int,
                 filter_channels_dp: int, n_heads: int, n_enc_layers: int, enc_kernel: int, enc_dropout: float,
                 window_size: int | None, n_feats: int, dec_dim: int, beta_min: float, beta_max: float,
                 pe_scale: float):
        super().__init__()
        self.config = {k: v for k, v in locals().items() if k in CONFIG_KEYS}
        self.n_vocab = n_vocab
        self.n_spks = n_spks
        self.spk_emb_dim = spk_emb_dim
        self.n_feats = n_feats
        if n_spks > 1:
            self.spk_emb = nn.Embedding(n_spks, spk_emb_dim)
        self.encoder = TextEncoder(n_vocab, n_feats, n_enc_channels, filter_channels, filter_channels_dp, n_heads,
                                   n_enc_layers, enc_kernel, enc_dropout, window_size)
        self.decoder = Diffusion(n_feats, dec_dim, n_spks, spk_emb_dim, beta_min, beta_max, pe_scale)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _speaker(self, spk: torch.Tensor | None) -> torch.Tensor | None:
        if self.n_spks > 1:
            if spk is None:
                raise ValueError(f"this model has {self.n_spks} speakers: pass spk (speaker indices [B])")
            return self.spk_emb(spk.to(self.device))
        return spk

    @torch.no_grad()
    def forward(self, x: torch.Tensor, x_lengths: torch.Tensor, n_timesteps: int, temperature: float = 1.0,
                stoc: bool = False, spk: torch.Tensor | None = None, length_scale: float = 1.0,
                noise: NoiseSource | None = None):
        """Synthesise mels; returns (encoder_outputs mu_y, decoder_outputs, attn), all cut to the longest.

        The official call; :meth:`synthesize` is the same computation and also returns each utterance's length.
        """
        mu_y, mel, attn, _ = self.synthesize(x, x_lengths, n_timesteps, temperature, stoc, spk, length_scale, noise)
        return mu_y, mel, attn

    @torch.no_grad()
    def synthesize(self, x: torch.Tensor, x_lengths: torch.Tensor, n_timesteps: int, temperature: float = 1.0,
                   stoc: bool = False, spk: torch.Tensor | None = None, length_scale: float = 1.0,
                   noise: NoiseSource | None = None) -> Synthesis:
        """Durations ``ceil(exp(logw)) * length_scale``, prior sample ``mu_y + z / temperature``, then the decoder.

        ``noise`` draws z and, with ``stoc``, the noise of every reverse-SDE step; by default the global
        ``torch.randn``, as in the official code.
        """
        x, x_lengths = x.to(self.device), x_lengths.to(self.device)
        spk = self._speaker(spk)
        mu_x, logw, x_mask = self.encoder(x, x_lengths, spk)

        w_ceil = torch.ceil(torch.exp(logw) * x_mask) * length_scale
        y_lengths = torch.clamp_min(torch.sum(w_ceil, [1, 2]), 1).long()
        y_max_length = int(y_lengths.max())
        y_mask = sequence_mask(y_lengths, fix_len_compatibility(y_max_length)).unsqueeze(1).to(x_mask.dtype)
        attn_mask = x_mask.unsqueeze(-1) * y_mask.unsqueeze(2)
        attn = generate_path(w_ceil.squeeze(1), attn_mask.squeeze(1)).unsqueeze(1)

        mu_y = torch.matmul(attn.squeeze(1).transpose(1, 2), mu_x.transpose(1, 2)).transpose(1, 2)
        eps = torch.randn_like(mu_y, device=mu_y.device) if noise is None else noise(mu_y.shape, y_mask).to(mu_y)
        z = mu_y + eps / temperature
        decoded = self.decoder(z, y_mask, mu_y, n_timesteps, stoc, spk, noise)
        return Synthesis(mu_y[:, :, :y_max_length], decoded[:, :, :y_max_length], attn[:, :, :y_max_length],
                         y_lengths)

    def align(self, mu_x: torch.Tensor, x_mask: torch.Tensor, y: torch.Tensor, y_mask: torch.Tensor) -> torch.Tensor:
        """MAS alignment ``[B, T_x, T_y]`` of mels ``y`` to token means ``mu_x`` under N(mu, I)."""
        attn_mask = x_mask.unsqueeze(-1) * y_mask.unsqueeze(2)
        with torch.no_grad():
            return maximum_path(self.log_prior(mu_x, y), attn_mask.squeeze(1)).detach()

    def log_prior(self, mu_x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``log N(y_j; mu_i, I)`` for every token i and frame j: ``[B, T_x, T_y]``.

        The squared distance ``|y_j - mu_i|^2`` is expanded as ``|y_j|^2 - 2 mu_i.y_j + |mu_i|^2`` so that
        the only product over features is one batched matrix product, never a ``[B, T_x, n_feats, T_y]`` tensor.
        """
        y_norm = (y ** 2).sum(1, keepdim=True)               # [B, 1, T_y]
        mu_norm = (mu_x ** 2).sum(1).unsqueeze(-1)           # [B, T_x, 1]
        dot = torch.matmul(mu_x.transpose(1, 2), y)          # [B, T_x, T_y]
        sq_dist = y_norm - 2.0 * dot + mu_norm
        return -0.5 * sq_dist - 0.5 * self.n_feats * math.log(2 * math.pi)

    def compute_loss(self, x: torch.Tensor, x_lengths: torch.Tensor, y: torch.Tensor, y_lengths: torch.Tensor,
                     spk: torch.Tensor | None = None, out_size: int | None = None, *,
                     score_loss: ScoreLoss | None = None, return_per_utt: bool = False):
        """Training losses ``(dur_loss, prior_loss, diff_loss)`` as in the official code.

        ``score_loss`` replaces the decoder's a**2 by another element-wise loss (see
        :mod:`gradtts.losses`); ``return_per_utt`` appends each utterance's detached diffusion loss.
        The decoder is trained on a random ``out_size``-frame segment per utterance (Python ``random``).
        """
        x, x_lengths, y, y_lengths = (v.to(self.device) for v in (x, x_lengths, y, y_lengths))
        spk = self._speaker(spk)
        mu_x, logw, x_mask = self.encoder(x, x_lengths, spk)
        y_mask = sequence_mask(y_lengths, y.shape[-1]).unsqueeze(1).to(x_mask)
        attn = self.align(mu_x, x_mask, y, y_mask)

        logw_ = torch.log(1e-8 + torch.sum(attn.unsqueeze(1), -1)) * x_mask
        dur_loss = duration_loss(logw, logw_, x_lengths)

        if out_size is not None:
            attn, y, y_mask = self._random_segments(attn, y, y_lengths, y_mask, out_size)

        mu_y = torch.matmul(attn.squeeze(1).transpose(1, 2), mu_x.transpose(1, 2)).transpose(1, 2)
        diff = self.decoder.compute_loss(y, y_mask, mu_y, spk, score_loss=score_loss, return_per_utt=return_per_utt)

        prior_loss = torch.sum(0.5 * ((y - mu_y) ** 2 + math.log(2 * math.pi)) * y_mask)
        prior_loss = prior_loss / (torch.sum(y_mask) * self.n_feats)
        if return_per_utt:
            return dur_loss, prior_loss, diff[0], diff[2]
        return dur_loss, prior_loss, diff[0]

    def _random_segments(self, attn, y, y_lengths, y_mask, out_size: int):
        """Cut one random ``out_size``-frame window per utterance (shorter ones are kept whole, padded)."""
        max_offset = (y_lengths - out_size).clamp(0).cpu().tolist()
        offsets = [random.randrange(0, m) if m > 0 else 0 for m in max_offset]
        attn_cut = torch.zeros(attn.shape[0], attn.shape[1], out_size, dtype=attn.dtype, device=attn.device)
        y_cut = torch.zeros(y.shape[0], self.n_feats, out_size, dtype=y.dtype, device=y.device)
        cut_lengths = []
        for i, offset in enumerate(offsets):
            n = min(out_size, int(y_lengths[i]))
            cut_lengths.append(n)
            y_cut[i, :, :n] = y[i, :, offset:offset + n]
            attn_cut[i, :, :n] = attn[i, :, offset:offset + n]
        cut_mask = sequence_mask(torch.tensor(cut_lengths, device=y.device), out_size).unsqueeze(1).to(y_mask)
        return attn_cut, y_cut, cut_mask
