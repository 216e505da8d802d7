"""Typed model configuration (Hydra group ``model/``), its presets, and the factory that builds ``GradTTS``.

This module is the one definition of the model's sizes: ``ModelConfig()`` is the official model,
:data:`OFFICIAL_CONFIG` and :data:`CONFIG_KEYS` derive from it, and :data:`MODEL_PRESETS` lists what each
smaller preset changes. It imports no model code, so the model can import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from gradtts.model.gradtts import GradTTS


@dataclass
class ModelConfig:
    """``GradTTS`` constructor arguments by their official names; the defaults are the official model.

    The official sizes are ``params.py`` of the reference implementation: 14.8 M parameters with one
    speaker (``n_spks`` 247 for LibriTTS). ``n_spks`` is usually filled in by the trainer from the data
    (number of speakers + new ones).
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
    dec_dim: int = 64            # U-Net base width; a multiple of 8 (GroupNorm with 8 groups)
    beta_min: float = 0.05
    beta_max: float = 20.0
    # 1000 for grad-tts.pt / grad-tts-libri-tts.pt, 1 only for grad-tts-old.pt. Written as the int of the
    # official params.py so OFFICIAL_CONFIG keeps its type; Hydra/OmegaConf store it as 1000.0.
    pe_scale: float = 1000


#: Constructor arguments of ``GradTTS``, in the official order; they are stored in our checkpoints.
CONFIG_KEYS: tuple[str, ...] = tuple(f.name for f in fields(ModelConfig))

#: The official hyper-parameters as a dict (``ModelConfig()``'s defaults).
OFFICIAL_CONFIG: dict[str, Any] = asdict(ModelConfig())

#: Hydra group ``model/``: each preset's changes to the official sizes.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # The official Grad-TTS: 14.8 M parameters.
    "gradtts": {},
    # CPU-friendly (about 3.9 M parameters with 30 speakers): same architecture, narrower encoder and U-Net.
    "small": dict(n_enc_channels=128, filter_channels=384, filter_channels_dp=128, n_enc_layers=4, dec_dim=32),
    # For tests and smoke runs only: trains in seconds on a CPU, does not make intelligible speech.
    "tiny": dict(spk_emb_dim=16, n_enc_channels=32, filter_channels=64, filter_channels_dp=32, n_enc_layers=2,
                 dec_dim=16),
}


def model_preset(name: str) -> ModelConfig:
    """The ``ModelConfig`` of preset ``name`` (``gradtts``, ``small`` or ``tiny``)."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(MODEL_PRESETS)}")
    return ModelConfig(**MODEL_PRESETS[name])


def build_model(cfg: ModelConfig | Mapping[str, Any], **overrides: Any) -> GradTTS:
    """Build ``GradTTS`` from a config (dataclass, dict or OmegaConf node), ignoring non-model keys."""
    from gradtts.model.gradtts import GradTTS

    if is_dataclass(cfg):
        # Through OmegaConf, as a Hydra-composed config would be: the same value types (pe_scale 1000.0).
        from omegaconf import OmegaConf

        values = OmegaConf.to_container(OmegaConf.structured(cfg))
    else:
        values = {k: cfg[k] for k in cfg}
    values.update(overrides)
    missing = [k for k in CONFIG_KEYS if k not in values]
    if missing:
        raise ValueError(f"model config lacks {missing}")
    if values["dec_dim"] % 8:
        raise ValueError(f"dec_dim={values['dec_dim']} must be a multiple of 8 (GroupNorm with 8 groups)")
    return GradTTS(**{k: values[k] for k in CONFIG_KEYS})
