"""HiFi-GAN V1 generator (Kong et al. 2020) with the official state-dict layout.

Convolutions carry weight normalisation as ``weight_g``/``weight_v`` parameters (the naming of the
original ``torch.nn.utils.weight_norm``), so the official ``generator_*.pth.tar`` files load with
``strict=True``; :meth:`HiFiGAN.fold_weight_norm` turns them into plain weights for inference.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

LRELU_SLOPE = 0.1


class _WeightNormMixin:
    """Replace ``weight`` by ``weight_g * weight_v / ||weight_v||`` (norm over all dims but 0)."""

    def _init_weight_norm(self) -> None:
        w = self.weight.detach()
        del self.weight
        self.weight_g = nn.Parameter(torch.linalg.vector_norm(w, dim=tuple(range(1, w.dim())), keepdim=True))
        self.weight_v = nn.Parameter(w.clone())
        self.folded = False

    def _weight(self) -> torch.Tensor:
        if self.folded:
            return self.weight
        v = self.weight_v
        return self.weight_g * v / torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True)

    def fold(self) -> None:
        w = self._weight().detach()
        del self.weight_g, self.weight_v
        self.weight = nn.Parameter(w)
        self.folded = True


class WNConv1d(_WeightNormMixin, nn.Conv1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self._weight(), self.bias)


class WNConvTranspose1d(_WeightNormMixin, nn.ConvTranspose1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self._weight(), self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


def _padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """Three (dilated conv, conv) pairs with leaky-ReLU pre-activations and residual connections."""

    def __init__(self, channels: int, kernel: int = 3, dilations: tuple[int, ...] = (1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList([WNConv1d(channels, channels, kernel, 1, dilation=d, padding=_padding(kernel, d))
                                     for d in dilations])
        self.convs2 = nn.ModuleList([WNConv1d(channels, channels, kernel, 1, dilation=1, padding=_padding(kernel))
                                     for _ in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class HiFiGAN(nn.Module):
    """Mel ``[B, 80, frames]`` -> waveform ``[B, 1, frames * prod(upsample_rates)]`` in [-1, 1]."""

    def __init__(self, n_mels: int = 80, upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(16, 16, 4, 4),
                 upsample_initial_channel: int = 512, resblock_kernel_sizes=(3, 7, 11),
                 resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5))):
        super().__init__()
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = WNConv1d(n_mels, upsample_initial_channel, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            ch_in, ch_out = upsample_initial_channel // 2 ** i, upsample_initial_channel // 2 ** (i + 1)
            self.ups.append(WNConvTranspose1d(ch_in, ch_out, k, u, padding=(k - u) // 2))
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            ch = upsample_initial_channel // 2 ** (i + 1)
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(ResBlock1(ch, k, tuple(d)))
        self.conv_post = WNConv1d(ch, 1, 7, 1, padding=3)
        self.hop_length = 1
        for u in upsample_rates:
            self.hop_length *= u

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        # The official generator uses leaky_relu's default slope (0.01) before the last conv.
        return torch.tanh(self.conv_post(F.leaky_relu(x)))

    def fold_weight_norm(self) -> "HiFiGAN":
        """Replace every weight-normalised conv's (g, v) by its plain weight (inference)."""
        for m in self.modules():
            if isinstance(m, _WeightNormMixin) and not m.folded:
                m.fold()
        return self
