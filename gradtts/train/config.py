"""Typed configuration of ``gradtts-train``: groups model, data, loss, optim, trainer and the adapt block.

These dataclasses hold the defaults; :func:`train_group_options` lists the group options (each a dataclass
instance) that ``gradtts.train.cli.register_config`` registers with Hydra. Presets that change several of
them at once are YAML files in ``conf/experiment/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

from omegaconf import MISSING

from gradtts.config import CHOICES, DEVICES, NESTED_CHOICES
from gradtts.losses import LOSSES, SCHEDULES, LossConfig
from gradtts.model.config import MODEL_PRESETS, ModelConfig
from gradtts.model.lora import LORA_TARGETS
from gradtts.scoring.encoders import ENCODERS
from gradtts.vocoder.frontend import KINDS as VOCODER_KINDS

#: Names accepted in ``adapt.trainable``.
TRAINABLE_PARTS = ("encoder", "decoder", "spk_emb", "spk_new")
#: ``filter.name`` (the stage lives in :mod:`gradtts.train.filters`).
FILTERS = ("none", "residual", "embedding")
#: ``adapt.method``: update the trainable parts (``full``) or low-rank adapters on the decoder's U-Net (``lora``).
ADAPT_METHODS = ("full", "lora")
#: ``optim.name``: the official recipe's optimiser is the only one implemented.
OPTIMIZERS = ("adam",)
#: ``trainer.precision``: fp32, or bf16 autocast of the U-Net score estimator (``gradtts.train.speed``).
PRECISIONS = ("fp32", "bf16")
#: ``trainer.vocoder`` of the TensorBoard samples: a vocoder kind, or none.
SAMPLE_VOCODERS = (*VOCODER_KINDS, "none")


@dataclass
class DataConfig:
    """Hydra group ``data/`` (option ``manifest``): features manifest and batching.

    ``feats_dir`` is a features dir from ``python -m data_prep.features DATA_DIR FEATS_DIR`` (manifest.jsonl +
    meta.json + mels).
    """

    feats_dir: str = MISSING          # FEATS_DIR with manifest.jsonl + meta.json (a manifest file path works too)
    batch_size: int = 16              # official recipe; per process (under torchrun); a smaller set is one batch
    out_size: Optional[int] = 172     # decoder segment in frames (2 s at 22050/256); null = whole utterances
    bucket_batches: int = 32          # batches per length-sorted bucket
    drop_last: bool = False
    num_workers: int = 2
    pin_memory: bool = True
    skip_corrupt: bool = False        # drop items the manifest marks corrupt (for oracle runs)
    max_frames: Optional[int] = None  # drop longer utterances (MAS memory grows with tokens x frames)


@dataclass
class OptimConfig:
    """Hydra group ``optim/`` (option ``adam``): the official recipe, Adam 1e-4 without a schedule, gradient
    norm clipped to 1 for encoder and decoder separately."""

    name: str = field(default="adam", metadata={CHOICES: OPTIMIZERS})
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    fused: Optional[bool] = None      # None: fused kernels on CUDA, the for-each path elsewhere
    warmup_steps: int = 0             # linear warm-up, then constant (the official recipe has none)
    grad_clip: Optional[float] = 1.0


@dataclass
class TrainerConfig:
    """Hydra group ``trainer/`` (option ``default``): steps, checkpoints, logging, devices and speed options."""

    out_dir: str = "exp/train"
    max_steps: int = 100_000
    save_steps: list[int] = field(default_factory=list)   # kept forever, each with its config (step_0000120.yaml)
    save_every: int = 1000            # resume points; older ones beyond keep_last are pruned
    keep_last: int = 1
    log_every: int = 50
    sample_every: int = 0             # TensorBoard mel image + audio every this many steps (0: off)
    sample_timesteps: int = 10
    seed: int = 1234
    device: str = field(default="auto", metadata={CHOICES: DEVICES})  # under torchrun cuda: the local rank's GPU
    num_threads: Optional[int] = None  # CPU threads of this process (None: torch's default); 1 lets jobs share cores
    precision: str = field(default="fp32", metadata={CHOICES: PRECISIONS})  # bf16: autocast of the U-Net
    compile: bool = False             # torch.compile the U-Net score estimator
    tf32: bool = False
    deterministic: bool = False       # bit-identical resume: CPU without oneDNN (~1.5x slower), cuDNN deterministic
    resume: bool = True
    # Base training: start from this checkpoint's weights (same speakers) with a fresh optimizer.
    init_from: Optional[str] = None
    track_utts: Optional[bool] = None  # per-utterance residual table; None: on when fine-tuning
    progress: bool = True
    tensorboard: bool = True
    # audio samples: auto (HiFi-GAN, else Griffin-Lim) | hifigan | griffinlim | none
    vocoder: Optional[str] = field(default="auto", metadata={CHOICES: SAMPLE_VOCODERS})


@dataclass
class AdaptConfig:
    """Few-shot fine-tuning: start from a checkpoint and add the manifest's new speakers."""

    checkpoint: Optional[str] = None  # ours or official; when set, the model group is ignored
    n_spks: Optional[int] = None      # force the base speaker count of an official file
    pe_scale: Optional[float] = None  # official files do not store it (1000; 1 for grad-tts-old.pt)
    trainable: list[str] = field(default_factory=lambda: ["decoder", "spk_new"], metadata={CHOICES: TRAINABLE_PARTS})
    # lora: the decoder's U-Net stays frozen and gets rank-r adapters on its convolutions and attention; the
    # checkpoints hold the merged weights and a voice file (step_N.voice.pt) holds only adapters + speaker rows.
    method: str = field(default="full", metadata={CHOICES: ADAPT_METHODS})
    rank: int = 4                     # lora rank r
    alpha: Optional[float] = None     # lora scale alpha / r (None: alpha = r, scale 1)
    lora_targets: list[str] = field(default_factory=lambda: ["conv", "attention"], metadata={CHOICES: LORA_TARGETS})


