"""The Grad-TTS score estimator: a small 2-D U-Net over the (80 x frames) mel plane.

Inputs are stacked as channels: mu, x_t and, for multi-speaker models, an 80 x frames plane made
from the speaker embedding by ``spk_mlp``. Time enters through a sinusoidal embedding of
``pe_scale * t`` and an MLP added inside every residual block. The plane is halved twice, so the
frame count must be a multiple of 4. Names follow the official checkpoints.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Mish(nn.Module):
    """x · tanh(softplus(x)), the official activation, through PyTorch's fused kernel.

    Same function up to float rounding (|Δ| < 3e-7 in fp32); the three-op form spent a quarter of a CPU
    training step in ``softplus`` alone (benchmarks/RESULTS.md).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.mish(x)


class Upsample(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(dim, dim, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Downsample(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Rezero(nn.Module):
    """``fn(x) * g`` with a learnable scalar ``g`` initialised at 0."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn
        self.g = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) * self.g


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class Block(nn.Module):
    """Masked conv 3x3 -> GroupNorm -> Mish."""

    def __init__(self, dim: int, dim_out: int, groups: int = 8):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim_out, 3, padding=1), nn.GroupNorm(groups, dim_out), Mish())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.block(x * mask) * mask


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, dim_out: int, time_emb_dim: int, groups: int = 8):
        super().__init__()
        self.mlp = nn.Sequential(Mish(), nn.Linear(time_emb_dim, dim_out))
        self.block1 = Block(dim, dim_out, groups=groups)
        self.block2 = Block(dim_out, dim_out, groups=groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x, mask)
        h = h + self.mlp(time_emb).unsqueeze(-1).unsqueeze(-1)
        h = self.block2(h, mask)
        return h + self.res_conv(x * mask)


class LinearAttention(nn.Module):
    """Linear attention over all positions of the plane: softmax over keys' positions, then k^T v."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads = heads
        hidden = dim_head * heads
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = self.to_qkv(x).reshape(b, 3, self.heads, -1, h * w).unbind(1)
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(out.reshape(b, -1, h, w))


class SinusoidalPosEmb(nn.Module):
    """``[sin(scale t f_k), cos(scale t f_k)]`` with ``f_k = 10000^(-k / (dim/2 - 1))``."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor, scale: float = 1000) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=x.device).float() * -(math.log(10000) / (half - 1)))
        emb = scale * x.unsqueeze(1) * freqs.unsqueeze(0)
        return torch.cat((emb.sin(), emb.cos()), dim=-1)


class GradLogPEstimator2d(nn.Module):
    def __init__(self, dim: int, dim_mults: tuple[int, ...] = (1, 2, 4), groups: int = 8,
                 n_spks: int | None = None, spk_emb_dim: int = 64, n_feats: int = 80, pe_scale: float = 1000):
        super().__init__()
        self.n_spks = n_spks if n_spks is not None else 1
        self.pe_scale = pe_scale
        if self.n_spks > 1:
            self.spk_mlp = nn.Sequential(nn.Linear(spk_emb_dim, spk_emb_dim * 4), Mish(),
                                         nn.Linear(spk_emb_dim * 4, n_feats))
        self.time_pos_emb = SinusoidalPosEmb(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), Mish(), nn.Linear(dim * 4, dim))

        dims = [2 + (1 if self.n_spks > 1 else 0), *(dim * m for m in dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:]))
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(in_out):
            last = i == len(in_out) - 1
            self.downs.append(nn.ModuleList([
                ResnetBlock(d_in, d_out, time_emb_dim=dim),
                ResnetBlock(d_out, d_out, time_emb_dim=dim),
                Residual(Rezero(LinearAttention(d_out))),
                nn.Identity() if last else Downsample(d_out)]))
        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, time_emb_dim=dim)
        self.mid_attn = Residual(Rezero(LinearAttention(mid)))
        self.mid_block2 = ResnetBlock(mid, mid, time_emb_dim=dim)
        # Only the two lower resolutions get a skip connection and an up-sampling stage.
        for d_in, d_out in reversed(in_out[1:]):
            self.ups.append(nn.ModuleList([
                ResnetBlock(d_out * 2, d_in, time_emb_dim=dim),
                ResnetBlock(d_in, d_in, time_emb_dim=dim),
                Residual(Rezero(LinearAttention(d_in))),
                Upsample(d_in)]))
        self.final_block = Block(dim, dim)
        self.final_conv = nn.Conv2d(dim, 1, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor, t: torch.Tensor,
                spk: torch.Tensor | None = None) -> torch.Tensor:
        """Score ``[B, n_feats, T]`` of x_t ``[B, n_feats, T]`` given mu, mask ``[B, 1, T]``, t ``[B]``."""
        t = self.mlp(self.time_pos_emb(t, scale=self.pe_scale))
        if self.n_spks < 2:
            x = torch.stack([mu, x], 1)
        else:
            if spk is None:
                raise ValueError("a multi-speaker score estimator needs a speaker embedding")
            s = self.spk_mlp(spk).unsqueeze(-1).repeat(1, 1, x.shape[-1])
            x = torch.stack([mu, x, s], 1)
        mask = mask.unsqueeze(1)

        hiddens = []
        masks = [mask]
        for resnet1, resnet2, attn, down in self.downs:
            m = masks[-1]
            x = attn(resnet2(resnet1(x, m, t), m, t))
            hiddens.append(x)
            x = down(x * m)
            masks.append(m[:, :, :, ::2])
        masks = masks[:-1]
        m = masks[-1]
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, m, t)), m, t)
        for resnet1, resnet2, attn, up in self.ups:
            m = masks.pop()
            x = torch.cat((x, hiddens.pop()), dim=1)
            x = up(attn(resnet2(resnet1(x, m, t), m, t)) * m)
        x = self.final_block(x, mask)
        return (self.final_conv(x * mask) * mask).squeeze(1)
