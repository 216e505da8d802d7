"""Low-rank adapters (LoRA) on the convolutions of the Grad-TTS score estimator.

A wrapped conv computes ``base(x) + scale * up(down(x))`` with ``down`` a conv of the base's kernel
into ``rank`` channels and ``up`` a 1x1 conv back out, ``scale = alpha / rank``. ``up`` starts at zero,
so an injected model is exactly the base model until it is trained; since ``up`` is 1x1 the adapter
folds into the base kernel exactly (``W + scale * up @ down``), so a trained voice can be saved as a
plain ``GradTTS`` state dict (:func:`plain_state_dict`) or merged in place (:func:`merge_lora`).

Targets (:data:`LORA_TARGETS`) in ``GradLogPEstimator2d``:

* ``"attention"``: the ``to_qkv`` and ``to_out`` 1x1 convs of every ``LinearAttention``;
* ``"conv"``: every other ``nn.Conv2d`` (the residual blocks' 3x3 convs, ``res_conv``, ``Downsample``,
  ``final_conv``).

Not adapted: the ``ConvTranspose2d`` of ``Upsample`` and the ``nn.Linear`` layers (time and speaker
MLPs), GroupNorm and the Rezero gains; a caller may still mark those trainable itself.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from gradtts.model.unet import LinearAttention

#: What :func:`inject_lora` can adapt; see the module docstring.
LORA_TARGETS: tuple[str, ...] = ("conv", "attention")
_ADAPTER_KEYS = ("lora_down.weight", "lora_up.weight")


class LoRAConv2d(nn.Module):
    """A frozen ``nn.Conv2d`` (``base``) plus a trainable rank-``rank`` update scaled by ``alpha / rank``."""

    def __init__(self, base: nn.Conv2d, rank: int, alpha: float, kind: str = "conv"):
        super().__init__()
        if base.groups != 1:
            raise ValueError(f"LoRA supports convs with groups=1 only (got groups={base.groups})")
        self.base = base
        self.rank, self.alpha, self.scale, self.kind = rank, float(alpha), float(alpha) / rank, kind
        # merge_lora gives the base back with the trainability it had before wrapping.
        self._base_requires_grad = {n: p.requires_grad for n, p in base.named_parameters()}
        base.requires_grad_(False)
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        # skip_init: no draw at construction, so the one draw below is the only use of the global RNG.
        self.lora_down = nn.utils.skip_init(nn.Conv2d, base.in_channels, rank, base.kernel_size, stride=base.stride,
                                            padding=base.padding, dilation=base.dilation, bias=False,
                                            padding_mode=base.padding_mode, **like)
        self.lora_up = nn.utils.skip_init(nn.Conv2d, rank, base.out_channels, 1, bias=False, **like)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * self.lora_up(self.lora_down(x))

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        """The base kernel with the adapter folded in, shaped like ``base.weight``."""
        w = self.base.weight
        work = torch.float64 if w.dtype == torch.float64 else torch.float32
        delta = torch.einsum("or,rikl->oikl", self.lora_up.weight[:, :, 0, 0].to(work), self.lora_down.weight.to(work))
        return (w.to(work) + self.scale * delta).to(w.dtype)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, rank={self.rank}, alpha={self.alpha:g}"


def _check_options(rank: int, alpha: float | None, targets: Iterable[str]) -> tuple[float, tuple[str, ...]]:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"adapt.rank must be >= 1 (an integer; got {rank!r})")
    alpha = float(rank if alpha is None else alpha)
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"adapt.alpha must be > 0, or None for alpha = rank (got {alpha!r})")
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    unknown = [t for t in targets if t not in LORA_TARGETS]
    if unknown or not targets:
        raise ValueError(f"adapt.lora_targets must be a non-empty subset of {list(LORA_TARGETS)} (got {list(targets)})")
    return alpha, tuple(t for t in LORA_TARGETS if t in targets)


def _wrappers(module: nn.Module) -> list[tuple[str, LoRAConv2d]]:
    return [(n, m) for n, m in module.named_modules() if isinstance(m, LoRAConv2d)]


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)


def inject_lora(estimator: nn.Module, rank: int, alpha: float | None = None,
                targets: Iterable[str] = LORA_TARGETS) -> list[str]:
    """Wrap the target convs of ``estimator`` (``model.decoder.estimator``) in :class:`LoRAConv2d`, in place.

    ``alpha`` None means ``alpha = rank`` (scale 1). The wrapped base convs are frozen; the new adapter
    tensors require grad; nothing else changes. The adapters' ``down`` kernels draw from the global torch
    RNG (kaiming-uniform, as ``nn.Conv2d``), ``up`` starts at zero. Returns the wrapped modules' names
    relative to ``estimator``, sorted.
    """
    alpha, targets = _check_options(rank, alpha, targets)
    if _wrappers(estimator):
        raise ValueError("LoRA adapters are already injected into this module: inject once, or call merge_lora "
                         "first to fold the present ones in")
    attention = {id(c) for m in estimator.modules() if isinstance(m, LinearAttention) for c in (m.to_qkv, m.to_out)}
    chosen = []
    for name, m in estimator.named_modules():
        if type(m) is nn.Conv2d:  # exactly Conv2d: ConvTranspose2d (Upsample) is a sibling class, left out
            kind = "attention" if id(m) in attention else "conv"
            if kind in targets:
                chosen.append((name, m, kind))
    grouped = [name for name, m, _ in chosen if m.groups != 1]
    if grouped:  # checked before any wrapping, so a refused call leaves the module as it was
        raise ValueError(f"LoRA supports convs with groups=1 only; grouped: {grouped[:5]}")
    for name, m, kind in chosen:
        _replace(estimator, name, LoRAConv2d(m, rank, alpha, kind))
    return sorted(name for name, _, _ in chosen)


def lora_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The adapter tensors (``lora_down``, ``lora_up``) of every wrapped conv in ``module``."""
    return [p for _, m in _wrappers(module) for p in (m.lora_down.weight, m.lora_up.weight)]


