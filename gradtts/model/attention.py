"""Multi-head self-attention with relative-position keys and values (Shaw et al.; Glow-TTS form).

Relative positions are clipped to ``[-window_size, window_size]``; one embedding table is shared by
all heads (``emb_rel_k``/``emb_rel_v`` of shape ``[1, 2 * window_size + 1, channels // n_heads]``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, channels: int, out_channels: int, n_heads: int, window_size: int | None = None,
                 p_dropout: float = 0.0):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.window_size = window_size
        self.k_channels = channels // n_heads
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        if window_size is not None:
            std = self.k_channels ** -0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(p_dropout)
        for conv in (self.conv_q, self.conv_k, self.conv_v):
            nn.init.xavier_uniform_(conv.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        out, _ = self._attend(self.conv_q(x), self.conv_k(c), self.conv_v(c), attn_mask)
        return self.conv_o(out)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape
        return x.view(b, self.n_heads, self.k_channels, t).transpose(2, 3)

    def _attend(self, q, k, v, mask):
        b, d, t_s = k.shape
        t_t = q.shape[2]
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
        scale = math.sqrt(self.k_channels)
        scores = torch.matmul(q, k.transpose(-2, -1)) / scale
        if self.window_size is not None:
            if t_s != t_t:
                raise ValueError("relative attention is only defined for self-attention")
            rel_k = self._relative_table(self.emb_rel_k, t_s)
            rel_logits = torch.matmul(q, rel_k.unsqueeze(0).transpose(-2, -1))
            scores = scores + self._relative_to_absolute(rel_logits) / scale
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e4)
        p_attn = self.drop(F.softmax(scores, dim=-1))
        out = torch.matmul(p_attn, v)
        if self.window_size is not None:
            rel_v = self._relative_table(self.emb_rel_v, t_s)
            out = out + torch.matmul(self._absolute_to_relative(p_attn), rel_v.unsqueeze(0))
        return out.transpose(2, 3).contiguous().view(b, d, t_t), p_attn

    def _relative_table(self, table: torch.Tensor, length: int) -> torch.Tensor:
        """Rows for relative offsets ``-(length-1) .. length-1``, zero beyond the window."""
        w = self.window_size
        pad = max(length - (w + 1), 0)
        start = max((w + 1) - length, 0)
        if pad > 0:
            table = F.pad(table, (0, 0, pad, pad))
        return table[:, start:start + 2 * length - 1]

    @staticmethod
    def _relative_to_absolute(x: torch.Tensor) -> torch.Tensor:
        """``[b, h, L, 2L-1]`` logits indexed by relative offset -> ``[b, h, L, L]`` by key position."""
        b, h, length, _ = x.shape
        x = F.pad(x, (0, 1))
        flat = F.pad(x.view(b, h, length * 2 * length), (0, length - 1))
        return flat.view(b, h, length + 1, 2 * length - 1)[:, :, :length, length - 1:]

    @staticmethod
    def _absolute_to_relative(x: torch.Tensor) -> torch.Tensor:
        """``[b, h, L, L]`` weights by key position -> ``[b, h, L, 2L-1]`` by relative offset."""
        b, h, length, _ = x.shape
        x = F.pad(x, (0, length - 1))
        flat = F.pad(x.view(b, h, length ** 2 + length * (length - 1)), (length, 0))
        return flat.view(b, h, length, 2 * length)[:, :, :, 1:]
