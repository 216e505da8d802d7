"""Synthesis: official computation path, per-utterance seeds, texts, speakers, wav outputs and skipping."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from gradtts.model.checkpoint import save_checkpoint
from gradtts.model.config import build_model
from gradtts.model.masks import fix_len_compatibility, sequence_mask
from gradtts.synth import (SynthCacheError, SynthConfig, read_texts, resolve_speaker, run_synthesis,
                           synthesize_mels, utterance_seed)
from gradtts.text import BLANK_ID, intersperse, text_to_sequence
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


def test_read_texts_formats_are_explicit(tmp_path, tiny):
    f = tmp_path / "t.txt"
    f.write_text("utt_a Hello there.\n\nutt_b\tTabbed, too.\n")
    assert read_texts(f, "kaldi") == [("utt_a", "Hello there."), ("utt_b", "Tabbed, too.")]
    # plain: the whole line is the sentence, whatever whitespace it holds; ids come from line numbers
    assert read_texts(f, "plain") == [("line0001", "utt_a Hello there."), ("line0003", "utt_b\tTabbed, too.")]
    assert read_texts(f) == read_texts(f, "plain")
    (tmp_path / "set").mkdir()
    (tmp_path / "set/test_texts.txt").write_text("x1 One.\nx1 Two.\n")
    with pytest.raises(ValueError, match=r"test_texts.txt:2: utterance id 'x1' repeats line 1"):
        read_texts(tmp_path / "set", "plain")  # a few-shot dir is always a Kaldi table
    (tmp_path / "bad.txt").write_text("a/b One.\n")
    with pytest.raises(ValueError, match="bad.txt:1: utterance id"):
        read_texts(tmp_path / "bad.txt", "kaldi")
    (tmp_path / "lonely.txt").write_text("only_an_id\n")
    with pytest.raises(ValueError, match="lonely.txt:1: expected 'utt_id sentence'"):
        read_texts(tmp_path / "lonely.txt", "kaldi")
    with pytest.raises(ValueError, match="text_format='csv'"):
        read_texts(f, "csv")

    class Info:
        path, spk2id, extra = "ck.pt", {"a": 0, "T": 2}, {"new_speakers": ["T"]}
    assert resolve_speaker(None, Info, 3) == 2 and resolve_speaker("a", Info, 3) == 0
    assert resolve_speaker("1", Info, 3) == 1 and resolve_speaker(None, Info, 1) is None
    with pytest.raises(ValueError, match="speaker 'zz' is not in the checkpoint's spk2id"):
        resolve_speaker("zz", Info, 3)


def test_run_synthesis_writes_wavs_records_and_skips_existing(tmp_path, tiny):
    _, ckdir = tiny
    texts = tmp_path / "texts.txt"
    texts.write_text("s1 The cat sat.\ns2 A second, longer test sentence here.\n")
    cfg = SynthConfig(texts=str(texts), text_format="kaldi", checkpoints=[str(ckdir)], steps=[20],
                      out_dir=str(tmp_path / "syn"), n_timesteps=2, vocoder="griffinlim", device="cpu", save_mels=True)
    report = run_synthesis(cfg)
    out = tmp_path / "syn/step_0000020"
    assert report[str(ckdir / "step_0000020.pt")] == {"out": str(out), "written": 2, "skipped": 0}
    assert report["vocoder"] == "griffinlim"
    assert not (tmp_path / "syn/step_0000010").exists()
    rec = json.loads((out / "synth.json").read_text())
    assert rec["settings"]["vocoder"] == {"name": "griffinlim"} and rec["settings"]["n_timesteps"] == 2
    assert rec["settings"]["temperature"] == 1.5 and rec["settings"]["speaker"] == 2 and rec["settings"]["step"] == 20
    for u, text in (("s1", "The cat sat."), ("s2", "A second, longer test sentence here.")):
        wav, sr = sf.read(out / f"{u}.wav")
        mel = np.load(out / f"{u}.npy")
        assert sr == 22050 and len(wav) == mel.shape[1] * 256 and np.abs(wav).max() > 0
        assert rec["utts"][u]["text"] == text and rec["utts"][u]["frames"] == mel.shape[1]
        assert rec["utts"][u]["tokens"] == intersperse(text_to_sequence(text), BLANK_ID)
        assert rec["utts"][u]["noise_seed"] == utterance_seed(0, u)
    (out / "s1.wav").write_bytes(b"kept")
    again = run_synthesis(cfg)
    assert again[str(ckdir / "step_0000020.pt")]["skipped"] == 2 and (out / "s1.wav").read_bytes() == b"kept"
    # A changed sentence for an existing id is re-synthesised, the other one kept.
    texts.write_text("s1 The dog sat.\ns2 A second, longer test sentence here.\n")
    assert run_synthesis(cfg)[str(ckdir / "step_0000020.pt")]["written"] == 1
    assert (out / "s1.wav").read_bytes() != b"kept"


@pytest.mark.parametrize("change, shown", [({"n_timesteps": 3}, "n_timesteps: 2 -> 3"),
                                           ({"temperature": 1.0}, "temperature: 1.5 -> 1.0"),
                                           ({"length_scale": 0.91}, "length_scale: 1.0 -> 0.91"),
                                           ({"seed": 1}, "seed: 0 -> 1")])
def test_synthesis_cache_refuses_other_settings(tmp_path, tiny, change, shown):
    _, ckdir = tiny
    texts = tmp_path / "texts.txt"
    texts.write_text("s1 The cat sat.\n")
    base = dict(texts=str(texts), text_format="kaldi", checkpoints=[str(ckdir)], steps=[10],
                out_dir=str(tmp_path / "syn"), n_timesteps=2, vocoder="griffinlim", device="cpu")
    run_synthesis(SynthConfig(**base))
    wav = (tmp_path / "syn/step_0000010/s1.wav").read_bytes()
    with pytest.raises(SynthCacheError, match=re.escape(shown)):
        run_synthesis(SynthConfig(**{**base, **change}))
    assert (tmp_path / "syn/step_0000010/s1.wav").read_bytes() == wav  # nothing mixed in
    rep = run_synthesis(SynthConfig(**{**base, **change, "overwrite": True}))
    assert rep[str(ckdir / "step_0000010.pt")]["written"] == 1
    rec = json.loads((tmp_path / "syn/step_0000010/synth.json").read_text())
    assert all(rec["settings"][k] == v for k, v in change.items())


def test_synthesis_refuses_wavs_of_unknown_settings(tmp_path, tiny):
    _, ckdir = tiny
    (tmp_path / "t.txt").write_text("Hello.\n")
    (tmp_path / "syn/step_0000010").mkdir(parents=True)
    (tmp_path / "syn/step_0000010/old.wav").write_bytes(b"x")
    cfg = SynthConfig(texts=str(tmp_path / "t.txt"), checkpoints=[str(ckdir)], steps=[10],
                      out_dir=str(tmp_path / "syn"), n_timesteps=2, vocoder="griffinlim", device="cpu")
    with pytest.raises(SynthCacheError, match="without a synth.json"):
        run_synthesis(cfg)


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
    (tmp_path / "t.txt").write_text("c1 Good morning.\n")
    r = subprocess.run([sys.executable, "-m", "gradtts.synth", f"synth.texts={tmp_path / 't.txt'}",
                        "synth.text_format=kaldi", f"synth.checkpoints=[{ckdir / 'step_0000010.pt'}]",
                        f"synth.out_dir={tmp_path / 'o'}",
                        "synth.n_timesteps=2", "synth.vocoder=griffinlim", "synth.device=cpu"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "o/step_0000010/c1.wav").is_file()
