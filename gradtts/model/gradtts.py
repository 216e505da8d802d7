"""``GradTTS``: text encoder + duration model + diffusion decoder, with the official module tree."""

from __future__ import annotations

import math
import random

import torch
from torch import nn

from gradtts.model.alignment import maximum_path
from gradtts.model.diffusion import Diffusion, ScoreLoss
from gradtts.model.encoder import TextEncoder
from gradtts.model.masks import duration_loss, fix_len_compatibility, generate_path, sequence_mask

#: Constructor arguments, in the official order; they are stored in our checkpoints.
CONFIG_KEYS = ("n_vocab", "n_spks", "spk_emb_dim", "n_enc_channels", "filter_channels", "filter_channels_dp",
               "n_heads", "n_enc_layers", "enc_kernel", "enc_dropout", "window_size", "n_feats", "dec_dim",
               "beta_min", "beta_max", "pe_scale")

#: The official hyper-parameters (params.py of the reference implementation; n_spks 247 for LibriTTS).
OFFICIAL_CONFIG = dict(n_vocab=149, n_spks=1, spk_emb_dim=64, n_enc_channels=192, filter_channels=768,
                       filter_channels_dp=256, n_heads=2, n_enc_layers=6, enc_kernel=3, enc_dropout=0.1,
                       window_size=4, n_feats=80, dec_dim=64, beta_min=0.05, beta_max=20.0, pe_scale=1000)


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
                stoc: bool = False, spk: torch.Tensor | None = None, length_scale: float = 1.0):
        """Synthesise mels; returns (encoder_outputs mu_y, decoder_outputs, attn), all cut to the longest.

        Durations are ``ceil(exp(logw)) * length_scale``; the prior sample is mu_y + z / temperature.
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
        z = mu_y + torch.randn_like(mu_y, device=mu_y.device) / temperature
        decoded = self.decoder(z, y_mask, mu_y, n_timesteps, stoc, spk)
        return mu_y[:, :, :y_max_length], decoded[:, :, :y_max_length], attn[:, :, :y_max_length]

    def align(self, mu_x: torch.Tensor, x_mask: torch.Tensor, y: torch.Tensor, y_mask: torch.Tensor) -> torch.Tensor:
        """MAS alignment ``[B, T_x, T_y]`` of mels ``y`` to token means ``mu_x`` under N(mu, I)."""
        attn_mask = x_mask.unsqueeze(-1) * y_mask.unsqueeze(2)
        with torch.no_grad():
            const = -0.5 * math.log(2 * math.pi) * self.n_feats
            factor = -0.5 * torch.ones(mu_x.shape, dtype=mu_x.dtype, device=mu_x.device)
            y_square = torch.matmul(factor.transpose(1, 2), y ** 2)
            y_mu_double = torch.matmul(2.0 * (factor * mu_x).transpose(1, 2), y)
            mu_square = torch.sum(factor * (mu_x ** 2), 1).unsqueeze(-1)
            log_prior = y_square - y_mu_double + mu_square + const
            return maximum_path(log_prior, attn_mask.squeeze(1)).detach()

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
