"""Grad-TTS text encoder: embedding, conv pre-net, relative-attention Transformer, duration predictor.

Module and parameter names follow the official checkpoints (``encoder.prenet.conv_layers.0``,
``encoder.encoder.attn_layers.0.emb_rel_k``, ``encoder.proj_w.norm_1.gamma`` ...). The encoder is
speaker-independent, as in the official multi-speaker model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gradtts.model.attention import MultiHeadAttention
from gradtts.model.masks import sequence_mask


class LayerNorm(nn.Module):
    """Layer norm over the channel axis (dim 1) of ``[B, C, T]`` tensors, eps 1e-4, ``gamma``/``beta``."""

    def __init__(self, channels: int, eps: float = 1e-4):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.mean(x, 1, keepdim=True)
        var = torch.mean((x - mean) ** 2, 1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        shape = [1, -1] + [1] * (x.dim() - 2)
        return x * self.gamma.view(*shape) + self.beta.view(*shape)


class ConvReluNorm(nn.Module):
    """Pre-net: conv -> layer norm -> ReLU -> dropout, repeated, plus a zero-initialised residual projection."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, kernel_size: int,
                 n_layers: int, p_dropout: float):
        super().__init__()
        self.n_layers = n_layers
        self.conv_layers = nn.ModuleList()
        self.norm_layers = nn.ModuleList()
        self.relu_drop = nn.Sequential(nn.ReLU(), nn.Dropout(p_dropout))
        for i in range(n_layers):
            self.conv_layers.append(nn.Conv1d(in_channels if i == 0 else hidden_channels, hidden_channels,
                                              kernel_size, padding=kernel_size // 2))
            self.norm_layers.append(LayerNorm(hidden_channels))
        self.proj = nn.Conv1d(hidden_channels, out_channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        residual = x
        for conv, norm in zip(self.conv_layers, self.norm_layers):
            x = self.relu_drop(norm(conv(x * x_mask)))
        return (residual + self.proj(x)) * x_mask


class DurationPredictor(nn.Module):
    """Two conv -> ReLU -> layer norm -> dropout stages and a 1x1 projection to log-durations."""

    def __init__(self, in_channels: int, filter_channels: int, kernel_size: int, p_dropout: float):
        super().__init__()
        self.drop = nn.Dropout(p_dropout)
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size, padding=kernel_size // 2)
        self.norm_1 = LayerNorm(filter_channels)
        self.conv_2 = nn.Conv1d(filter_channels, filter_channels, kernel_size, padding=kernel_size // 2)
        self.norm_2 = LayerNorm(filter_channels)
        self.proj = nn.Conv1d(filter_channels, 1, 1)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.norm_1(torch.relu(self.conv_1(x * x_mask))))
        x = self.drop(self.norm_2(torch.relu(self.conv_2(x * x_mask))))
        return self.proj(x * x_mask) * x_mask


class FFN(nn.Module):
    """Position-wise conv feed-forward block with ReLU."""

    def __init__(self, in_channels: int, out_channels: int, filter_channels: int, kernel_size: int,
                 p_dropout: float = 0.0):
        super().__init__()
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size, padding=kernel_size // 2)
        self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.drop = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = self.drop(torch.relu(self.conv_1(x * x_mask)))
        return self.conv_2(x * x_mask) * x_mask


class Encoder(nn.Module):
    """Post-norm Transformer: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int,
                 kernel_size: int = 1, p_dropout: float = 0.0, window_size: int | None = None):
        super().__init__()
        self.n_layers = n_layers
        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList()
        self.norm_layers_1 = nn.ModuleList()
        self.ffn_layers = nn.ModuleList()
        self.norm_layers_2 = nn.ModuleList()
        for _ in range(n_layers):
            self.attn_layers.append(MultiHeadAttention(hidden_channels, hidden_channels, n_heads,
                                                       window_size=window_size, p_dropout=p_dropout))
            self.norm_layers_1.append(LayerNorm(hidden_channels))
            self.ffn_layers.append(FFN(hidden_channels, hidden_channels, filter_channels, kernel_size,
                                       p_dropout=p_dropout))
            self.norm_layers_2.append(LayerNorm(hidden_channels))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
        for attn, norm_1, ffn, norm_2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers,
                                             self.norm_layers_2):
            x = x * x_mask
            x = norm_1(x + self.drop(attn(x, x, attn_mask)))
            x = norm_2(x + self.drop(ffn(x, x_mask)))
        return x * x_mask


class TextEncoder(nn.Module):
    """Token ids -> (mu_x ``[B, n_feats, T_x]``, log-durations ``[B, 1, T_x]``, mask ``[B, 1, T_x]``)."""

    def __init__(self, n_vocab: int, n_feats: int, n_channels: int, filter_channels: int,
                 filter_channels_dp: int, n_heads: int, n_layers: int, kernel_size: int, p_dropout: float,
                 window_size: int | None = None):
        super().__init__()
        self.n_channels = n_channels
        self.emb = nn.Embedding(n_vocab, n_channels)
        nn.init.normal_(self.emb.weight, 0.0, n_channels ** -0.5)
        self.prenet = ConvReluNorm(n_channels, n_channels, n_channels, kernel_size=5, n_layers=3, p_dropout=0.5)
        self.encoder = Encoder(n_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout,
                               window_size=window_size)
        self.proj_m = nn.Conv1d(n_channels, n_feats, 1)
        self.proj_w = DurationPredictor(n_channels, filter_channels_dp, kernel_size, p_dropout)

    def forward(self, x: torch.Tensor, x_lengths: torch.Tensor, spk: torch.Tensor | None = None):
        """``spk`` is accepted for API compatibility and ignored (speaker-independent encoder)."""
        x = torch.transpose(self.emb(x) * math.sqrt(self.n_channels), 1, -1)
        x_mask = sequence_mask(x_lengths, x.size(2)).unsqueeze(1).to(x.dtype)
        x = self.encoder(self.prenet(x, x_mask), x_mask)
        mu = self.proj_m(x) * x_mask
        # The duration predictor must not push gradients into the encoder.
        logw = self.proj_w(torch.detach(x), x_mask)
        return mu, logw, x_mask
