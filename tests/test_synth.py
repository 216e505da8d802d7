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
from gradtts.model.inference import synthesize_mels
from gradtts.synth import (SynthCacheError, SynthConfig, SynthesisErrors, read_texts, resolve_speaker, run_synthesis,
                           split_text, utterance_seed)
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
    again = synthesize_mels(model, TOKENS, seeds, **dict(kw, batch_size=3))
    assert all(torch.equal(a, b) for a, b in zip(batched, again))


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


def test_split_text_prefers_sentence_ends_and_names_the_limit():
    text = 'He said "Stop." Then Dr. Smith left; it was 3.5 km away! Why? ' * 3
    pieces = split_text(text, 60)
    assert all(len(p) <= 60 for p in pieces) and " ".join(pieces) == text.strip()
    assert pieces[0] == 'He said "Stop." Then Dr. Smith left; it was 3.5 km away!'  # "Dr." and "3.5" kept whole
    assert split_text("Short enough.  Kept as is", 300) == ["Short enough.  Kept as is"]
    # No sentence end: commas, then words.
    assert split_text("one, two three, four five six", 16) == ["one, two three,", "four five six"]
    assert split_text("alpha beta gamma delta", 11) == ["alpha beta", "gamma delta"]
    with pytest.raises(ValueError, match=r"a word of 50 characters .* longer than synth.max_chars=20 and cannot be"):
        split_text("see " + "x" * 50, 20)
    # A 5,000-character paragraph becomes pieces of at most the default 300 characters, nothing lost.
    paragraph = " ".join(f"Sentence number {i} goes on, clause after clause, until it ends." for i in range(80))
    assert len(paragraph) > 5000
    pieces = split_text(paragraph, SynthConfig.max_chars)
    assert SynthConfig.max_chars == 300 and len(pieces) >= 17 and max(map(len, pieces)) <= 300
    assert " ".join(pieces) == paragraph


def test_long_text_is_synthesised_in_pieces_joined_by_a_pause(tmp_path, tiny):
    _, ckdir = tiny
    long = "The cat sat on the mat. A dog came by, and it barked twice! Then all was quiet again."
    texts = tmp_path / "t.txt"
    texts.write_text(f"long {long}\nshort The cat sat.\n")
    cfg = SynthConfig(texts=str(texts), text_format="kaldi", checkpoints=[str(ckdir)], steps=[10],
                      out_dir=str(tmp_path / "syn"), n_timesteps=2, vocoder="griffinlim", device="cpu",
                      save_mels=True, max_chars=40, pause=0.2, batch_size=2)
    run_synthesis(cfg)
    out = tmp_path / "syn/step_0000010"
    rec = json.loads((out / "synth.json").read_text())["utts"]
    pieces = ["The cat sat on the mat.", "A dog came by, and it barked twice!", "Then all was quiet again."]
    assert rec["long"]["pieces"] == pieces and rec["long"]["pause"] == 0.2
    assert rec["long"]["tokens"] == [intersperse(text_to_sequence(p), BLANK_ID) for p in pieces]
    seeds = rec["long"]["noise_seed"]
    assert len(set(seeds)) == 3 and utterance_seed(0, "long") not in seeds
    gap = round(0.2 * 22050 / 256)
    frames = rec["long"]["piece_frames"]
    assert rec["long"]["frames"] == sum(frames) + 2 * gap
    wav, _ = sf.read(out / "long.wav", dtype="int16")
    assert len(wav) == rec["long"]["frames"] * 256 and np.load(out / "long.npy").shape[1] == rec["long"]["frames"]
    for k in range(2):  # exact silence between the pieces
        start = (sum(frames[:k + 1]) + k * gap) * 256
        assert not wav[start:start + gap * 256].any() and wav[start - 256:start].any()
    # A text that fits stays one piece, recorded as before.
    assert "pieces" not in rec["short"] and rec["short"]["noise_seed"] == utterance_seed(0, "short")
    # Another split is another text: re-synthesised, never taken from the old wav.
    again = run_synthesis(SynthConfig(**{**cfg.__dict__, "max_chars": 60}))
    assert again[str(ckdir / "step_0000010.pt")]["written"] == 1


@pytest.mark.slow  # synthesis in process, then the same texts through the command: 11 CPU-s (tests/conftest.py)
def test_bad_lines_are_listed_after_every_good_line_is_written(tmp_path, tiny):
    _, ckdir = tiny
    texts = tmp_path / "t.txt"
    texts.write_text("good1 The cat sat.\nlonely\nbad/id Some text.\nmute ### ~~\ngood1 Repeated id.\n"
                     f"huge A {'x' * 80} word.\ngood2 On 1/2/2020 we met.\n")
    cfg = SynthConfig(texts=str(texts), text_format="kaldi", checkpoints=[str(ckdir)], steps=[10],
                      out_dir=str(tmp_path / "syn"), n_timesteps=2, vocoder="griffinlim", device="cpu", max_chars=60)
    with pytest.raises(SynthesisErrors) as err:
        run_synthesis(cfg)
    out = tmp_path / "syn/step_0000010"
    assert sorted(p.name for p in out.glob("*.wav")) == ["good1.wav", "good2.wav"]
    assert err.value.report[str(ckdir / "step_0000010.pt")]["written"] == 2
    problems = err.value.problems
    assert len(problems) == 5, problems
    for expected in (r"t.txt:2: expected 'utt_id sentence'", r"t.txt:3: utterance id 'bad/id'",
                     r"text of 'mute': .*'### ~~'", r"t.txt:5: utterance id 'good1' repeats line 1",
                     r"text of 'huge': a word of 80 characters .* synth.max_chars=60"):
        assert any(re.search(expected, p) for p in problems), (expected, problems)
    rec = json.loads((out / "synth.json").read_text())["utts"]
    assert rec["good2"]["tokens"] == intersperse(text_to_sequence("On january second twenty twenty we met."), BLANK_ID)
    # The command: the good wavs, the bad lines listed under one error line, status 2, no traceback.
    r = subprocess.run([sys.executable, "-m", "gradtts.synth", f"synth.texts={texts}", "synth.text_format=kaldi",
                        f"synth.checkpoints=[{ckdir / 'step_0000010.pt'}]", f"synth.out_dir={tmp_path / 'cli'}",
                        "synth.n_timesteps=2", "synth.vocoder=griffinlim", "synth.device=cpu", "synth.max_chars=60"],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "gradtts-synth: error: 5 text(s) not synthesised (every other text was written):" in r.stderr
    assert "repeats line 1" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in (tmp_path / "cli/step_0000010").glob("*.wav")) == ["good1.wav", "good2.wav"]
