"""Typed model configuration (Hydra group ``model/``) and the factory that builds ``GradTTS`` from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from gradtts.model.gradtts import CONFIG_KEYS, GradTTS


@dataclass
class ModelConfig:
    """``GradTTS`` constructor arguments by their official names (defaults: the official model).

    ``n_spks`` is usually filled in by the trainer from the data (number of speakers + new ones).
    """

    n_vocab: int = 149
    n_spks: int = 1
    spk_emb_dim: int = 64
    n_enc_channels: int = 192
    filter_channels: int = 768
    filter_channels_dp: int = 256
    n_heads: int = 2
    n_enc_layers: int = 6
    enc_kernel: int = 3
    enc_dropout: float = 0.1
    window_size: int = 4
    n_feats: int = 80
    dec_dim: int = 64
    beta_min: float = 0.05
    beta_max: float = 20.0
    pe_scale: float = 1000.0


def build_model(cfg: ModelConfig | Mapping[str, Any], **overrides: Any) -> GradTTS:
    """Build ``GradTTS`` from a config (dataclass, dict or OmegaConf node), ignoring non-model keys."""
    values = asdict(cfg) if isinstance(cfg, ModelConfig) else {k: cfg[k] for k in cfg}
    values.update(overrides)
    missing = [k for k in CONFIG_KEYS if k not in values]
    if missing:
        raise ValueError(f"model config lacks {missing}")
    if values["dec_dim"] % 8:
        raise ValueError(f"dec_dim={values['dec_dim']} must be a multiple of 8 (GroupNorm with 8 groups)")
    return GradTTS(**{k: values[k] for k in CONFIG_KEYS})