def _adapter_keys(module: nn.Module) -> list[str]:
    return [f"{n}.{k}" if n else k for n, _ in _wrappers(module) for k in _ADAPTER_KEYS]


def lora_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors, under their keys in ``module.state_dict()`` (they share its storage)."""
    state = module.state_dict()
    return {k: state[k] for k in _adapter_keys(module)}


@torch.no_grad()
def load_lora_state_dict(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy adapter tensors into ``module`` strictly: same keys (as :func:`lora_state_dict`), same shapes."""
    own = lora_state_dict(module)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad_shape = [f"{k}: given {tuple(state[k].shape)}, model {tuple(v.shape)}" for k, v in own.items()
                 if k in state and state[k].shape != v.shape]
    if missing or unexpected or bad_shape:
        parts = [f"{title} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
                 for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", bad_shape))
                 if keys]
        raise ValueError("LoRA adapters do not fit this model (inject with the same rank and targets, into the "
                         "same module the adapters were taken from): " + "; ".join(parts))
    for k, v in own.items():
        v.copy_(state[k])


def plain_state_dict(module: nn.Module, *, merged: bool = True) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` as if it had no adapters: the keys of the un-injected module, in its order.

    With ``merged`` each wrapped conv's weight is the folded ``W + scale * up @ down`` (the trained
    model, loadable into a plain ``GradTTS``); without, the frozen base weights (the starting model).
    """
    wrappers = dict(_wrappers(module))
    folds = {}  # "<prefix>base.weight" -> (plain key, merged tensor or None)
    for name, m in wrappers.items():
        p = f"{name}." if name else ""
        folds[f"{p}base.weight"] = (f"{p}weight", m.merged_weight() if merged else None)
        folds[f"{p}base.bias"] = (f"{p}bias", None)
    drop = set(_adapter_keys(module))
    out = {}
    for k, v in module.state_dict().items():
        if k in drop:
            continue
        if k in folds:
            key, value = folds[k]
            out[key] = v if value is None else value
        else:
            out[k] = v
    return out


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every adapter into its base conv and put the plain conv back, in place; returns ``module``.

    The base convs get back the ``requires_grad`` they had before injection. If ``module`` itself is a
    :class:`LoRAConv2d`, its merged base conv is returned instead.
    """
    for name, m in _wrappers(module):
        base = m.base
        with torch.no_grad():
            base.weight.copy_(m.merged_weight())
        for pname, p in base.named_parameters():
            p.requires_grad_(m._base_requires_grad.get(pname, True))
        if not name:
            return base
        _replace(module, name, base)
    return module


def lora_info(module: nn.Module) -> dict:
    """``{"rank", "alpha", "targets", "modules", "n_params"}`` of the adapters in ``module`` (names relative to it).

    With no adapters: rank and alpha None, empty targets and modules, 0 parameters.
    """
    wrappers = _wrappers(module)
    settings = {(m.rank, m.alpha) for _, m in wrappers}
    if len(settings) > 1:
        raise ValueError(f"the adapters in this module mix ranks/alphas {sorted(settings)}; one setting expected")
    rank, alpha = next(iter(settings)) if settings else (None, None)
    kinds = {m.kind for _, m in wrappers}
    return {"rank": rank, "alpha": alpha, "targets": [t for t in LORA_TARGETS if t in kinds],
            "modules": sorted(n for n, _ in wrappers), "n_params": sum(p.numel() for p in lora_parameters(module))}
