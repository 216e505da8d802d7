"""The training loop: base training from scratch and few-shot fine-tuning, resumable bit-exactly on CPU.

Determinism: every random draw of a step comes from the torch, numpy and Python generators of the
process (t, z, dropout, segment offsets) or from the sampler's (seed, epoch) permutation; all of
them are saved in each checkpoint and restored on resume, and nothing outside the steps draws from
them (samples for TensorBoard run under a forked RNG; the data loader seeds its workers from a
generator of its own).
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gradtts.data.manifest import ManifestError, read_manifest
from gradtts.device import machine_record
from gradtts.io import atomic_write_text
from gradtts.losses import ScoreLoss, loss_from_config, matched_loss_from_config
from gradtts.model.checkpoint import checkpoint_payload, load_checkpoint
from gradtts.model.config import build_model
from gradtts.model.lora import inject_lora, lora_info, lora_parameters, lora_state_dict, plain_state_dict
from gradtts.text.cmudict import same_source
from gradtts.train import ddp
from gradtts.train.adapt import (add_speaker_rows, apply_train_mode, check_base_dictionary, clip_groups,
                                 set_trainable)
from gradtts.train.config import ADAPT_METHODS, TrainConfig
from gradtts.train.data import BucketBatchSampler, MelDataset, collate
from gradtts.train.filters import FilterResult, kept_items, run_filter
from gradtts.train.identity import (arm_label, arm_of, arm_tag, check_same_run, digest, loss_tag, run_identity,
                                    tensors_digest)
from gradtts.train.probe import DEFAULT_T, adaptive_delta, probe_residuals, reweight_record
from gradtts.train.speed import autocast_module, compile_module, fused_adam_available, precision_dtype
from gradtts.train.state import CheckpointDir, load_training_state, rng_restore, rng_snapshot
from gradtts.train.tracker import UtteranceTracker
from gradtts.train.voice import save_voice

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss or gradient; the message names step, utterances and checkpoint."""


