"""Side-by-side speed of the training step and of synthesis; prints tables of absolute numbers and ratios.

Training (each variant in a fresh subprocess, so peak memory is its own): steps/s and peak memory for
l2 vs scheduled_huber, fp32 vs bf16 (autocast of the U-Net), eager vs torch.compile. Plus the cost
of the score loss itself (forward + backward on the residual) relative to a step, which is what the
"< 3 % per step" requirement is about. Synthesis: real-time factor (wall time / audio duration,
acoustic model only) for N = 10, 25, 50 steps at batch 1 and 16.

    python benchmarks/bench_train.py                       # GPU if present, official-size model
    python benchmarks/bench_train.py --device cpu --model small --batch 4 --steps 4 --texts 16
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time

import torch

print = functools.partial(print, flush=True)  # noqa: A001 - progress visible when piped

VARIANTS = {  # name: (loss, precision, compile)
    "l2/fp32/eager": ("l2", "fp32", False),
    "huber_sched/fp32/eager": ("scheduled_huber", "fp32", False),
    "l2/bf16/eager": ("l2", "bf16", False),
    "l2/fp32/compiled": ("l2", "fp32", True),
}


def _model(name: str, n_spks: int):
    from gradtts.model.config import build_model
    from gradtts.train.cli import compose

    return build_model(compose(["data.feats_dir=x", f"model={name}"]).model, n_spks=n_spks)


def _batch(args, device):
    g = torch.Generator().manual_seed(0)
    b, tx, ty = args.batch, args.tokens, args.frames
    x = torch.randint(1, 148, (b, tx), generator=g)
    x[:, ::2] = 148
    y = torch.randn(b, 80, ty, generator=g) - 5.0
    lengths_x = torch.full((b,), tx)
    lengths_y = torch.full((b,), ty)
    spk = torch.arange(b) % 4
    return [t.to(device) for t in (x, lengths_x, y, lengths_y, spk)]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def child(args) -> dict:
    """One training variant: mean steps/s over timed steps, peak memory."""
    from gradtts.losses import loss_from_config
    from gradtts.train.adapt import clip_groups
    from gradtts.train.loop import _LossModule, _Recorder
    from gradtts.train.speed import autocast_module, compile_module

    loss_name, precision, compiled = VARIANTS[args.child]
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = _model(args.model, 4).to(device).train()
    if precision == "bf16":
        autocast_module(model.decoder.estimator, device.type)
    if compiled:
        compile_module(model.decoder.estimator)
    loss = _Recorder(loss_from_config({"name": loss_name, "delta_min": 0.01, "schedule": "exponential"}))
    module = _LossModule(model, loss, args.out_size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=device.type == "cuda" or None)
    batch = _batch(args, device)

    def step():
        dur, prior, diff, _ = module(*batch)
        opt.zero_grad(set_to_none=True)
        (dur + prior + diff).backward()
        for params in clip_groups(model).values():
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step()
    _sync(device)
    warm_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    _sync(device)
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"variant": args.child, "steps_per_s": args.steps / dt, "step_ms": 1000 * dt / args.steps,
            "peak_mb": peak, "warmup_s": warm_s}


def loss_overhead(args, device, step_ms: float) -> list[tuple[str, float, float]]:
    """Forward+backward time of each loss on a residual of the decoder's shape, minus L2's."""
    from gradtts.losses import build_loss

    shape = (args.batch, 80, args.out_size or args.frames)
    a = torch.randn(shape, device=device, requires_grad=True)
    t = torch.rand(args.batch, device=device)
    mask = torch.ones(args.batch, 1, shape[-1], device=device)
    out = []
    for name, loss in [("l2", build_loss("l2")), ("huber", build_loss("huber", delta=0.1)),
                       ("scheduled_huber/exponential", build_loss("scheduled_huber", delta_min=0.01)),
                       ("scheduled_huber/snr", build_loss("scheduled_huber", delta_min=0.01, schedule="snr"))]:
        reps = 200
        for _ in range(10):
            (loss(a, t) * mask).sum().backward()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            (loss(a, t) * mask).sum().backward()
        _sync(device)
        out.append((name, 1000 * (time.perf_counter() - t0) / reps))
    base = out[0][1]
    return [(n, ms, 100 * (ms - base) / step_ms) for n, ms in out]


def synth_rtf(args, device) -> list[dict]:
    from gradtts.model.inference import synthesize_mels
    from gradtts.synth import HOP, SAMPLE_RATE

    torch.manual_seed(0)
    model = _model(args.model, 4).to(device).eval()
    g = torch.Generator().manual_seed(1)
    texts = []
    for _ in range(args.texts):
        n_ids = int(torch.randint(max(1, args.tokens // 4), max(2, args.tokens // 2), (1,), generator=g))
        ids = torch.randint(1, 148, (n_ids,), generator=g).tolist()
        tokens = [148] * (2 * len(ids) + 1)
        tokens[1::2] = ids
        texts.append(tokens)
    rows = []
    for n in args.synth_steps:
        for bs in (1, 16):
            synthesize_mels(model, texts[:2], [0, 1], spk=0, n_timesteps=2, length_scale=args.length_scale,
                            batch_size=bs)  # warm-up
            _sync(device)
            t0 = time.perf_counter()
            mels = synthesize_mels(model, texts, list(range(len(texts))), spk=0, n_timesteps=n,
                                   length_scale=args.length_scale, batch_size=bs)
            _sync(device)
            wall = time.perf_counter() - t0
            audio_s = sum(m.shape[-1] for m in mels) * HOP / SAMPLE_RATE
            rows.append({"N": n, "batch": bs, "rtf": wall / audio_s, "audio_s": audio_s, "wall_s": wall})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="gradtts", help="conf/model preset: gradtts | small | tiny")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--tokens", type=int, default=120, help="tokens per utterance (with blanks)")
    p.add_argument("--frames", type=int, default=400, help="mel frames per utterance")
    p.add_argument("--out-size", type=int, default=172)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    p.add_argument("--texts", type=int, default=32,
                   help="synthesis: number of random texts (tokens//4 to tokens//2 symbols each)")
    p.add_argument("--synth-steps", type=int, nargs="+", default=[10, 25, 50])
    p.add_argument("--length-scale", type=float, default=3.0,
                   help="random weights predict ~1 frame/token; scale to a speech-like frame rate")
    p.add_argument("--skip-synth", action="store_true")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--timeout", type=int, default=1200, help="per training variant, seconds")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()} threads"
    print(f"# bench_train on {name}; torch {torch.__version__}; model={args.model} batch={args.batch} "
          f"tokens={args.tokens} frames={args.frames} out_size={args.out_size} steps={args.steps}")
    results = {}
    passthrough = ["--device", args.device, "--model", args.model, "--batch", str(args.batch), "--tokens",
                   str(args.tokens), "--frames", str(args.frames), "--out-size", str(args.out_size),
                   "--steps", str(args.steps), "--warmup", str(args.warmup)]
    for v in ([] if args.skip_train else args.variants.split(",")):
        cmd = [sys.executable, __file__, *passthrough, "--child", v]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{v}: timed out after {args.timeout}s")
            continue
        if r.returncode != 0:
            print(f"{v}: failed\n{r.stderr[-1500:]}")
            continue
        results[v] = json.loads(r.stdout.strip().splitlines()[-1])
    base = results.get("l2/fp32/eager")
    if results:
        print("\n| variant | steps/s | ms/step | peak MB | vs l2/fp32/eager (time) | warm-up s |")
        print("|---|---:|---:|---:|---:|---:|")
    for v, r in results.items():
        ratio = f"{r['step_ms'] / base['step_ms']:.3f}" if base else "-"
        print(f"| {v} | {r['steps_per_s']:.3f} | {r['step_ms']:.1f} | {r['peak_mb']:.0f} | {ratio} "
              f"| {r['warmup_s']:.1f} |")
    if base:
        print("\n| loss | fwd+bwd ms | extra vs l2, % of an l2 step |")
        print("|---|---:|---:|")
        for n, ms, pct in loss_overhead(args, device, base["step_ms"]):
            print(f"| {n} | {ms:.3f} | {pct:+.2f} % |")
    if not args.skip_synth:
        rows = synth_rtf(args, device)
        print("\n| N steps | batch | RTF | audio s | wall s | speed-up of batch 16 |")
        print("|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            one = next(x for x in rows if x["N"] == r["N"] and x["batch"] == 1)
            print(f"| {r['N']} | {r['batch']} | {r['rtf']:.4f} | {r['audio_s']:.1f} | {r['wall_s']:.2f} | "
                  f"{one['rtf'] / r['rtf']:.2f}x |")


if __name__ == "__main__":
    main()
