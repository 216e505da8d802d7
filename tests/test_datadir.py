"""Kaldi data directories: writing, reading, validation messages, file lists."""

import subprocess

import pytest

from gradtts.data.datadir import DataDir, DataDirError, read_datadir, validate_datadir, write_datadir, write_filelist


def _dir():
    d = DataDir()
    d.add("spkB_002", "spkB", "/a/b2.wav", "second   text")
    d.add("spkA_001", "spkA", "/a/a1.wav", "first text")
    d.add("spkA-x_003", "spkA", "/a/x3.wav", "third text")
    return d


def test_round_trip_is_c_sorted(tmp_path):
    write_datadir(tmp_path, _dir())
    lines = (tmp_path / "utt2spk").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["spkA-x_003", "spkA_001", "spkB_002"]  # '-' < '_' in C order
    subprocess.run(["sort", "-c"], input=(tmp_path / "wav.scp").read_bytes(), check=True, env={"LC_ALL": "C"})
    d = read_datadir(tmp_path)
    assert d.texts["spkB_002"] == "second text" and d.spk2utt["spkA"] == ["spkA-x_003", "spkA_001"]
    assert (tmp_path / "spk2utt").read_text().splitlines()[0] == "spkA spkA-x_003 spkA_001"


def test_validation_reports_every_problem(tmp_path):
    write_datadir(tmp_path, _dir())
    (tmp_path / "text").write_text("spkB_002 b\nspkA_001 a\n")  # unsorted and one missing
    (tmp_path / "utt2spk").write_text((tmp_path / "utt2spk").read_text() + "zzz_9 spkZ\n")
    problems = validate_datadir(tmp_path)
    joined = "\n".join(problems)
    assert "text:2: not C-sorted" in joined
    assert "text: no entry for utterance spkA-x_003" in joined
    assert "wav.scp: no entry for utterance zzz_9" in joined
    assert "zzz_9 does not start with its speaker id spkZ" in joined
    assert "spk2utt: does not match utt2spk" in joined
    with pytest.raises(DataDirError, match=r"\d+ problem\(s\)"):
        read_datadir(tmp_path)


def test_refuses_to_write_invalid_and_filelist(tmp_path):
    d = DataDir()
    d.add("u1", "spk", "/x.wav", "hi")
    with pytest.raises(DataDirError, match="does not start with its speaker id"):
        write_datadir(tmp_path / "bad", d)
    assert not (tmp_path / "bad" / "wav.scp").exists()
    spk2id = write_filelist(tmp_path / "list.txt", _dir())
    assert spk2id == {"spkA": 0, "spkB": 1}
    assert (tmp_path / "list.txt").read_text().splitlines()[0] == "/a/x3.wav|third text|0"
    # Speakers "19" and "198" with "_" after the id: utterance order and speaker order disagree.
    bad = DataDir()
    bad.add("19_1", "19", "/x.wav", "a")
    bad.add("198_1", "198", "/y.wav", "b")
    with pytest.raises(DataDirError, match="speakers are out of order at 19_1"):
        write_datadir(tmp_path / "bad2", bad)


def test_validate_cli(tmp_path):
    write_datadir(tmp_path, _dir())
    r = subprocess.run(["python", "-m", "data_prep.validate", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1 and "audio file /a/a1.wav of spkA_001 not found" in r.stdout
    r = subprocess.run(["python", "-m", "data_prep.validate", str(tmp_path), "--no-audio"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "3 utterances, 2 speakers" in r.stdout
