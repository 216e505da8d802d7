"""Corpus preparers on tiny layouts written by the tests (and LibriSpeech on the shared 3-speaker subset)."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import arctic, folder, librispeech, libritts, ljspeech, synthvox_check, vctk
from data_prep.common import PrepError
from gradtts.data.datadir import read_datadir

LS3 = Path(__file__).resolve().parents[1].parent / "shared/data/librispeech-3spk"


def tone(path: Path, freq: float = 220.0, sr: int = 16000, seconds: float = 0.3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _log_info(caplog):
    caplog.set_level(logging.INFO, logger="data_prep")


def logged(caplog) -> str:
    """The records logged so far as ``LEVEL: message`` lines (then cleared)."""
    text = "\n".join(f"{r.levelname}: {r.getMessage()}" for r in caplog.records)
    caplog.clear()
    return text


# ---------------------------------------------------------------- librispeech

def librispeech_layout(root: Path) -> Path:
    for spk, chapter, n in (("19", "198", 4), ("26", "495", 3), ("1", "7", 2)):
        folder = root / "train-clean-100" / spk / chapter
        lines = []
        for i in range(n):
            utt = f"{spk}-{chapter}-{i:04d}"
            tone(folder / f"{utt}.flac", 200 + 10 * i)
            lines.append(f"{utt} SPEAKER {spk}  SAYS   LINE {i}")
        write(folder / f"{spk}-{chapter}.trans.txt", "\n".join(lines) + "\n")
    # one transcript line without audio, one audio without transcript line
    trans = root / "train-clean-100/19/198/19-198.trans.txt"
    trans.write_text(trans.read_text() + "19-198-0009 NO AUDIO HERE\n")
    tone(root / "train-clean-100/26/495/26-495-0099.flac")
    tone(root / "dev-clean/19/227/19-227-0000.flac")
    write(root / "dev-clean/19/227/19-227.trans.txt", "19-227-0000 FROM DEV\n")
    return root


def test_librispeech_layout(tmp_path, caplog):
    root = librispeech_layout(tmp_path / "LibriSpeech")
    out = tmp_path / "data"
    assert librispeech.main([str(root), str(out)]) == 0
    d = read_datadir(out)
    assert d.speakers == ["1", "19", "26"]
    assert len(d.utts) == 2 + 4 + 1 + 3
    assert d.texts["19-198-0002"] == "SPEAKER 19 SAYS LINE 2"
    assert d.utt2spk["26-495-0001"] == "26"
    assert d.wavs["19-198-0000"] == str((root / "train-clean-100/19/198/19-198-0000.flac").resolve())
    assert Path(d.wavs["1-7-0001"]).is_absolute()
    assert "19-198-0009" not in d.utts and "26-495-0099" not in d.utts
    msg = logged(caplog)
    assert f"INFO: data_prep.librispeech: wrote 10 utterances of 3 speakers to {out}" in msg
    assert "WARNING: data_prep.librispeech: skipped 1 audio files without transcript (e.g. " in msg
    assert "WARNING: data_prep.librispeech: skipped 1 transcript lines without audio (e.g. " in msg

    # subsets, speaker selection and limit
    assert librispeech.main([str(root), str(out), "--subsets", "train-clean-100", "--speakers", "19", "26",
                             "--max-utts-per-speaker", "2"]) == 0
    d = read_datadir(out)
    assert d.spk2utt == {"19": ["19-198-0000", "19-198-0001"], "26": ["26-495-0000", "26-495-0001"]}


def test_librispeech_seeded_selection(tmp_path):
    root = librispeech_layout(tmp_path / "LibriSpeech")
    picks = []
    for seed in (0, 0, 5):
        librispeech.main([str(root), str(tmp_path / "d"), "--speakers", "19", "--subsets", "train-clean-100",
                          "--max-utts-per-speaker", "2", "--seed", str(seed)])
        picks.append(read_datadir(tmp_path / "d").utts)
    assert picks[0] == picks[1] and len(picks[0]) == 2
    assert set(picks[0]) <= {f"19-198-{i:04d}" for i in range(4)}
    assert len({tuple(p) for p in picks} | {("19-198-0000", "19-198-0001")}) >= 2  # not always the first two


def test_librispeech_errors(tmp_path):
    root = librispeech_layout(tmp_path / "LibriSpeech")
    with pytest.raises(PrepError, match=r"corpus root not found"):
        librispeech.main([str(tmp_path / "nowhere"), str(tmp_path / "d")])
    with pytest.raises(PrepError, match=r"speaker\(s\) 999 not found in the corpus; available: 1, 19, 26"):
        librispeech.main([str(root), str(tmp_path / "d"), "--speakers", "19", "999"])
    with pytest.raises(PrepError,
                       match=r"subset test-other not found; sub-folders present: dev-clean, train-clean-100"):
        librispeech.main([str(root), str(tmp_path / "d"), "--subsets", "test-other"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepError, match=r"no utterance found"):
        librispeech.main([str(tmp_path / "empty"), str(tmp_path / "d")])
    with pytest.raises(PrepError, match=r"at least 1"):
        librispeech.main([str(root), str(tmp_path / "d"), "--max-utts-per-speaker", "0"])
    assert not (tmp_path / "d").exists()  # nothing written on error


def test_cli_error_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "data_prep.librispeech", str(tmp_path / "nope"), str(tmp_path / "d")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "corpus root not found" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(not LS3.is_dir(), reason="shared librispeech-3spk subset not present")
def test_librispeech_real_subset(tmp_path):
    assert librispeech.main([str(LS3), str(tmp_path / "ls")]) == 0
    d = read_datadir(tmp_path / "ls")
    assert len(d.utts) == 367 and len(d.speakers) == 3
    assert all(Path(w).is_file() for w in d.wavs.values())
    assert librispeech.main([str(LS3), str(tmp_path / "ls1"), "--speakers", d.speakers[0],
                             "--max-utts-per-speaker", "7"]) == 0
    d1 = read_datadir(tmp_path / "ls1")
    assert d1.utts == d.spk2utt[d.speakers[0]][:7]


# ---------------------------------------------------------------- libritts

def test_libritts(tmp_path, caplog):
    root = tmp_path / "LibriTTS"
    for spk, chapter in (("19", "198"), ("198", "7"), ("84", "121123")):
        for i in range(3):
            stem = f"{spk}_{chapter}_000000_{i:06d}"
            tone(root / "train-clean-100" / spk / chapter / f"{stem}.wav", sr=24000)
            write(root / "train-clean-100" / spk / chapter / f"{stem}.normalized.txt", f"Hello, {spk} number {i}.\n")
            write(root / "train-clean-100" / spk / chapter / f"{stem}.original.txt", "ORIGINAL")
    (root / "train-clean-100/84/121123/84_121123_000000_000002.normalized.txt").unlink()
    tone(root / "dev-clean/19/227/19_227_000001_000000.wav", sr=24000)
    write(root / "dev-clean/19/227/19_227_000001_000000.normalized.txt", "From dev.")
    out = tmp_path / "data"
    assert libritts.main([str(root), str(out)]) == 0
    d = read_datadir(out)
    assert d.spk2utt["84"] == ["84-121123_000000_000000", "84-121123_000000_000001"]
    assert len(d.spk2utt["19"]) == 4 and len(d.spk2utt["198"]) == 3
    assert d.texts["19-198_000000_000001"] == "Hello, 19 number 1."
    assert [d.utt2spk[u] for u in d.utts] == sorted(d.utt2spk[u] for u in d.utts)  # Kaldi's sort rule
    assert "WARNING: data_prep.libritts: skipped 1 wavs without .normalized.txt (e.g. " in logged(caplog)
    assert libritts.main([str(root), str(out), "--subsets", "dev-clean"]) == 0
    assert read_datadir(out).utts == ["19-227_000001_000000"]
    with pytest.raises(PrepError, match=r"speaker\(s\) 26 not found.*available: 19, 198, 84"):
        libritts.main([str(root), str(out), "--speakers", "26"])


# ---------------------------------------------------------------- vctk

def test_vctk_092_layout_and_mic(tmp_path, caplog):
    root = tmp_path / "VCTK-Corpus-0.92"
    for spk in ("p225", "p226"):
        for i in (1, 2, 3):
            write(root / "txt" / spk / f"{spk}_{i:03d}.txt", f"Please call Stella {i}.\n")
            for mic in ("mic1", "mic2"):
                tone(root / "wav48_silence_trimmed" / spk / f"{spk}_{i:03d}_{mic}.flac", sr=48000)
    (root / "wav48_silence_trimmed/p226/p226_003_mic1.flac").unlink()
    (root / "wav48_silence_trimmed/p226/p226_003_mic2.flac").unlink()
    tone(root / "wav48_silence_trimmed/p315/p315_001_mic1.flac")  # audio, no transcript
    out = tmp_path / "data"
    assert vctk.main([str(root), str(out)]) == 0
    d = read_datadir(out)
    assert d.speakers == ["p225", "p226"] and len(d.utts) == 5
    assert d.wavs["p225_002"].endswith("p225_002_mic1.flac") and d.texts["p225_002"] == "Please call Stella 2."
    msg = logged(caplog)
    assert "WARNING: data_prep.vctk: skipped 1 audio files without transcript (e.g. " in msg
    assert "WARNING: data_prep.vctk: skipped 1 transcripts without audio (e.g. " in msg
    assert vctk.main([str(root), str(out), "--mic", "mic2", "--speakers", "p226"]) == 0
    d = read_datadir(out)
    assert d.utts == ["p226_001", "p226_002"] and d.wavs["p226_001"].endswith("p226_001_mic2.flac")
    with pytest.raises(PrepError, match=r"speaker\(s\) p999 not found.*available: p225, p226, p315"):
        vctk.main([str(root), str(out), "--speakers", "p999"])
    with pytest.raises(PrepError, match=r"no usable utterance for speaker\(s\) p315"):
        vctk.main([str(root), str(out), "--speakers", "p315"])


def test_vctk_080_layout(tmp_path):
    root = tmp_path / "VCTK-Corpus"
    for i in (1, 2):
        write(root / "txt/p225" / f"p225_{i:03d}.txt", f"Text {i}")
        tone(root / "wav48/p225" / f"p225_{i:03d}.wav", sr=48000)
    assert vctk.main([str(root), str(tmp_path / "d")]) == 0
    d = read_datadir(tmp_path / "d")
    assert d.utts == ["p225_001", "p225_002"] and d.wavs["p225_001"].endswith("wav48/p225/p225_001.wav")
    (tmp_path / "notvctk").mkdir()
    with pytest.raises(PrepError, match=r"a VCTK root holds txt/ and wav48/"):
        vctk.main([str(tmp_path / "notvctk"), str(tmp_path / "d")])


# ---------------------------------------------------------------- ljspeech

def test_ljspeech(tmp_path, caplog):
    root = tmp_path / "LJSpeech-1.1"
    write(root / "metadata.csv",
          'LJ001-0001|Printing, in the only sense with which we are at present concerned|Printing, in the only sense\n'
          'LJ001-0002|"in being comparatively modern.|"in being comparatively modern.\n'
          'LJ001-0003|Dr. Smith, 1850|Doctor Smith, eighteen fifty\n'
          'LJ001-0004|no wav|no wav\n')
    for i in (1, 2, 3):
        tone(root / "wavs" / f"LJ001-000{i}.wav", sr=22050)
    out = tmp_path / "data"
    assert ljspeech.main([str(root), str(out), "--max-utts-per-speaker", "3"]) == 0
    d = read_datadir(out)
    assert d.utts == ["ljs-LJ001-0001", "ljs-LJ001-0002", "ljs-LJ001-0003"] and d.speakers == ["ljs"]
    assert d.texts["ljs-LJ001-0003"] == "Doctor Smith, eighteen fifty"
    assert d.texts["ljs-LJ001-0002"] == '"in being comparatively modern.'  # quoting none: quote kept
    assert "WARNING: data_prep.ljspeech: skipped 1 metadata lines without wav (e.g. " in logged(caplog)
    assert ljspeech.main([str(root), str(out), "--max-utts-per-speaker", "2"]) == 0
    assert read_datadir(out).utts == ["ljs-LJ001-0001", "ljs-LJ001-0002"]
    write(root / "metadata.csv", "LJ001-0001|a|b|c|d\n")
    with pytest.raises(PrepError, match=r"metadata.csv:1: expected 'id\|raw\|normalized', got 5 field"):
        ljspeech.main([str(root), str(out)])
    with pytest.raises(PrepError, match=r"metadata.csv: not found"):
        ljspeech.main([str(tmp_path), str(out)])


# ---------------------------------------------------------------- arctic

def test_arctic_several_voices(tmp_path, caplog):
    root = tmp_path / "arctic"
    for name in ("slt", "bdl"):
        voice = root / f"cmu_us_{name}_arctic"
        write(voice / "etc/txt.done.data",
              '( arctic_a0001 "Author of the danger trail, Philip Steels, etc." )\n'
              '( arctic_a0002 "Not at this particular case, Tom, apologized Whittemore." )\n'
              '( arctic_b0539 "Missing   audio." )\n')
        tone(voice / "wav/arctic_a0001.wav")
        tone(voice / "wav/arctic_a0002.wav")
    out = tmp_path / "data"
    assert arctic.main([str(root), str(out)]) == 0
    d = read_datadir(out)
    assert d.speakers == ["bdl", "slt"]
    assert d.spk2utt["slt"] == ["slt-arctic_a0001", "slt-arctic_a0002"]
    assert d.texts["bdl-arctic_a0001"] == "Author of the danger trail, Philip Steels, etc."
    assert "WARNING: data_prep.arctic: skipped 2 prompts without wav (e.g. " in logged(caplog)
    # a single voice folder as root
    assert arctic.main([str(root / "cmu_us_slt_arctic"), str(out), "--max-utts-per-speaker", "1"]) == 0
    assert read_datadir(out).utts == ["slt-arctic_a0001"]
    with pytest.raises(PrepError, match=r"speaker\(s\) rms not found.*available: bdl, slt"):
        arctic.main([str(root), str(out), "--speakers", "rms"])
    write(root / "cmu_us_slt_arctic/etc/txt.done.data", 'arctic_a0001 "no parens"\n')
    with pytest.raises(PrepError, match=r"txt.done.data:1: cannot parse"):
        arctic.main([str(root), str(out)])
    with pytest.raises(PrepError, match=r"no etc/txt.done.data found"):
        arctic.main([str(tmp_path / "data"), str(tmp_path / "d2")])


# ---------------------------------------------------------------- folder

def test_folder_speaker_dirs(tmp_path, caplog):
    root = tmp_path / "mine"
    for spk in ("Jane Doe", "bob"):
        for i in (1, 2):
            tone(root / spk / f"take {i}.wav")
            write(root / spk / f"take {i}.txt", f"  {spk} said\nnumber {i} ")
    tone(root / "bob/sub/extra.flac")
    write(root / "bob/sub/extra.txt", "nested")
    tone(root / "bob/orphan.wav")
    out = tmp_path / "data"
    assert folder.main([str(root), str(out)]) == 0
    d = read_datadir(out)
    assert d.speakers == ["Jane_Doe", "bob"]
    assert d.spk2utt["Jane_Doe"] == ["Jane_Doe-take_1", "Jane_Doe-take_2"]
    assert d.texts["Jane_Doe-take_2"] == "Jane Doe said number 2"
    assert d.texts["bob-sub_extra"] == "nested"
    assert "WARNING: data_prep.folder: skipped 1 audio files without .txt (e.g. " in logged(caplog)
    assert folder.main([str(root), str(out), "--speakers", "bob", "--max-utts-per-speaker", "1"]) == 0
    assert read_datadir(out).utts == ["bob-sub_extra"]
    with pytest.raises(PrepError, match=r"speaker\(s\) Jane not found.*available: Jane_Doe, bob"):
        folder.main([str(root), str(out), "--speakers", "Jane"])


def test_folder_csv(tmp_path):
    base = tmp_path / "csvcorpus"
    tone(base / "clips/a.wav")
    tone(base / "clips/b.wav")
    absolute = tone(tmp_path / "elsewhere/c.wav")
    write(base / "list.csv", f'path,text,speaker,extra\nclips/a.wav,"Hello, world.",Ann Lee,x\n'
                             f'clips/b.wav,Second one,Ann Lee,y\n{absolute},Third,carl/jr,z\n')
    out = tmp_path / "data"
    assert folder.main(["--csv", str(base / "list.csv"), str(out)]) == 0
    d = read_datadir(out)
    assert d.speakers == ["Ann_Lee", "carl_jr"]
    assert d.utts == ["Ann_Lee-clips_a", "Ann_Lee-clips_b", "carl_jr-c"]
    assert d.wavs["Ann_Lee-clips_a"] == str((base / "clips/a.wav").resolve())
    assert d.texts["Ann_Lee-clips_a"] == "Hello, world."
    write(base / "bad.csv", "path,text,speaker\nclips/a.wav,ok,ann\nclips/zz.wav,missing,ann\n")
    with pytest.raises(PrepError, match=r"bad.csv:3: audio file .*clips/zz.wav not found"):
        folder.main(["--csv", str(base / "bad.csv"), str(out)])
    write(base / "nohdr.csv", "file,text\nclips/a.wav,ok\n")
    with pytest.raises(PrepError,
                       match=r"nohdr.csv:1: header must name the columns path,text,speaker; missing path, speaker"):
        folder.main(["--csv", str(base / "nohdr.csv"), str(out)])
    write(base / "dup.csv", "path,text,speaker\nclips/a.wav,one,ann\nclips/a.wav,two,ann\n")
    with pytest.raises(PrepError, match=r"utterance id ann-clips_a occurs twice"):
        folder.main(["--csv", str(base / "dup.csv"), str(out)])
    with pytest.raises(SystemExit):
        folder.main(["--csv", str(base / "list.csv"), str(base), str(out)])  # too many positionals


# ---------------------------------------------------------------- synthvox_check

def _brute_force(emb, labels):
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    voices = sorted(set(labels))
    same, cross, hits = [], [], []
    for i, (e, v) in enumerate(zip(emb, labels)):
        scores = {}
        for w in voices:
            members = [emb[j] for j in range(len(emb)) if labels[j] == w and j != i]
            c = np.mean(members, 0)
            scores[w] = float(e @ c / np.linalg.norm(c))
        same.append(scores[v])
        cross.append(np.mean([s for w, s in scores.items() if w != v]))
        hits.append(max(scores, key=scores.get) == v)
    return np.mean(same), np.mean(cross), np.mean(hits)


def test_separation_matches_brute_force():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 16))
    labels = [f"v{k}" for k in range(4) for _ in range(5)]
    emb = np.concatenate([centers[k] + rng.normal(scale=1.5, size=(5, 16)) for k in range(4)])
    s = synthvox_check.separation(emb, labels)
    same, cross, hit = _brute_force(emb, labels)
    assert s.same_voice == pytest.approx(same, abs=1e-9) and s.cross_voice == pytest.approx(cross, abs=1e-9)
    assert s.nearest_own == pytest.approx(hit) and 0.2 < s.nearest_own < 1.0  # noisy enough to miss some
    assert s.voices == 4 and s.utts_per_voice == 5 and len(s.confusable) == 5
    assert s.confusable[0][2] >= s.confusable[-1][2]
    with pytest.raises(ValueError, match="at least 2 per voice"):
        synthvox_check.separation(emb[:6], labels[:6])


def test_synthvox_check_cli(tmp_path, capsys):
    root = tmp_path / "mine"
    rng = np.random.default_rng(1)
    for spk, f0 in (("low", 110.0), ("high", 330.0)):
        for i in range(3):
            sr, n = 16000, 16000
            t = np.arange(n) / sr
            wav = sum(np.sin(2 * np.pi * f0 * (h + 1) * t * (1 + 0.02 * i)) / (h + 1) for h in range(8))
            wav = 0.3 * wav / np.abs(wav).max() + 0.01 * rng.normal(size=n)
            (root / spk).mkdir(parents=True, exist_ok=True)
            sf.write(root / spk / f"u{i}.wav", wav.astype(np.float32), sr)
            write(root / spk / f"u{i}.txt", "buzz")
    folder.main([str(root), str(tmp_path / "d")])
    assert synthvox_check.main([str(tmp_path / "d"), "--utts", "3", "--cache-dir", str(tmp_path / "cache"),
                                "--json", str(tmp_path / "sep.json")]) == 0
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "sep.json").read_text())
    assert res["voices"] == 2 and res["utts_per_voice"] == 3 and res["encoder"] == "ge2e"
    from gradtts.scoring import load_speaker_encoder

    d = read_datadir(tmp_path / "d")
    emb = load_speaker_encoder("ge2e", cache_dir=tmp_path / "cache").embed_files([d.wavs[u] for u in d.utts])
    same, cross, hit = _brute_force(emb, [d.utt2spk[u] for u in d.utts])
    assert res["same_voice"] == pytest.approx(same, abs=1e-5) and res["cross_voice"] == pytest.approx(cross, abs=1e-5)
    assert res["nearest_own"] == pytest.approx(hit)
    assert f"same-voice cosine (leave-one-out centroid): {same:.3f}" in out