class _Recorder:
    """Wraps the score loss to keep the last batch's t and per-utterance sum of squared residuals."""

    def __init__(self, loss: ScoreLoss):
        self.loss = loss
        self.t: torch.Tensor | None = None
        self.sq: torch.Tensor | None = None

    def __call__(self, residual: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.t = t.detach()
        self.sq = residual.detach().float().pow(2).sum(dim=tuple(range(1, residual.dim())))
        return self.loss(residual, t)


class _LossModule(nn.Module):
    """``compute_loss`` as ``forward`` so that DistributedDataParallel can wrap it."""

    def __init__(self, model: nn.Module, score_loss: _Recorder, out_size: int | None):
        super().__init__()
        self.model = model
        self.score_loss = score_loss
        self.out_size = out_size

    def forward(self, x, x_lengths, y, y_lengths, spk):
        return self.model.compute_loss(x, x_lengths, y, y_lengths, spk, self.out_size, score_loss=self.score_loss,
                                       return_per_utt=True)


def _as_config(cfg: Any) -> DictConfig:
    """Validate any config form against the schema."""
    if isinstance(cfg, TrainConfig):
        cfg = OmegaConf.structured(cfg)
    return OmegaConf.merge(OmegaConf.structured(TrainConfig), cfg)


def state_digest(model: nn.Module) -> str:
    """sha256 over the state dict's names and bytes (to compare weights across runs or ranks)."""
    return tensors_digest(model.state_dict())


def _manifest_items(cfg: DictConfig):
    """The features manifest and the utterances a run may train on (``data.skip_corrupt``/``data.max_frames``)."""
    manifest = read_manifest(cfg.data.feats_dir)
    items = [it for it in manifest.items if not (cfg.data.skip_corrupt and it.corrupt)]
    if cfg.data.max_frames:
        items = [it for it in items if it.frames <= cfg.data.max_frames]
    if not items:
        raise ManifestError(f"{manifest.root}: no utterances left after data.skip_corrupt/data.max_frames")
    return manifest, items


def _identity(cfg: DictConfig) -> dict[str, Any]:
    feats = Path(cfg.data.feats_dir)
    return run_identity(cfg, feats / "manifest.jsonl" if feats.is_dir() else feats)


class Trainer:
    """One training run; see :func:`train`. ``kept``: the clips a filter kept (None: every clip)."""

    def __init__(self, cfg: DictConfig, ctx: ddp.DistContext, kept: FilterResult | None = None):
        self.cfg, self.ctx = cfg, ctx
        tc = cfg.trainer
        self.out = Path(tc.out_dir)
        self.device = ctx.device
        seed = int(tc.seed) + ctx.rank
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        if tc.tf32 and self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        manifest, items = _manifest_items(cfg)
        self.filter_result = kept
        items = kept_items(items, kept)
        self.manifest, self.items = manifest, items
        self.identity = _identity(cfg)
        self._build_model(manifest, items)
        self._check_tokens(items)

        self.adaptive = self._measure_delta() if cfg.loss.name == "adaptive_huber" else None
        self.reweight = self._measure_weights() if cfg.loss.name == "reweighted_l2" else None
        self.loss = _Recorder(loss_from_config(cfg.loss, self.model.config["beta_min"], self.model.config["beta_max"],
                                               measured_delta_min=(self.adaptive or {}).get("delta_min"),
                                               measured_weights=None if self.reweight is None else
                                               (self.reweight["probe_t"], self.reweight["weights"])))
        dtype = precision_dtype(tc.precision)
        if dtype is not None:
            # On CPUs without native bf16 this is slower than fp32; on the 2-core study machine it took
            # 0.73x the fp32 step time (benchmarks/RESULTS.md), so it is the caller's choice, not warned.
            autocast_module(self.model.decoder.estimator, self.device.type, dtype)
        if tc.compile:
            compile_module(self.model.decoder.estimator)
        self.module: nn.Module = _LossModule(self.model, self.loss, cfg.data.out_size)
        if ctx.distributed:
            self.module = nn.parallel.DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self._build_optimizer()
        self._build_data(items)
        self.ckpts = CheckpointDir(self.out / "ckpt", list(tc.save_steps), tc.keep_last)
        # Continued training counts on from the starting checkpoint's step.
        self.step, self.epoch, self.batch_in_epoch = self.init_step, 0, 0
        self.last_good: Path | None = None
        self.history: list[dict[str, float]] = []
        self.saved: list[str] = []
        self.writer = None

    # ---- set-up -------------------------------------------------------------------------------------

    def _build_model(self, manifest, items) -> None:
        cfg = self.cfg
        speakers = sorted({it.spk for it in items})
        self.init_step = 0
        if cfg.adapt.checkpoint and cfg.trainer.init_from:
            raise ValueError("trainer.init_from and adapt.checkpoint exclude each other: init_from continues base "
                             "training on the checkpoint's speakers, adapt.checkpoint fine-tunes to new ones")
        if cfg.adapt.checkpoint:
            base, info = load_checkpoint(cfg.adapt.checkpoint, n_spks=cfg.adapt.n_spks, pe_scale=cfg.adapt.pe_scale)
            check_base_dictionary(info, manifest.root, manifest.dictionary)
            self.dictionary = info.dictionary
            self.n_base_spks = base.n_spks
            spk2id = dict(info.spk2id)
            if base.n_spks > 1:
                new = [s for s in speakers if s not in spk2id]
                model = add_speaker_rows(base, len(new))
                for k, s in enumerate(new):
                    spk2id[s] = base.n_spks + k
                self.new_speakers = new
            else:
                if len(speakers) > 1:
                    log.warning("single-speaker base model: all %d manifest speakers share its voice", len(speakers))
                model, spk2id, self.new_speakers = base, {s: 0 for s in speakers}, []
            self.parts = list(cfg.adapt.trainable)
            self.track = cfg.trainer.track_utts is not False
        elif cfg.trainer.init_from:
            model, spk2id, self.dictionary = self._init_from(cfg.trainer.init_from, speakers)
            self.n_base_spks, self.new_speakers = None, []
            self.parts = ["encoder", "decoder", "spk_emb"]
            self.track = bool(cfg.trainer.track_utts)
        else:
            n_spks = max(int(cfg.model.n_spks), len(speakers)) if len(speakers) > 1 else int(cfg.model.n_spks)
            model = build_model(cfg.model, n_spks=n_spks)
            spk2id = {s: (i if n_spks > 1 else 0) for i, s in enumerate(speakers)}
            self.dictionary = manifest.dictionary
            self.n_base_spks, self.new_speakers = None, []
            self.parts = ["encoder", "decoder", "spk_emb"]
            self.track = bool(cfg.trainer.track_utts)
        if manifest.dictionary and self.dictionary and not same_source(manifest.dictionary, self.dictionary):
            log.warning("text dictionary mismatch: the features in %s were made with %r, the checkpoint was "
                        "trained with %r; words the two dictionaries pronounce differently will be off (re-run "
                        "the feature stage with the checkpoint's dictionary to avoid this)", manifest.root,
                        manifest.dictionary, self.dictionary)
        self.spk2id = spk2id
        self.model = model.to(self.device)
        self.lora = self._lora_wanted()
        if self.lora:
            # The U-Net stays frozen and gets adapters; "decoder" in adapt.trainable means its adapters.
            others = [p for p in self.parts if p != "decoder"]
            if others:
                params = set_trainable(self.model, others, self.n_base_spks)
            else:
                self.model.requires_grad_(False)
                params = []
            ac = cfg.adapt
            inject_lora(self.model.decoder.estimator, int(ac.rank), ac.alpha, list(ac.lora_targets))
            self.params = params + lora_parameters(self.model)
        else:
            self.params = set_trainable(self.model, self.parts, self.n_base_spks)
        apply_train_mode(self.model, self.parts)

    def _lora_wanted(self) -> bool:
        method = str(self.cfg.adapt.method)
        if method not in ADAPT_METHODS:
            raise ValueError(f"adapt.method={method!r}: choose one of {', '.join(ADAPT_METHODS)}")
        if method == "lora" and not self.cfg.adapt.checkpoint:
            raise ValueError("adapt.method=lora adapts a base model: set adapt.checkpoint (base training updates "
                             "every weight)")
        return method == "lora"

    def _init_from(self, path: str, speakers: list[str]):
        """Weights of a base checkpoint to continue training on its own speakers (config from the file)."""
        model, info = load_checkpoint(path)
        check_base_dictionary(info, self.manifest.root, self.manifest.dictionary)
        spk2id = dict(info.spk2id)
        if model.n_spks > 1:
            unknown = [s for s in speakers if s not in spk2id]
            if unknown:
                raise ManifestError(f"{self.manifest.root}: speakers {unknown[:5]} are not in {path} (it knows "
                                    f"{len(spk2id)}: {sorted(spk2id)[:5]}...); trainer.init_from continues training "
                                    "on the checkpoint's own speakers, use adapt.checkpoint to add new ones")
        else:
            spk2id = {s: 0 for s in speakers}
        self.init_step = int(info.step or 0)
        return model, spk2id, info.dictionary

    def _measure_delta(self) -> dict[str, Any]:
        """The adaptive δ rule: delta_min = a quantile of the starting model's |residual| on the training set.

        Measured on the weights this run starts from (before any resume loads later ones), with seeded noise
        and the training random streams untouched, so a resumed run measures the same value.
        """
        q = float(self.cfg.loss.quantile)
        probed = probe_residuals(self.model, MelDataset(self.items, self.spk2id, self.model.n_feats), DEFAULT_T,
                                 seed=int(self.cfg.trainer.seed))
        value = adaptive_delta(probed.abs_residuals, q)
        log.info("adaptive_huber: delta_min = %.4g, the %g quantile of %d residual elements", value, q,
                 probed.abs_residuals.size)
        return {"delta_min": value, "quantile": q, "probe_t": list(DEFAULT_T),
                "n_elements": int(probed.abs_residuals.size)}

    def _measure_weights(self) -> dict[str, Any]:
        """The reweighted L2 arm's w(t) table, measured like the adaptive δ (starting weights, seeded noise).

        A run that recorded one already (a resume) takes that one: measuring again gives it only up to float
        rounding (CPU kernels vary), and the resumed steps must train with the table the first ones used.
        """
        stored = self.out / "run.json"
        record = json.loads(stored.read_text(encoding="utf-8")) if stored.is_file() else {}
        if record.get("reweight") and record.get("identity") == json.loads(json.dumps(self.identity)):
            return record["reweight"]
        mc = self.model.config
        record = reweight_record(self.model, MelDataset(self.items, self.spk2id, self.model.n_feats),
                                 matched_loss_from_config(self.cfg.loss, mc["beta_min"], mc["beta_max"]),
                                 seed=int(self.cfg.trainer.seed))
        log.info("reweighted_l2: w(t) from %.4g to %.4g over %d times, matched to %s", min(record["weights"]),
                 max(record["weights"]), len(record["weights"]), record["matched"])
        return record

    def _check_tokens(self, items) -> None:
        n_vocab = self.model.n_vocab
        for it in items:
            if max(it.tokens) >= n_vocab:
                raise ManifestError(f"{self.manifest.root / 'manifest.jsonl'}: utterance {it.utt!r} has token id "
                                    f"{max(it.tokens)} >= n_vocab={n_vocab}; the features were made for another "
                                    "symbol table")

    def _build_optimizer(self) -> None:
        oc = self.cfg.optim
        if oc.name != "adam":
            raise ValueError(f"optim.name={oc.name!r}: only adam is implemented (the official recipe)")
        if oc.weight_decay and "spk_new" in self.parts:
            raise ValueError("optim.weight_decay > 0 would move the frozen base speaker rows (spk_new trains by "
                             "gradient mask); use weight_decay=0 or adapt.trainable with spk_emb")
        fused = fused_adam_available(self.device) if oc.fused is None else bool(oc.fused)
        self.optimizer = torch.optim.Adam(self.params, lr=oc.lr, betas=tuple(oc.betas), eps=oc.eps,
                                          weight_decay=oc.weight_decay, fused=fused or None)
        warmup = int(oc.warmup_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup > 0 else 1.0)

    def _build_data(self, items) -> None:
        dc, tc = self.cfg.data, self.cfg.trainer
        self.dataset = MelDataset(items, self.spk2id, self.model.n_feats)
        self.sampler = BucketBatchSampler(self.dataset.lengths, dc.batch_size, seed=int(tc.seed),
                                          bucket_batches=dc.bucket_batches, drop_last=dc.drop_last,
                                          rank=self.ctx.rank, world=self.ctx.world)
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=self.sampler, collate_fn=collate, num_workers=dc.num_workers,
            pin_memory=bool(dc.pin_memory and self.device.type == "cuda"),
            generator=torch.Generator().manual_seed(int(tc.seed)))
        self.tracker = (UtteranceTracker([it.utt for it in items], [it.spk for it in items],
                                         [it.corrupt for it in items]) if self.track else None)

    # ---- checkpoints --------------------------------------------------------------------------------

    def resume(self) -> bool:
        """Load the latest checkpoint of ``out_dir/ckpt`` if any; True when resumed."""
        latest = self.ckpts.latest() if self.cfg.trainer.resume else None
        if latest is None:
            return False
        state = load_training_state(latest)
        check_same_run(latest, state.get("identity"), self.identity)
        try:
            self.model.load_state_dict(self._unmerged(state) if self.lora else state["model"], strict=True)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise RuntimeError(f"{latest}: cannot resume, the checkpoint does not fit this run's model (different "
                               f"data, speakers or model config?); use a new trainer.out_dir\n{exc}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.epoch, self.batch_in_epoch = int(state["sampler"]["epoch"]), int(state["sampler"]["batch"])
        if self.tracker is not None and state.get("tracker"):
            self.tracker.load_state_dict(state["tracker"])
        rngs = state["rng"]
        if len(rngs) == self.ctx.world:
            rng_restore(rngs[self.ctx.rank])
        else:
            log.warning("%s was written by %d processes, this run has %d: random streams are reseeded (the run "
                        "stays valid but not bit-identical)", latest, len(rngs), self.ctx.world)
            s = int(self.cfg.trainer.seed) + self.ctx.rank + 1_000_003 * self.step
            random.seed(s)
            np.random.seed(s % 2 ** 32)
            torch.manual_seed(s)
        self.last_good = latest
        self._truncate_log()
        return True

    def _unmerged(self, state: dict[str, Any]) -> dict[str, torch.Tensor]:
        """A LoRA checkpoint's weights in the live model's form: its adapters, the frozen base convolutions of
        this model (never trained), and every other tensor from the checkpoint's merged state dict."""
        plain, adapters = state["model"], state.get("lora")
        if adapters is None:
            raise ValueError("the checkpoint holds no LoRA adapters (was it written by a full fine-tuning run?)")
        own = self.model.state_dict()
        return {k: adapters[k] if "lora_" in k else (v if ".base." in k else plain[k]) for k, v in own.items()}

    def _should_save(self, step: int) -> bool:
        tc = self.cfg.trainer
        return step in set(tc.save_steps) or (tc.save_every > 0 and step % tc.save_every == 0) or step == tc.max_steps

    def save(self) -> Path | None:
        rngs = ddp.gather_objects(self.ctx, rng_snapshot())
        path = None
        if self.ctx.is_main:
            payload = checkpoint_payload(
                self.model, dictionary=self.dictionary, spk2id=self.spk2id, step=self.step,
                optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(), rng=rngs,
                sampler={"epoch": self.epoch, "batch": self.batch_in_epoch},
                tracker=self.tracker.state_dict() if self.tracker else None,
                train=OmegaConf.to_container(self.cfg, resolve=True), identity=self.identity,
                n_base_spks=self.n_base_spks,
                new_speakers=list(self.new_speakers), trainable=list(self.parts), loss=repr(self.loss.loss))
            if self.lora:
                # "model" stays a plain Grad-TTS (adapters merged) so that synthesis and scoring load it as is.
                payload.update(model=plain_state_dict(self.model), lora=lora_state_dict(self.model),
                               lora_config=lora_info(self.model.decoder.estimator))
            if self.tracker is not None:
                # Companions before the checkpoint: a kill leaves an orphan table (removed when the dir is
                # next opened), never a checkpoint without its table.
                self.tracker.write_tsv(self.ckpts.path(self.step).with_suffix(".residuals.tsv"))
            if self.lora:
                save_voice(self.ckpts.path(self.step).with_suffix(".voice.pt"), self.model,
                           base_path=self.cfg.adapt.checkpoint, n_base_spks=self.n_base_spks, spk2id=self.spk2id,
                           dictionary=self.dictionary, step=self.step)
            path = self.ckpts.save(self.step, payload, OmegaConf.to_yaml(self.cfg, resolve=True))
            self.saved.append(str(path))
            last = self.history[-1] if self.history else None
            log.info("step %d: saved %s%s", self.step, path, "" if last is None else
                     f" (loss dur {last['dur']:.4f}, prior {last['prior']:.4f}, diff {last['diff']:.4f})")
        ddp.barrier(self.ctx)
        self.last_good = self.ckpts.path(self.step)
        return path

    def run_record(self) -> dict[str, Any]:
        """What ``run.json`` says of this run: identity, arm, and what was actually trained on."""
        n_corrupt = sum(1 for it in self.items if it.corrupt)
        study = self.cfg.get("study")
        cfg = self.cfg
        return {"identity": self.identity, "arm_id": digest(arm_of(self.identity)),
                "arm": arm_label(cfg.loss, cfg.filter, cfg.adapt), "arm_tag": arm_tag(cfg.loss, cfg.filter, cfg.adapt),
                "loss": str(self.cfg.loss.name), "loss_tag": loss_tag(self.cfg.loss),
                "seed": int(self.cfg.trainer.seed),
                "study": OmegaConf.to_container(study, resolve=True) if study is not None else None,
                "feats_dir": str(self.manifest.root), "n_train": len(self.items), "n_corrupt": n_corrupt,
                "p_actual": n_corrupt / len(self.items), "base_checkpoint": self.cfg.adapt.checkpoint,
                "new_speakers": list(self.new_speakers),
                "filter": self.filter_result.summary() if self.filter_result is not None else None,
                "adaptive": self.adaptive, "reweight": self.reweight, "lora": self._lora_record(),
                "machine": machine_record(self.device)}

    def _lora_record(self) -> dict[str, Any] | None:
        """Adapter size and the voice file's bytes (of the last one written) for ``run.json``."""
        if not self.lora:
            return None
        info = lora_info(self.model.decoder.estimator)
        voices = sorted((self.out / "ckpt").glob("step_*.voice.pt"))
        return {"rank": info["rank"], "alpha": info["alpha"], "targets": info["targets"],
                "n_modules": len(info["modules"]), "n_params": info["n_params"],
                "voice_bytes": voices[-1].stat().st_size if voices else None}

    # ---- logging --------------------------------------------------------------------------------------

    def _log_file(self) -> Path:
        return self.out / "train_log.tsv"

    def _truncate_log(self) -> None:
        """Drop log lines past the resumed step (they were written by the killed run)."""
        path = self._log_file()
        if not self.ctx.is_main or not path.is_file():
            return
        lines = path.read_text().splitlines()
        kept = [ln for ln in lines[1:] if ln.split("\t")[0].isdigit() and int(ln.split("\t")[0]) <= self.step]
        atomic_write_text(path, "\n".join(lines[:1] + kept) + "\n")

    def _log(self, rec: dict[str, float], grad_norms: dict[str, float], steps_per_s: float) -> None:
        path = self._log_file()
        values = {**rec, "steps_per_s": steps_per_s}
        cols = ["dur", "prior", "diff", "lr", "delta_mean", "steps_per_s"]
        new = not path.is_file()
        with open(path, "a", encoding="utf-8") as f:
            if new:
                f.write("step\t" + "\t".join(cols) + "\n")
            f.write(f"{self.step}\t" + "\t".join(f"{values.get(c, float('nan')):.6g}" for c in cols) + "\n")
        if self.writer is not None:
            w = self.writer
            for k in ("dur", "prior", "diff"):
                w.add_scalar(f"loss/{k}", rec[k], self.step)
            w.add_scalar("loss/total", rec["dur"] + rec["prior"] + rec["diff"], self.step)
            w.add_scalar("lr", rec["lr"], self.step)
            w.add_scalar("speed/steps_per_s", steps_per_s, self.step)
            for k in ("delta_mean", "delta_min", "delta_max"):
                if k in rec:
                    w.add_scalar(f"delta/{k.split('_')[1]}", rec[k], self.step)
            for k, v in grad_norms.items():
                w.add_scalar(f"grad_norm/{k}", v, self.step)

    def _log_samples(self) -> None:
        """Mel images and audio of one training text, synthesised without touching the training RNG."""
        from gradtts.train.samples import log_samples

        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self.cfg.trainer.seed))
            self.model.eval()
            try:
                log_samples(self.writer, self.model, self.dataset, self.step, self.cfg.trainer.sample_timesteps,
                            self.device, self.cfg.trainer.vocoder)
            finally:
                apply_train_mode(self.model, self.parts)

    # ---- the step -------------------------------------------------------------------------------------

    def _train_step(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, float]]:
        dev = self.device
        nb = dev.type == "cuda"
        x, xl = batch["x"].to(dev, non_blocking=nb), batch["x_lengths"].to(dev, non_blocking=nb)
        y, yl = batch["y"].to(dev, non_blocking=nb), batch["y_lengths"].to(dev, non_blocking=nb)
        spk = batch["spk"].to(dev, non_blocking=nb) if self.model.n_spks > 1 else None
        dur, prior, diff, per_utt = self.module(x, xl, y, yl, spk)
        loss = dur + prior + diff
        if not ddp.all_finite(self.ctx, torch.stack([dur.detach(), prior.detach(), diff.detach()])):
            self._non_finite(batch, f"loss (dur={dur.item():.4g}, prior={prior.item():.4g}, diff={diff.item():.4g})")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norms = {}
        clip = self.cfg.optim.grad_clip
        for name, params in clip_groups(self.model).items():
            if params:
                norm = (torch.nn.utils.clip_grad_norm_(params, clip) if clip
                        else torch.linalg.vector_norm(
                            torch.stack([p.grad.norm() for p in params if p.grad is not None])))
                norms[name] = norm
        if norms and not ddp.all_finite(self.ctx, torch.stack(list(norms.values()))):
            shown = ", ".join(f"{k} norm={v.item():.4g}" for k, v in norms.items())
            self._non_finite(batch, f"gradient ({shown})")
        self.optimizer.step()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()

        rec = {"dur": dur.item(), "prior": prior.item(), "diff": diff.item(), "lr": lr}
        delta = self.loss.loss.delta(self.loss.t)
        if delta is not None:
            rec.update(delta_mean=delta.mean().item(), delta_min=delta.min().item(), delta_max=delta.max().item())
        if self.tracker is not None:
            seg = yl.clamp(max=self.cfg.data.out_size) if self.cfg.data.out_size else yl
            sq = (self.loss.sq / (seg.float() * self.model.n_feats)).cpu().tolist()
            parts = ddp.gather_objects(self.ctx, (batch["index"].tolist(), sq, per_utt.float().cpu().tolist()))
            for idx, sq_part, loss_part in parts:
                self.tracker.update(idx, sq_part, loss_part)
        return rec, {k: float(v) for k, v in norms.items()}

    def _non_finite(self, batch, what: str) -> None:
        utts = [self.dataset.items[i].utt for i in batch["index"].tolist()]
        where = f" on rank {self.ctx.rank}" if self.ctx.distributed else ""
        last = str(self.last_good) if self.last_good else "none (no checkpoint written yet)"
        raise NonFiniteLossError(
            f"non-finite {what} at step {self.step}{where}; batch utterances: {', '.join(utts)}; "
            f"last good checkpoint: {last}. Check these utterances' mels and texts in {self.manifest.root}, "
            "lower optim.lr, or restart: a re-run resumes from the last good checkpoint")

    # ---- the run --------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Train to ``trainer.max_steps`` (resuming if there is a checkpoint); the run's summary."""
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm():  # log lines go above the progress bar, not through it
            return self._run()

    def _run(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        tc = self.cfg.trainer
        record = self.run_record()
        stored = self.out / "run.json"
        if stored.is_file():
            check_same_run(stored, json.loads(stored.read_text(encoding="utf-8")).get("identity"), self.identity)
        resumed = self.resume()
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(stored, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
            if tc.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.out / "tb"))
            log.info("%s on %s: %d utterances, steps %d to %d, trainable %s -> %s",
                     "fine-tuning" if self.cfg.adapt.checkpoint else "training", self.manifest.root,
                     len(self.items), self.step, tc.max_steps, ",".join(self.parts), self.out)
            if resumed:
                log.info("resumed from %s at step %d", self.last_good, self.step)
        bar = tqdm(total=tc.max_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (self.ctx.is_main and tc.progress),
                   desc="fine-tune" if self.cfg.adapt.checkpoint else "train")
        if not resumed and self.step in set(tc.save_steps):
            self.save()  # the starting weights (step 0: the base model with its new speaker rows), before any update
        t_last, s_last = time.perf_counter(), self.step
        try:
            while self.step < tc.max_steps:
                self.sampler.set_position(self.epoch, self.batch_in_epoch)
                for batch in self.loader:
                    self.step += 1
                    self.batch_in_epoch += 1
                    rec, norms = self._train_step(batch)
                    self.history.append({"step": self.step, **rec})
                    bar.update(1)
                    if self.ctx.is_main and (self.step % tc.log_every == 0 or self.step == tc.max_steps):
                        now = time.perf_counter()
                        sps = (self.step - s_last) / max(now - t_last, 1e-9)
                        t_last, s_last = now, self.step
                        self._log(rec, norms, sps)
                        bar.set_postfix(dur=f"{rec['dur']:.3f}", prior=f"{rec['prior']:.3f}", diff=f"{rec['diff']:.3f}")
                    if self.writer is not None and tc.sample_every and self.step % tc.sample_every == 0:
                        self._log_samples()
                    if self._should_save(self.step):
                        self.save()
                    if self.step >= tc.max_steps:
                        break
                else:
                    self.epoch += 1
                    self.batch_in_epoch = 0
        finally:
            bar.close()
            if self.writer is not None:
                self.writer.close()
        digests = ddp.gather_objects(self.ctx, state_digest(self.model))
        summary = {"step": self.step, "out_dir": str(self.out),
                   "checkpoints": [str(self.ckpts.path(s)) for s in self.ckpts.steps()],
                   "spk2id": self.spk2id, "new_speakers": list(self.new_speakers), "world": self.ctx.world,
                   "rank_digests": digests, "last": self.history[-1] if self.history else None}
        if self.ctx.is_main:
            atomic_write_text(self.out / "train_done.json", json.dumps(summary, indent=1) + "\n")
            if self.lora:  # now with the size of the voice file written last
                atomic_write_text(self.out / "run.json",
                                  json.dumps(self.run_record(), indent=1, ensure_ascii=False) + "\n")
        summary["history"] = self.history
        return summary