@dataclass
class FilterConfig:
    """Hydra group ``filter/`` (options ``none``, ``residual``, ``embedding``): drop foreign-looking few-shot clips
    before fine-tuning (see :mod:`gradtts.train.filters`)."""

    name: str = field(default="none", metadata={CHOICES: FILTERS})
    drop: float = 0.3                 # share of the clips dropped (the most foreign-looking ones)
    probe_steps: int = 60             # residual: steps of the L2 pass that adapts before ranking
    probe_t: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7, 0.9])  # residual: probe times
    encoder: str = field(default="ge2e", metadata={CHOICES: ENCODERS})  # embedding filter; ecapa needs encoder_source
    encoder_source: Optional[str] = None


@dataclass
class TrainConfig:
    """``gradtts-train``: base training from scratch, or few-shot fine-tuning when ``adapt.checkpoint`` is set.

    Examples::

        gradtts-train experiment=base_small data.feats_dir=exp/feats trainer.out_dir=exp/base
        gradtts-train experiment=finetune adapt.checkpoint=exp/base/ckpt/step_0100000.pt \\
            data.feats_dir=exp/fewshot/p0.30/feats loss=scheduled_huber loss.delta_min=0.01 trainer.out_dir=exp/ft

    Multi-GPU: ``torchrun --nproc_per_node=4 -m gradtts.train <same overrides>``. Group defaults: model
    ``small``, data ``manifest``, loss ``l2``, optim ``adam``, trainer ``default``; then ``experiment=...``.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    # LossConfig lives beside the losses; its names are checked against their registries here.
    loss: LossConfig = field(default_factory=LossConfig,
                             metadata={NESTED_CHOICES: {"name": LOSSES, "schedule": SCHEDULES}})
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    name: str = "train"
    extra: dict[str, Any] = field(default_factory=dict)   # free-form notes recorded in checkpoints


#: The option each training group starts from (``train.yaml``'s defaults list as it was).
TRAIN_GROUP_DEFAULTS = {"model": "small", "data": "manifest", "loss": "l2", "optim": "adam", "trainer": "default",
                        "filter": "none"}


def train_group_options() -> dict[str, tuple[Any, dict[str, dict[str, Any]]]]:
    """``{group: (dataclass, {option: fields it sets})}`` of the training groups.

    An option is ``dataclass(**fields)``: the class's defaults except those fields.
    """
    return {
        "model": (ModelConfig, MODEL_PRESETS),
        "data": (DataConfig, {"manifest": {}}),
        "loss": (LossConfig, {name: {"name": name} for name in LOSSES}),
        "optim": (OptimConfig, {name: {"name": name} for name in OPTIMIZERS}),
        "trainer": (TrainerConfig, {"default": {}}),
        "filter": (FilterConfig, {name: {"name": name} for name in FILTERS}),
    }


def option_config(group: str, option: str) -> Any:
    """The dataclass instance a training group option stands for (e.g. ``("model", "tiny")``)."""
    cls, options = train_group_options()[group]
    return replace(cls(), **options[option])
