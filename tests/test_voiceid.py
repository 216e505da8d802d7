"""Voice identification of a base model: the similarity / top-1 arithmetic, and a small end-to-end run."""

import json
import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from gradtts.data.datadir import DataDir, write_datadir
from gradtts.model.checkpoint import save_checkpoint
from gradtts.model.config import build_model
from gradtts.scoring.voiceid import main, markdown, run_voiceid, voice_id_scores
from gradtts.train.cli import compose

E1, E2, E3 = np.eye(3)


def test_scores_on_hand_made_embeddings():
    # References whose mean points along one axis: the centroid (normalised mean) is that axis.
    refs = {"a": np.array([[1, 0.1, 0], [1, -0.1, 0]]), "b": np.array([E2]), "c": np.array([[0, 0, 2.0]])}
    gen = {"a": np.array([E1, [0.6, 0.8, 0]]),     # cosines to (a, b, c): (1, 0, 0) and (.6, .8, 0)
           "b": np.array([E3, [0, 0.6, 0.8]]),     # (0, 0, 1) and (0, .6, .8): b sounds like c
           "c": np.array([E3])}                    # (0, 0, 1)
    s = voice_id_scores(["a", "b", "c"], gen, refs)
    np.testing.assert_allclose(s["matrix"], [[0.8, 0.4, 0], [0, 0.3, 0.9], [0, 0, 1]], atol=1e-12)
    assert s["S_own"] == pytest.approx((0.8 + 0.3 + 1) / 3)
    assert s["S_other"] == pytest.approx(((0.4 + 0) / 2 + (0 + 0.9) / 2 + 0) / 3)
    assert s["margin"] == pytest.approx(0.7 - 0.65 / 3)
    assert s["top1_voice"] == pytest.approx(2 / 3)     # a and c right, b taken for c
    assert s["top1_utt"] == pytest.approx(2 / 5)       # a's first, c's only
    assert (s["n_voices"], s["n_utts"], s["chance"]) == (3, 5, pytest.approx(1 / 3))
    rows = {r["voice"]: r for r in s["rows"]}
    assert (rows["a"]["best_other_voice"], rows["a"]["best_other"], rows["a"]["rank"]) == ("b", pytest.approx(0.4), 1)
    assert (rows["b"]["best_other_voice"], rows["b"]["best_other"], rows["b"]["rank"]) == ("c", pytest.approx(0.9), 2)
    assert rows["b"]["own"] == pytest.approx(0.3) and not rows["b"]["top1"] and rows["b"]["utt_top1"] == 0
    assert rows["c"]["rank"] == 1 and rows["c"]["top1"] and rows["a"]["utt_top1"] == 1
    assert [u["nearest_voice"] for u in s["utts"]["a"]] == ["a", "b"]
    assert s["utts"]["b"][1]["own"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="at least two voices"):
        voice_id_scores(["a"], gen, refs)


# ---- end to end on a seeded random tiny model -----------------------------------------------------------

SENTENCES = ["The quick brown fox jumps over the lazy dog near the river bank.",
             "She sells sea shells by the sea shore every single summer morning.",
             "A journey of a thousand miles begins with one small step forward.",
             "Seven lanterns were hung along the northern shore on Thursday night."]


