"""A training run's identity: every setting that changes its weights at a given step.

Two runs with equal identities produce the same checkpoint at the same step (up to float rounding: the
device and the CPU thread count are left out), so the identity is what a run directory, a score summary
and the R/L pairing must stand for.
``trainer.max_steps`` and the save schedule are left out on purpose: with a constant learning rate
the checkpoint at step s does not depend on how far the run goes, so extending a finished run is
a legitimate resume. The *arm* is the identity without the few-shot set and the seed: what a
loss-vs-loss comparison holds fixed while p, the pair and the seed vary.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from gradtts.digest import differences, file_digest
from gradtts.errors import UserError
from gradtts.losses import SCHEDULE_ALIASES, SCHEDULED_LOSSES, STEP_T

#: Fields of each config group that change the trained weights.
_OPTIM = ("name", "lr", "betas", "eps", "weight_decay", "warmup_steps", "grad_clip")
_DATA = ("batch_size", "out_size", "bucket_batches", "drop_last", "skip_corrupt", "max_frames")
_TRAINER = ("seed", "precision", "compile", "tf32", "deterministic")
_ADAPT = ("n_spks", "pe_scale", "trainable")


class RunIdentityError(UserError, RuntimeError):
    """An output directory holds a run with another identity; the message lists the differences."""


def tensors_digest(state: Mapping[str, Any]) -> str:
    """sha256 over a state dict's names and tensor bytes, in its order (to compare weights across runs or ranks)."""
    h = hashlib.sha256()
    for k, v in state.items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def loss_identity(loss: Mapping[str, Any]) -> dict[str, Any]:
    """Only the loss fields its family reads (δ of l2 is meaningless and must not split arms).

    A schedule alias is resolved, so ``backwards`` and ``increasing`` give one identity; it is recorded as
    ``backwards``, the name the first such runs were recorded under, so that their identities and directory
    tags stay valid. ``step_t`` enters for the step schedule only, so the other identities are as before.
    ``reweighted_l2`` has the fields of the scheduled loss it is matched to (its measured w(t) table is, like
    the adaptive δ, a function of the starting model, the few-shot set and the seed, and recorded in ``run.json``).
    """
    name = loss.get("name", "l2")
    out: dict[str, Any] = {"name": name}
    if name == "huber":
        out["delta"] = float(loss["delta"])
    elif name in (*SCHEDULED_LOSSES, "adaptive_huber", "reweighted_l2"):
        if name == "adaptive_huber":
            out["quantile"] = float(loss.get("quantile", 0.5))
        else:
            out["delta_min"] = float(loss["delta_min"])
        schedule = SCHEDULE_ALIASES.get(loss["schedule"], loss["schedule"])
        out["schedule"] = _RECORDED_SCHEDULE.get(schedule, schedule)
        if schedule == "step":
            out["step_t"] = float(loss.get("step_t", STEP_T))
        if schedule == "snr":
            out["beta_min"], out["beta_max"] = loss.get("beta_min"), loss.get("beta_max")
    return out


#: Documented schedule name -> the name identities and tags record (see :func:`loss_identity`).
_RECORDED_SCHEDULE = {"increasing": "backwards"}

# Label and tag formats of the losses whose fields are not a schedule with its delta_min; those (every scheduled
# loss, reweighted_l2) share one pattern, so a loss registered in gradtts.losses needs no entry here.
_LABELS = {"huber": "huber(δ={delta:g})", "adaptive_huber": "adaptive_huber({schedule}, q={quantile:g})"}
_TAGS = {"huber": "huber_d{delta:g}", "adaptive_huber": "adaptive_huber_{schedule}_q{quantile:g}"}
_SCHEDULED_LABEL = "{name}({schedule}, δ_min={delta_min:g})"
_SCHEDULED_TAG = "{name}_{schedule}_dmin{delta_min:g}"


def _describe(loss: Mapping[str, Any], formats: Mapping[str, str], label: bool) -> str:
    ident = loss_identity(loss)
    fmt = formats.get(ident["name"])
    if not fmt and "delta_min" in ident:
        fmt = _SCHEDULED_LABEL if label else _SCHEDULED_TAG
    if not fmt:
        return str(ident["name"])
    fields = dict(ident)
    if "schedule" in fields:
        sched = fields["schedule"]
        if sched == "step":
            fields["schedule"] = f"step at t={ident['step_t']:g}" if label else f"step{ident['step_t']:g}"
        elif label:
            # A label is for readers: the documented name (tags keep the recorded one).
            fields["schedule"] = SCHEDULE_ALIASES.get(sched, sched)
    return fmt.format(**fields)


def loss_label(loss: Mapping[str, Any]) -> str:
    """A human label, e.g. ``scheduled_huber(exponential, δ_min=0.1)``, ``cauchy(step at t=0.5, δ_min=0.1)``."""
    return _describe(loss, _LABELS, label=True)


