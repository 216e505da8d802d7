"""Synthesis: official computation path, per-utterance seeds, texts, speakers, wav outputs and skipping."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from gradtts.model.checkpoint import save_checkpoint
from gradtts.model.config import build_model
from gradtts.model.masks import fix_len_compatibility, sequence_mask
from gradtts.synth import (SynthConfig, read_texts, resolve_speaker, run_synthesis, synthesize_mels,
                           utterance_seed)
from gradtts.train.cli import compose


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(compose(["data.feats_dir=x", "model=tiny"]).model, n_spks=3).eval()
    root = tmp_path_factory.mktemp("ckpt")
    for step in (10, 20):
        save_checkpoint(root / f"step_{step:07d}.pt", model, dictionary=None, spk2id={"a": 0, "b": 1, "T": 2},
                        step=step, new_speakers=["T"])
    return model, root


TOKENS = [[148, 20, 148, 33, 148, 41, 148], [148, 5, 148, 60, 148, 61, 148, 70, 148, 71, 148], [148, 99, 148]]


def test_ode_path_equals_the_models_own_computation(tiny):
    model, _ = tiny
    seed = 123
    mel = synthesize_mels(model, [TOKENS[1]], [seed], spk=1, n_timesteps=4, temperature=1.5)[0]
    x = torch.tensor([TOKENS[1]])
    mu_y, _, _ = model(x, torch.tensor([len(TOKENS[1])]), 1, spk=torch.tensor([1]))
    n = mu_y.shape[-1]
    assert mel.shape == (80, n)
    t = fix_len_compatibility(n)
    mu = torch.nn.functional.pad(mu_y, (0, t - n))
    mask = sequence_mask(torch.tensor([n]), t).unsqueeze(1).float()
    noise = torch.zeros(1, 80, t)
    noise[0, :, :n] = torch.randn(80, n, generator=torch.Generator().manual_seed(seed))
    want = model.decoder(mu + noise / 1.5, mask, mu, 4, False, model.spk_emb(torch.tensor([1])))[0, :, :n]
    torch.testing.assert_close(mel, want)


@pytest.mark.parametrize("stoc", [False, True])
def test_deterministic_per_seed_and_independent_of_other_texts(tiny, stoc):
    model, _ = tiny
    seeds = [utterance_seed(7, u) for u in ("u0", "u1", "u2")]
    kw = dict(spk=2, n_timesteps=3, stoc=stoc, batch_size=1)
    all3 = synthesize_mels(model, TOKENS, seeds, **kw)
    again = synthesize_mels(model, TOKENS, seeds, **kw)
    alone = synthesize_mels(model, [TOKENS[2]], [seeds[2]], **kw)
    assert all(torch.equal(a, b) for a, b in zip(all3, again))
    assert torch.equal(all3[2], alone[0])
    other = synthesize_mels(model, [TOKENS[2]], [utterance_seed(8, "u2")], **kw)
    assert not torch.equal(other[0], alone[0])
    # Batched: the same lengths (the encoder is length-masked) and deterministic; values differ slightly
    # from batch 1 because the U-Net's GroupNorm sees the padding (see gradtts.synth).
    batched = synthesize_mels(model, TOKENS, seeds, **dict(kw, batch_size=3))
    assert [m.shape for m in batched] == [m.shape for m in all3]
    assert all(torch.equal(a, b) for a, b in zip(batched, synthesize_mels(model, TOKENS, seeds, **dict(kw, batch_size=3))))


def test_read_texts_and_speakers(tmp_path, tiny):
    f = tmp_path / "t.txt"
    f.write_text("utt_a\tHello there.\n\nJust a sentence\n")
    assert read_texts(f) == [("utt_a", "Hello there."), ("line0003", "Just a sentence")]
    (tmp_path / "set").mkdir()
    (tmp_path / "set/test_texts.txt").write_text("x1\tOne.\nx1\tTwo.\n")
    with pytest.raises(ValueError, match=r"test_texts.txt:2: utterance id 'x1' repeats line 1"):
        read_texts(tmp_path / "set")
    (tmp_path / "bad.txt").write_text("a b/c\tOne.\n")
    with pytest.raises(ValueError, match="bad.txt:1: utterance id"):
        read_texts(tmp_path / "bad.txt")

    class Info:
        path, spk2id, extra = "ck.pt", {"a": 0, "T": 2}, {"new_speakers": ["T"]}
    assert resolve_speaker(None, Info, 3) == 2 and resolve_speaker("a", Info, 3) == 0
    assert resolve_speaker("1", Info, 3) == 1 and resolve_speaker(None, Info, 1) is None
    with pytest.raises(ValueError, match="speaker 'zz' is not in the checkpoint's spk2id"):
        resolve_speaker("zz", Info, 3)


def test_run_synthesis_writes_wavs_and_skips_existing(tmp_path, tiny):
    _, ckdir = tiny
    texts = tmp_path / "texts.txt"
    texts.write_text("s1\tThe cat sat.\ns2\tA second, longer test sentence here.\n")
    cfg = SynthConfig(texts=str(texts), checkpoints=[str(ckdir)], steps=[20], out_dir=str(tmp_path / "syn"),
                      n_timesteps=2, vocoder="griffinlim", device="cpu", save_mels=True)
    report = run_synthesis(cfg)
    out = tmp_path / "syn/step_0000020"
    assert report[str(ckdir / "step_0000020.pt")] == {"out": str(out), "written": 2, "skipped": 0}
    assert not (tmp_path / "syn/step_0000010").exists()
    for u in ("s1", "s2"):
        wav, sr = sf.read(out / f"{u}.wav")
        mel = np.load(out / f"{u}.npy")
        assert sr == 22050 and len(wav) == mel.shape[1] * 256 and np.abs(wav).max() > 0
    (out / "s1.wav").write_bytes(b"kept")
    again = run_synthesis(cfg)
    assert again[str(ckdir / "step_0000020.pt")]["skipped"] == 2 and (out / "s1.wav").read_bytes() == b"kept"


def test_official_dictionary_must_be_given(tmp_path, tiny):
    model, _ = tiny
    ck = tmp_path / "off.pt"
    torch.save(model.state_dict(), ck)  # a bare (official-format) state dict
    texts = tmp_path / "t.txt"
    texts.write_text("Hello.\n")
    cfg = SynthConfig(texts=str(texts), checkpoints=[str(ck)], out_dir=str(tmp_path / "o"), speaker="1",
                      vocoder="griffinlim", device="cpu")
    with pytest.raises(ValueError, match="synth.dictionary=PATH"):
        run_synthesis(cfg)


def test_cli(tmp_path, tiny):
    _, ckdir = tiny
    (tmp_path / "t.txt").write_text("c1\tGood morning.\n")
    r = subprocess.run([sys.executable, "-m", "gradtts.synth", f"synth.texts={tmp_path / 't.txt'}",
                        f"synth.checkpoints=[{ckdir / 'step_0000010.pt'}]", f"synth.out_dir={tmp_path / 'o'}",
                        "synth.n_timesteps=2", "synth.vocoder=griffinlim", "synth.device=cpu"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "o/step_0000010/c1.wav").is_file()