def _voice(rng, f0: float, seconds: float = 1.2, sr: int = 22050) -> np.ndarray:
    """A buzzy harmonic tone with a wobbling pitch: a stand-in recording, distinct per speaker."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / sr
    wav = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2)
    return (0.3 * wav / np.abs(wav).max() + 0.01 * rng.normal(size=len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("voiceid")
    torch.manual_seed(0)
    model = build_model(compose(["data.feats_dir=x", "model=tiny"]).model, n_spks=3).eval()
    save_checkpoint(root / "base.pt", model, dictionary=None, spk2id={"a": 0, "b": 1, "c": 2}, step=7)
    single = build_model(compose(["data.feats_dir=x", "model=tiny"]).model, n_spks=1).eval()
    save_checkpoint(root / "single.pt", single, dictionary=None, step=7)
    rng = np.random.default_rng(0)
    d = DataDir()
    for spk, f0 in (("a", 110.0), ("b", 180.0), ("c", 260.0)):
        for k, text in enumerate(SENTENCES):
            wav = root / "wav" / f"{spk}_{k}.wav"
            wav.parent.mkdir(exist_ok=True)
            sf.write(wav, _voice(rng, f0 * (1 + 0.02 * k)), 22050, subtype="PCM_16")
            d.add(f"{spk}_{k}", spk, wav, text)
    write_datadir(root / "data", d)
    return root


@pytest.mark.slow  # synthesis + HiFi-GAN + GE2E, three times: 16 CPU-s in the full suite (tests/conftest.py)
def test_end_to_end_writes_reuses_and_regenerates(setup, tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("GRADTTS_CACHE", str(tmp_path / "cache"))  # keep embeddings out of ~/.cache
    out = tmp_path / "out"
    args = [str(setup / "base.pt"), str(setup / "data"), str(out), "--n-ref", "2", "--n-texts", "2",
            "--n-timesteps", "2"]
    caplog.set_level(logging.INFO, logger="gradtts.scoring.voiceid")
    assert main(args) == 0
    printed = capsys.readouterr().out  # the markdown summary is the command's output
    assert "| generated |" in printed and "| real (ceiling) |" in printed
    done = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and r.name == "gradtts.scoring.voiceid"]
    assert len(done) == 1 and done[0].startswith("6 wavs generated, 0 reused; ")
    assert done[0].endswith(f" s -> {out / 'voiceid.json'}")
    res = json.loads((out / "voiceid.json").read_text())
    st = res["settings"]
    assert st["voices"] == ["a", "b", "c"] and st["vocoder"]["name"] == "hifigan" and st["encoder"] == "ge2e"
    assert len(st["checkpoint_sha256"]) == 64 and st["n_ref"] == 2 and st["n_texts"] == 2 and st["step"] == 7
    for kind in ("generated", "real"):
        s = res[kind]
        assert (s["n_voices"], s["n_utts"]) == (3, 6) and s["margin"] == pytest.approx(s["S_own"] - s["S_other"])
        assert -1 <= s["S_other"] <= 1 and 0 <= s["top1_voice"] <= 1
    assert np.asarray(res["matrix"]["generated"]).shape == (3, 3) and np.asarray(res["matrix"]["real"]).shape == (3, 3)
    # The real recordings are distinct tones, so the ceiling must identify every voice.
    assert res["real"]["top1_voice"] == 1.0
    assert [v["references"] for v in res["voices"]][0] == ["a_0", "a_1"] and res["voices"][0]["texts"] == ["a_2", "a_3"]
    assert [u["utt"] for u in res["utterances"]] == ["a_2", "a_3", "b_2", "b_3", "c_2", "c_3"]
    for u in res["utterances"]:
        wav, sr = sf.read(out / u["wav"])
        assert sr == 22050 and len(wav) > 0.5 * sr and u["wav"] == f"wav/{u['voice']}/{u['utt']}.wav"
    tsv = (out / "voiceid.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[:5] == ["voice", "own", "best_other_voice", "best_other", "rank"]
    assert [line.split("\t")[0] for line in tsv[1:]] == ["a", "b", "c"]
    rec = json.loads((out / "wav/synth.json").read_text())
    assert set(rec["utts"]) == {f"{v}/{v}_{k}" for v in "abc" for k in (2, 3)}

    # Same settings: every wav reused, identical numbers.
    again = run_voiceid(setup / "base.pt", setup / "data", out, 2, 2, n_timesteps=2)
    assert again["wavs"] == {"written": 0, "reused": 6} and again["generated"] == res["generated"]
    # Another sampler setting: the record no longer matches, so everything is regenerated.
    caplog.clear()
    other = run_voiceid(setup / "base.pt", setup / "data", out, 2, 2, voices=["a", "c"], n_timesteps=3)
    assert other["wavs"] == {"written": 4, "reused": 0} and other["settings"]["voices"] == ["a", "c"]
    regenerated = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(regenerated) == 1
    assert regenerated[0].startswith(f"{out / 'wav'}: made with other settings, regenerating (")
    assert not (out / "wav/b/b_2.wav").exists()  # the old settings' wavs are gone with their record
    assert "Voice identification of base.pt (2 voices" in markdown(other)


def test_errors_name_the_voice(setup, tmp_path, capsys):
    data, base = setup / "data", setup / "base.pt"
    with pytest.raises(ValueError, match=r"voice\(s\) zz not in the checkpoint's spk2id \(a, b, c\)"):
        run_voiceid(base, data, tmp_path, voices=["a", "zz"])
    with pytest.raises(ValueError, match=r"n_ref \+ n_texts = 3 \+ 2 = 5 utterances; a has 4, b has 4, c has 4"):
        run_voiceid(base, data, tmp_path, n_ref=3, n_texts=2)
    with pytest.raises(ValueError, match="single-speaker checkpoint"):
        run_voiceid(setup / "single.pt", data, tmp_path, n_ref=2, n_texts=2)
    with pytest.raises(ValueError, match="at least two voices"):
        run_voiceid(base, data, tmp_path, n_ref=2, n_texts=2, voices=["b"])
    # On the command line: one error line, status 2, nothing written.
    with pytest.raises(SystemExit) as exc:
        main([str(base), str(data), str(tmp_path / "o"), "--voices", "a,b,qq"])
    assert exc.value.code == 2 and "qq not in the checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