def loss_tag(loss: Mapping[str, Any]) -> str:
    """A directory-safe tag: ``l2``, ``huber_d0.1``, ``scheduled_huber_exponential_dmin0.01``,
    ``tukey_step0.5_dmin0.1`` (the reverse-exponential schedule is tagged ``backwards`` under either name)."""
    return _describe(loss, _TAGS, label=False)


def filter_identity(flt: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The filter fields that change which clips are kept; None for no filter."""
    if not flt or flt.get("name", "none") == "none":
        return None
    out: dict[str, Any] = {"name": flt["name"], "drop": float(flt["drop"])}
    if flt["name"] == "residual":
        out["probe_steps"] = int(flt["probe_steps"])
        out["probe_t"] = [float(t) for t in flt["probe_t"]]
    else:
        out["encoder"], out["encoder_source"] = flt["encoder"], flt.get("encoder_source")
    return out


def lora_identity(adapt: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The LoRA fields of ``adapt``; None for full fine-tuning."""
    if not adapt or adapt.get("method", "full") == "full":
        return None
    return {"method": adapt["method"], "rank": int(adapt["rank"]),
            "alpha": None if adapt.get("alpha") is None else float(adapt["alpha"]),
            "lora_targets": sorted(adapt.get("lora_targets") or [])}


def _with_arm_parts(base: str, flt: Mapping[str, Any] | None, adapt: Mapping[str, Any] | None,
                    filter_fmt: str, lora_fmt: str) -> str:
    f, lo = filter_identity(flt), lora_identity(adapt)
    return base + (filter_fmt.format(**f) if f else "") + (lora_fmt.format(**lo) if lo else "")


def arm_label(loss: Mapping[str, Any], flt: Mapping[str, Any] | None = None,
              adapt: Mapping[str, Any] | None = None) -> str:
    """The loss label plus the filter and the adaptation method when they are not the defaults."""
    return _with_arm_parts(loss_label(loss), flt, adapt, " + {name} filter (drop {drop:g})", " + LoRA r={rank}")


def arm_tag(loss: Mapping[str, Any], flt: Mapping[str, Any] | None = None,
            adapt: Mapping[str, Any] | None = None) -> str:
    """A directory-safe arm tag: :func:`loss_tag`, then ``_filter-residual0.3`` and ``_lora-r4`` when set."""
    return _with_arm_parts(loss_tag(loss), flt, adapt, "_filter-{name}{drop:g}", "_lora-r{rank}")


def run_identity(cfg: DictConfig | Mapping[str, Any], manifest_file: str | Path | None = None) -> dict[str, Any]:
    """The identity of a training config (resolved), with digests of the base checkpoint and data manifest."""
    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    ident: dict[str, Any] = {
        "loss": loss_identity(c["loss"]),
        "optim": {k: c["optim"].get(k) for k in _OPTIM},
        "data": {k: c["data"].get(k) for k in _DATA},
        "trainer": {k: c["trainer"].get(k) for k in _TRAINER},
    }
    adapt = c.get("adapt") or {}
    flt = filter_identity(c.get("filter"))
    if flt:
        ident["filter"] = flt
    if adapt.get("checkpoint"):
        ident["adapt"] = {k: adapt.get(k) for k in _ADAPT}
        # Added only when set, so that the identities (and arms) of full fine-tuning runs stay what they were.
        ident["adapt"].update(lora_identity(adapt) or {})
        ident["adapt"]["checkpoint_sha256"] = file_digest(adapt["checkpoint"])
    else:
        ident["model"] = dict(c["model"])
        init = (c["trainer"] or {}).get("init_from")
        if init:
            # The starting weights decide the run as much as the config does.
            ident["init_sha256"] = file_digest(init)
    if manifest_file is not None:
        ident["data"]["manifest_sha256"] = file_digest(manifest_file)
    return ident


def arm_of(identity: Mapping[str, Any]) -> dict[str, Any]:
    """The identity without the few-shot set and the seed."""
    arm = json.loads(json.dumps(identity))
    arm["data"].pop("manifest_sha256", None)
    arm["trainer"].pop("seed", None)
    return arm


def digest(obj: Any, n: int = 12) -> str:
    """Short stable hash of JSON-able data."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def check_same_run(where: str | Path, stored: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> None:
    """Raise :class:`RunIdentityError` unless ``stored`` equals ``wanted``."""
    if stored is None:
        raise RunIdentityError(f"{where}: holds a run written without a recorded identity, so resuming into it "
                               "cannot be checked; use a new trainer.out_dir (or delete this one)")
    diff = differences(stored, wanted)
    if diff:
        raise RunIdentityError(f"{where}: holds a different run, so it cannot be resumed into; differences "
                               "(stored -> requested):\n  " + "\n  ".join(diff) +
                               "\nUse another trainer.out_dir for this configuration (or delete the old run).")