def train(cfg: Any) -> dict[str, Any]:
    """Run training for a config (``TrainConfig``, dict or DictConfig). Returns a summary with the
    per-step loss history of this process, the checkpoints and the final weight digests per rank."""
    cfg = _as_config(cfg)
    if cfg.data.feats_dir in (None, "", "???"):
        raise ValueError("data.feats_dir is required (the features dir with manifest.jsonl)")
    saved = (torch.backends.mkldnn.enabled, torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    threads = torch.get_num_threads()
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    # After the thread count: the device line it logs names the threads training will use.
    ctx = ddp.setup(cfg.trainer.device)
    if cfg.trainer.deterministic:
        # oneDNN chooses CPU convolution kernels per shape on first use, so a resumed process (which meets
        # shapes in another order) drifts from the uninterrupted one by float rounding; the native kernels don't.
        torch.backends.mkldnn.enabled = False
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        kept = None
        if cfg.filter.name != "none":
            manifest, items = _manifest_items(cfg)
            kept = run_filter(cfg, manifest, items, _identity(cfg), lambda c: Trainer(_as_config(c), ctx).run(),
                              device=str(ctx.device), is_main=ctx.is_main)
        result = Trainer(cfg, ctx, kept).run()
        # Rank 0 still writes the summary after the last collective; a rank that tore the group down meanwhile
        # was once aborted by gloo ("terminate called without an active exception"). Leave together.
        ddp.barrier(ctx)
        return result
    finally:
        torch.backends.mkldnn.enabled, torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved
        torch.set_num_threads(threads)
        ddp.teardown(ctx)

