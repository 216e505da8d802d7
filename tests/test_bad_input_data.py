"""Bad input to the data stages: every failure is named, nothing is silently changed.

Text encodings of transcripts and CSVs, the feature cache under changed settings, `validate` on broken
audio and empty data dirs, and the edges of the few-shot builder, each on real files in tmp_path.
"""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import fewshot, folder, validate
from data_prep.common import PrepError
from data_prep.features import compute_features
from data_prep.fewshot import FewShotError, make_fewshot
from gradtts.data.datadir import DataDir, read_datadir, validate_datadir, write_datadir

LATIN1 = "café naïve façade"
SR = 22050


def tone(path: Path, seconds: float, sr: int = SR, amp: float = 0.3, quiet_tail: float = 0.0) -> Path:
    """A 220 Hz tone, optionally followed by ``quiet_tail`` seconds of the same tone 30 dB lower."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * (seconds + quiet_tail))) / sr
    wav = amp * np.sin(2 * np.pi * 220 * t)
    wav[int(sr * seconds):] *= 10 ** (-30 / 20)
    sf.write(path, wav.astype(np.float32), sr)
    return path


# ---------------------------------------------------------------- 1. text encodings

def _folder_corpus(root: Path, encoding: str) -> Path:
    tone(root / "anna" / "a1.wav", 0.3)
    (root / "anna" / "a1.txt").write_bytes(LATIN1.encode(encoding))
    tone(root / "anna" / "a2.wav", 0.3)
    (root / "anna" / "a2.txt").write_text("plain text", encoding="utf-8")
    return root


def test_latin1_transcript_is_an_error_naming_the_file(tmp_path):
    root = _folder_corpus(tmp_path / "rec", "latin-1")
    with pytest.raises(PrepError) as err:
        folder.main([str(root), str(tmp_path / "data")])
    msg = str(err.value)
    assert f"{root / 'anna' / 'a1.txt'}:1: not valid UTF-8" in msg and "e9" in msg and "--encoding latin-1" in msg
    assert not (tmp_path / "data").exists()


def test_encoding_option_reads_latin1_and_writes_utf8(tmp_path):
    root = _folder_corpus(tmp_path / "rec", "latin-1")
    assert folder.main([str(root), str(tmp_path / "data"), "--encoding", "latin-1"]) == 0
    assert read_datadir(tmp_path / "data").texts["anna-a1"] == LATIN1
    assert LATIN1 in (tmp_path / "data" / "text").read_text(encoding="utf-8")
    with pytest.raises(PrepError, match="--encoding klingon: unknown encoding"):
        folder.main([str(root), str(tmp_path / "data2"), "--encoding", "klingon"])


def test_utf8_byte_order_mark_is_not_part_of_the_text(tmp_path):
    root = _folder_corpus(tmp_path / "rec", "utf-8")
    (root / "anna" / "a2.txt").write_bytes(b"\xef\xbb\xbfplain text\n")
    assert folder.main([str(root), str(tmp_path / "data")]) == 0
    assert read_datadir(tmp_path / "data").texts == {"anna-a1": LATIN1, "anna-a2": "plain text"}


def test_latin1_csv_names_file_and_line_instead_of_a_bare_decode_error(tmp_path):
    tone(tmp_path / "w" / "x.wav", 0.3)
    tone(tmp_path / "w" / "y.wav", 0.3)
    csv_file = tmp_path / "meta.csv"
    csv_file.write_bytes(f"path,text,speaker\nw/x.wav,hello there,bob\nw/y.wav,{LATIN1},bob\n".encode("latin-1"))
    r = subprocess.run([sys.executable, "-m", "data_prep.folder", "--csv", str(csv_file), str(tmp_path / "data")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"error: {csv_file}:3: not valid UTF-8" in r.stderr and "--encoding" in r.stderr
    assert not (tmp_path / "data").exists()
    assert folder.main(["--csv", str(csv_file), str(tmp_path / "data"), "--encoding", "latin-1"]) == 0
    assert read_datadir(tmp_path / "data").texts["bob-w_y"] == LATIN1


def test_validate_flags_replacement_characters_and_non_utf8_tables(tmp_path, capsys):
    d = DataDir()
    d.add("s-1", "s", tone(tmp_path / "1.wav", 0.3), "caf\ufffd na\ufffdve")
    d.add("s-2", "s", tone(tmp_path / "2.wav", 0.3), "fine")
    with pytest.raises(ValueError, match="U\\+FFFD"):
        write_datadir(tmp_path / "data", d)
    d.texts["s-1"] = "ok"
    write_datadir(tmp_path / "data", d)
    # Line 1 as Latin-1 bytes, line 2 with U+FFFD as a lenient decoder would have left it (valid UTF-8).
    (tmp_path / "data" / "text").write_bytes(b"s-1 caf\xe9\ns-2 caf\xef\xbf\xbd\n")
    assert validate.main([str(tmp_path / "data")]) == 1
    out = capsys.readouterr().out
    assert "text:1: not valid UTF-8" in out and "transcript of s-2 holds U+FFFD" in out


# ---------------------------------------------------------------- 2. the feature cache and its settings

def _feature_data(tmp_path: Path) -> Path:
    d = DataDir()
    for i, (seconds, tail) in enumerate(((0.6, 0.0), (1.0, 0.0), (1.6, 0.0), (0.5, 0.8))):
        d.add(f"s-{i}", "s", tone(tmp_path / "wavs" / f"{i}.wav", seconds, quiet_tail=tail), "hello world")
    write_datadir(tmp_path / "data", d)
    return tmp_path / "data"


def _outcome(feats: Path) -> tuple[str, str, list, set]:
    mels = sorted(feats.rglob("*.npy"))
    return ((feats / "manifest.jsonl").read_text(), (feats / "rejects.tsv").read_text(),
            [np.load(f).tobytes() for f in mels], {f.relative_to(feats) for f in mels})


# max_seconds also goes back to the defaults: four feature runs, 14 CPU-s (tests/conftest.py); the others 6.
@pytest.mark.parametrize("settings", [pytest.param(dict(max_seconds=1.2), marks=pytest.mark.slow),
                                      dict(min_seconds=0.8), dict(top_db=20.0)])
def test_rerun_with_other_settings_equals_a_fresh_run(tmp_path, settings):
    data = _feature_data(tmp_path)
    compute_features(data, tmp_path / "feats", jobs=1, progress=False)
    assert len((tmp_path / "feats" / "rejects.tsv").read_text().splitlines()) == 1  # defaults: none rejected
    rerun = compute_features(data, tmp_path / "feats", jobs=1, progress=False, **settings)
    fresh = compute_features(data, tmp_path / "fresh", jobs=1, progress=False, **settings)
    assert rerun == fresh
    assert _outcome(tmp_path / "feats") == _outcome(tmp_path / "fresh")
    assert fresh[1] or settings.get("top_db")  # the new limits do reject something
    if "max_seconds" in settings:
        # And back to the defaults: the rejected items come back (their mels were deleted), the rest are reused.
        default = compute_features(data, tmp_path / "default", jobs=1, progress=False)
        assert compute_features(data, tmp_path / "feats", jobs=1, progress=False) == default
        assert _outcome(tmp_path / "feats") == _outcome(tmp_path / "default")


def test_cached_mels_without_a_settings_record_are_recomputed(tmp_path, caplog):
    data = _feature_data(tmp_path)
    feats = tmp_path / "feats"
    compute_features(data, feats, jobs=1, progress=False, top_db=20.0)
    # As an older version left it: which top_db made these mels is unknown.
    (feats / "mel_settings.json").unlink(missing_ok=True)
    caplog.set_level(logging.WARNING, logger="data_prep.features")
    assert compute_features(data, feats, jobs=1, progress=False) == compute_features(
        data, tmp_path / "fresh", jobs=1, progress=False)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"features: removed 4 cached mel(s) under {feats / 'mels'} made with other settings "
                          "(no mel_settings.json); computing them again")]


# ---------------------------------------------------------------- 3. validate: audio and empty dirs

def test_validate_catches_empty_truncated_and_unreadable_audio(tmp_path, capsys):
    good = tone(tmp_path / "good.wav", 1.0)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    cut_wav = tmp_path / "cut.wav"
    cut_wav.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 3])
    flac = tone(tmp_path / "full.flac", 1.0)
    cut_flac = tmp_path / "cut.flac"
    cut_flac.write_bytes(flac.read_bytes()[:len(flac.read_bytes()) // 2])
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF but not really" * 5)
    d = DataDir()
    for name, path in (("a", good), ("b", empty), ("c", cut_wav), ("d", flac), ("e", cut_flac), ("f", junk),
                       ("g", tmp_path / "gone.wav")):
        d.add(f"s-{name}", "s", path, "text")
    write_datadir(tmp_path / "data", d)
    assert validate.main([str(tmp_path / "data")]) == 1
    out = capsys.readouterr().out
    assert "5 problem(s)" in out
    assert f"{empty} of s-b is empty (0 bytes)" in out
    assert f"{cut_wav} of s-c is truncated: its header declares 1.00 s of audio but the file holds 0.33 s" in out
    assert f"{cut_flac} of s-e is truncated" in out and f"{junk} of s-f cannot be read as audio" in out
    assert f"{tmp_path / 'gone.wav'} of s-g not found" in out
    assert "s-a " not in out and "s-d " not in out
    # --no-audio still checks the tables only.
    assert validate.main([str(tmp_path / "data"), "--no-audio"]) == 0


def test_validate_refuses_empty_and_missing_data_dirs(tmp_path, capsys):
    write_datadir(tmp_path / "empty", DataDir())
    assert validate.main([str(tmp_path / "empty")]) == 1
    assert "holds no utterance" in capsys.readouterr().out
    assert validate.main([str(tmp_path / "nowhere")]) == 1
    assert "not a directory" in capsys.readouterr().out
    assert validate_datadir(tmp_path / "nowhere", check_audio=True) == [
        f"{tmp_path / 'nowhere'}: not a directory (a data dir holds wav.scp, text, utt2spk and spk2utt)"]


# ---------------------------------------------------------------- 4. few-shot builder edges

def _corpus(tmp_path: Path) -> Path:
    d = DataDir()
    for spk, n in (("T", 45), ("C", 25)):
        for i in range(n):
            d.add(f"{spk}_{i:03d}", spk, f"/audio/{spk}_{i:03d}.wav", f"sentence {i} spoken by {spk.lower()}")
    write_datadir(tmp_path / "all", d)
    return tmp_path / "all"


@pytest.mark.parametrize("counts, message", [
    (dict(n=0), "--n must be at least 1 (got 0)"),
    (dict(n=-3), "--n must be at least 1 (got -3)"),
    (dict(n_ref=-1), "--n-ref must be 0 or more (got -1)"),
    (dict(n_test=-2), "--n-test must be 0 or more (got -2)"),
])
def test_zero_or_negative_counts_are_refused_before_writing(tmp_path, counts, message):
    src = _corpus(tmp_path)
    with pytest.raises(FewShotError) as err:
        make_fewshot(src, tmp_path / "out", "T", "C", **{"n": 20, **counts})
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()


def test_cli_n_zero_fails_with_the_cause(tmp_path, capsys):
    src = _corpus(tmp_path)
    assert fewshot.main([str(src), str(tmp_path / "out"), "--target", "T", "--intruder", "C", "--n", "0"]) == 2
    assert "--n must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_rerun_with_other_fractions_leaves_exactly_its_sets(tmp_path, caplog):
    src = _corpus(tmp_path)
    out = tmp_path / "fs"
    make_fewshot(src, out, "T", "C", n=10, fractions=(0.0, 0.2, 0.4), n_ref=5, n_test=5)
    (out / "p0.40" / "feats").mkdir()  # what the recipe's feature stage adds to a set
    (out / "p0.99").mkdir()  # named like a set but not one of ours: kept
    (out / "p0.99" / "notes.txt").write_text("mine")
    (out / "pictures").mkdir()
    assert not caplog.records
    plan = make_fewshot(src, out, "T", "C", n=10, fractions=(0.0, 0.3), n_ref=5, n_test=5)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"fewshot: removed 2 set(s) of an earlier run that this one does not write: p0.20, p0.40 "
                          f"(under {out})")]
    sets = sorted(q.name for q in out.iterdir() if q.is_dir() and q.name.startswith("p0."))
    assert sets == ["p0.00", "p0.30", "p0.99"] and list(plan["n_corrupt"]) == ["p0.00", "p0.30"]
    assert (out / "pictures").is_dir() and (out / "p0.99" / "notes.txt").read_text() == "mine"
    assert len(read_datadir(out / "p0.30").corrupt) == 3
