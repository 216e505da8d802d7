"""Fidelity metrics (gradtts.scoring.fidelity): MCD after DTW, log-F0 RMSE and voicing error, per directory.

Synthetic signals have known answers (identity, Parseval, semitone shifts, a piecewise time warp); the real
LibriSpeech reading of tests/data gives the realistic cases (noise, phase-vocoder stretch).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradtts.audio import AudioError, load_audio, write_wav
from gradtts.scoring import fidelity as F

SR = F.SAMPLE_RATE
READING = Path(__file__).parent / "data" / "19-198-0000.flac"


def harmonic(f0: float, seconds: float, tilt: float = 1.0) -> np.ndarray:
    """Harmonics of ``f0`` up to 8 kHz with amplitudes h**-tilt, peak 0.5."""
    t = np.arange(int(round(seconds * SR))) / SR
    x = sum(h ** -tilt * np.sin(2 * np.pi * f0 * h * t) for h in range(1, int(8000 / f0) + 1))
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def noise(seconds: float, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(int(round(seconds * SR)))
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


# Five spectrally distinct segments: (f0 or None for noise, seconds, spectral tilt).
SEGMENTS = [(120.0, 0.25, 0.5), (None, 0.25, 0.0), (220.0, 0.25, 2.0), (160.0, 0.25, 1.0), (300.0, 0.25, 0.0)]


def segments(stretch: tuple[float, ...], seed: int = 0) -> np.ndarray:
    parts = [harmonic(f, s * k, tilt) if f else noise(s * k, seed + i)
             for i, ((f, s, tilt), k) in enumerate(zip(SEGMENTS, stretch))]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def reading() -> np.ndarray:
    wav, sr = load_audio(READING, SR)
    assert sr == SR
    return wav


def unaligned_mcd(gen: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Mean frame MCD pairing frame i with frame i (truncated), and with a uniform (linear) time map."""
    cg, cr = F.mel_cepstrum(gen, SR), F.mel_cepstrum(ref, SR)
    n = min(len(cg), len(cr))
    idx = np.round(np.linspace(0, len(cr) - 1, len(cg))).astype(int)
    return float(F.frame_mcd(cg[:n], cr[:n]).mean()), float(F.frame_mcd(cg, cr[idx]).mean())


# ---- MCD -------------------------------------------------------------------------------------------------------

def test_mcd_of_a_signal_with_itself_is_zero_on_the_diagonal(reading):
    r = F.mcd_dtw(reading, reading, SR)
    assert r["mcd_db"] == 0.0
    assert r["n_frames_gen"] == r["n_frames_ref"] == r["path_len"] == 1 + len(reading) // F.HOP


def test_mcd_is_the_rms_of_the_mean_removed_log_mel_difference_in_db():
    # With every coefficient kept (c_1 .. c_79 of 80 bands) Parseval makes the frame MCD exactly the RMS over
    # the bands of the dB difference of the log-mel power spectra, each frame's mean level removed: the
    # sqrt(2/80) scaling and the (10/ln 10) sqrt(2) constant agree with each other.
    a, b = noise(1.0, seed=3), harmonic(150.0, 1.0)
    la, lb = F.log_mel(F.prepare(a, SR)), F.log_mel(F.prepare(b, SR))
    assert la.shape == lb.shape == (1 + SR // F.HOP, 80)
    direct = 20 / math.log(10) * (la - lb).std(axis=1)
    via_cepstrum = F.frame_mcd(F._cepstrum(la, 79), F._cepstrum(lb, 79))
    np.testing.assert_allclose(via_cepstrum, direct, rtol=1e-10)
    assert direct.mean() > 3.0  # noise against a harmonic tone: far from a trivially small number
    # The default 24 coefficients keep the smooth envelope only: never more than the full RMS.
    smooth = F.frame_mcd(F._cepstrum(la, 24), F._cepstrum(lb, 24))
    assert np.all(smooth <= direct + 1e-9) and smooth.mean() > 0.5 * direct.mean()


def test_mcd_is_symmetric_up_to_dtw_ties(reading):
    rng = np.random.default_rng(7)
    noisy = reading + 0.01 * rng.standard_normal(len(reading)).astype(np.float32)
    ab, ba = F.mcd_dtw(noisy, reading, SR), F.mcd_dtw(reading, noisy, SR)
    assert ab["mcd_db"] > 0.5
    assert ab["mcd_db"] == pytest.approx(ba["mcd_db"], rel=0.05)
    assert (ab["n_frames_gen"], ab["n_frames_ref"]) == (ba["n_frames_ref"], ba["n_frames_gen"])


def test_dtw_undoes_a_piecewise_time_warp():
    # Same five segments, each stretched by its own factor: no uniform time map lines them up, DTW does.
    ref = segments((1.0, 1.0, 1.0, 1.0, 1.0))
    gen = segments((1.8, 0.6, 1.5, 0.7, 1.6))
    r = F.mcd_dtw(gen, ref, SR)
    naive, linear = unaligned_mcd(gen, ref)
    assert r["n_frames_gen"] > r["n_frames_ref"]
    assert r["path_len"] >= r["n_frames_gen"]
    # measured: DTW 0.78 dB (segment boundaries and the differing noise), uniform map 3.1, frame-by-frame 6.4
    assert r["mcd_db"] < 1.5
    assert linear > 2.5 * r["mcd_db"] and naive > 5 * r["mcd_db"]


def test_dtw_helps_on_a_stretched_real_reading(reading):
    import librosa

    slow = librosa.effects.time_stretch(reading, rate=0.8)  # phase vocoder: 25 % longer, with its artefacts
    r = F.mcd_dtw(slow, reading, SR)
    naive, linear = unaligned_mcd(slow, reading)
    assert r["n_frames_gen"] == pytest.approx(1.25 * r["n_frames_ref"], rel=0.03)
    # measured: DTW 2.5 dB, uniform 0.8x map 2.8 dB (the stretch is uniform), frame-by-frame 8.3 dB
    assert r["mcd_db"] < linear
    assert naive > 2.5 * r["mcd_db"]


def test_mcd_grows_monotonically_with_noise(reading):
    rng = np.random.default_rng(0)
    white = rng.standard_normal(len(reading)).astype(np.float32)
    power = float(np.sqrt(np.mean(reading ** 2)))
    mcds = [F.mcd_dtw(reading + white * power * 10 ** (-snr / 20), reading, SR)["mcd_db"]
            for snr in (40, 30, 20, 10, 0)]
    # measured: 1.2, 3.1, 5.4, 7.6, 9.1 dB
    assert mcds[0] > 0.3
    assert all(b > a + 0.5 for a, b in zip(mcds, mcds[1:])), mcds


def test_input_at_another_rate_is_analysed_at_22050(reading):
    import librosa

    at16k = librosa.resample(reading, orig_sr=SR, target_sr=16000)
    hiss = 0.01 * np.random.default_rng(2).standard_normal(len(at16k)).astype(np.float32)
    r = F.mcd_dtw(at16k + hiss, at16k, 16000)
    # 22050 Hz frames (hop 256) of the 1.97 s reading: 170; a 16 kHz analysis would give 123
    assert r["n_frames_ref"] == pytest.approx(1 + len(reading) // F.HOP, abs=1)
    assert 0.3 < r["mcd_db"] < F.mcd_dtw(at16k + 10 * hiss, at16k, 16000)["mcd_db"]


# ---- F0 --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("f0,k", [(110.0, 3), (150.7, -5), (220.0, 7)])
def test_log_f0_rmse_of_a_k_semitone_shift_is_k_hundred_cents(f0, k):
    ref = harmonic(f0, 1.0)
    shifted = F.log_f0_rmse(harmonic(f0 * 2 ** (k / 12), 1.0), ref, SR)
    same = F.log_f0_rmse(ref, ref, SR)
    assert same["log_f0_rmse"] == 0.0 and same["vde"] == 0.0
    # The first one or two frames (centred on the abrupt onset, half zero padding) fall under the voiced
    # probability gate for the lower tones; every other frame is voiced in both.
    assert shifted["vde"] <= 2 / shifted["path_len"] and shifted["n_voiced"] >= shifted["path_len"] - 2
    assert 87 <= shifted["path_len"] <= 90  # 87 frames each; DTW may take a step or two off the diagonal
    # pyin decodes F0 on a 10-cent grid (resolution 0.1 semitone) anchored at fmin; a k-semitone shift moves a
    # tone exactly 10k bins, so each frame's difference is 100k cents give or take one bin: 10 cents bound the
    # RMSE error (measured: exact but for one frame of the 150.7 Hz case, 499.8 cents).
    assert shifted["log_f0_rmse_cents"] == pytest.approx(abs(k) * 100, abs=10)
    assert shifted["log_f0_rmse"] == pytest.approx(shifted["log_f0_rmse_cents"] * math.log(2) / 1200, rel=1e-12)


def test_f0_is_compared_along_the_cepstral_path():
    # Two tones of different pitch and timbre, in opposite proportions of time. Frame-by-frame pairing would
    # compare 120 Hz with 200 Hz over 40 % of the frames (measured 557 cents RMSE); the cepstral DTW path pairs
    # like with like, leaving only the frames at the junction.
    ref = np.concatenate([harmonic(120.0, 0.3, tilt=0.5), harmonic(200.0, 0.7, tilt=2.0)])
    gen = np.concatenate([harmonic(120.0, 0.7, tilt=0.5), harmonic(200.0, 0.3, tilt=2.0)])
    r = F.log_f0_rmse(gen, ref, SR)
    assert r["n_voiced"] >= 0.9 * r["path_len"]
    assert r["log_f0_rmse_cents"] < 60  # measured 1.6 cents
    assert r["vde"] < 0.05


def test_noise_against_a_tone_is_a_voicing_error_without_f0_pairs():
    tone, hiss = harmonic(150.0, 1.0), noise(1.0, seed=1)
    for gen, ref in ((hiss, tone), (tone, hiss)):
        r = F.log_f0_rmse(gen, ref, SR)
        assert r["vde"] > 0.95  # measured 1.0 (pyin's flags alone: 0.4-0.7 for these noises)
        assert r["n_voiced"] == 0 and math.isnan(r["log_f0_rmse"]) and math.isnan(r["log_f0_rmse_cents"])
    # Half voiced against fully voiced: the noise half is the voicing error.
    half = F.log_f0_rmse(np.concatenate([harmonic(150.0, 0.5), noise(0.5, seed=2)]), tone, SR)
    assert 0.3 < half["vde"] < 0.7 and half["n_voiced"] > 20


def test_voicing_of_the_real_reading_leaves_out_room_noise(reading):
    import librosa

    gated, raw = F.analyse(reading, SR), F.analyse(reading, SR, voiced_prob_min=0.0)
    rms = librosa.feature.rms(y=reading, frame_length=F.N_FFT, hop_length=F.HOP, center=True)[0]
    level_db = 20 * np.log10(rms / rms.max())
    assert len(level_db) == gated.n_frames == raw.n_frames
    # pyin's own flags include the -33 dB room noise before and after the sentence (at 400-600 Hz); the
    # probability gate keeps the speech only (measured: 76 -> 45 voiced frames, quietest at -12 dB).
    assert level_db[raw.voiced].min() < -30
    assert level_db[gated.voiced].min() > -20
    assert 40 <= gated.voiced.sum() < raw.voiced.sum()
    assert np.all(np.isnan(gated.f0[~gated.voiced])) and np.all(np.isfinite(gated.f0[gated.voiced]))
    assert 200 < np.median(gated.f0[gated.voiced]) < 320  # the reader's speaking pitch, measured 260 Hz


# ---- directory scoring and errors ------------------------------------------------------------------------------

def test_fidelity_over_a_directory_matches_the_single_pair_functions(tmp_path, reading):
    gen_dir, ref_dir = tmp_path / "gen", tmp_path / "ref"
    gen_dir.mkdir()
    ref_dir.mkdir()
    rng = np.random.default_rng(5)
    refs = {"u1": reading, "u2": harmonic(130.0, 0.8)}
    gens = {"u1": reading + 0.02 * rng.standard_normal(len(reading)).astype(np.float32),
            "u2": harmonic(130.0 * 2 ** (2 / 12), 1.0)}
    ref_wavs = {}
    for utt in refs:
        write_wav(gen_dir / f"{utt}.wav", gens[utt])
        write_wav(ref_dir / f"{utt}.wav", refs[utt])
        ref_wavs[utt] = ref_dir / f"{utt}.wav"
    ref_wavs["unused"] = ref_dir / "unused.wav"  # references without a generated clip are fine
    cache: dict = {}
    res = F.fidelity(gen_dir, ref_wavs, cache=cache)
    assert res["n_utts"] == 2 and [r["utt"] for r in res["rows"]] == ["u1", "u2"]
    assert len(cache) == 2  # the two references, kept for the next run's call
    for row in res["rows"]:
        g, _ = load_audio(row["gen"])
        r, _ = load_audio(row["ref"])
        assert row["mcd_db"] == pytest.approx(F.mcd_dtw(g, r, SR)["mcd_db"], rel=1e-9)
        f0 = F.log_f0_rmse(g, r, SR)
        for key in ("log_f0_rmse_cents", "vde", "n_voiced", "path_len"):
            assert row[key] == pytest.approx(f0[key], rel=1e-9)
    assert res["rows"][1]["log_f0_rmse_cents"] == pytest.approx(200, abs=10)
    assert res["mean"]["mcd_db"] == pytest.approx(np.mean([r["mcd_db"] for r in res["rows"]]))
    assert res["mean"]["n_f0_utts"] == 2
    assert res["settings"]["n_cep"] == 24 and res["settings"]["fmin"] == 50.0
    again = F.fidelity(gen_dir, ref_wavs, cache=cache, utts=["u2"])
    assert again["rows"][0] == res["rows"][1]


def test_fidelity_errors_name_the_utterance_and_file(tmp_path):
    gen_dir = tmp_path / "gen"
    gen_dir.mkdir()
    with pytest.raises(AudioError, match="no generated <utt>.wav"):
        F.fidelity(gen_dir, {})
    write_wav(gen_dir / "u1.wav", harmonic(150.0, 0.5))
    with pytest.raises(AudioError, match=r"u1\.wav: utterance 'u1' has no reference recording"):
        F.fidelity(gen_dir, {"u2": tmp_path / "u2.wav"})
    with pytest.raises(AudioError, match=r"utterance 'u1' \(reference\): .*missing\.flac: no such audio file"):
        F.fidelity(gen_dir, {"u1": tmp_path / "missing.flac"})
    write_wav(tmp_path / "ref.wav", harmonic(150.0, 0.5))
    (gen_dir / "u1.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(AudioError, match=r"utterance 'u1' \(generated\): .*u1\.wav: cannot be read as audio"):
        F.fidelity(gen_dir, {"u1": tmp_path / "ref.wav"})
    write_wav(gen_dir / "u1.wav", np.zeros(SR, np.float32))
    with pytest.raises(AudioError, match=r"utterance 'u1' \(generated\): .*u1\.wav: the audio is silent"):
        F.fidelity(gen_dir, {"u1": tmp_path / "ref.wav"})
    write_wav(gen_dir / "u1.wav", harmonic(150.0, 0.02))
    with pytest.raises(AudioError, match=r"u1\.wav: 0\.020 s of sound after trimming"):
        F.fidelity(gen_dir, {"u1": tmp_path / "ref.wav"})
    with pytest.raises(AudioError, match="nowhere: no such directory"):
        F.fidelity(tmp_path / "nowhere", {})
    with pytest.raises(ValueError, match="n_cep=80"):
        F.mcd_dtw(harmonic(150.0, 0.5), harmonic(150.0, 0.5), SR, n_cep=80)
    with pytest.raises(AudioError, match="generated signal: contains NaN"):
        F.mcd_dtw(np.full(SR, np.nan, np.float32), harmonic(150.0, 0.5), SR)


# ---- the scoring stage's fidelity.json ----------------------------------------------------------------------------

def test_score_fidelity_writes_a_keyed_summary_and_reuses_it_only_while_its_inputs_stay(tmp_path):
    from gradtts.data.datadir import DataDir, write_datadir
    from gradtts.scoring.cli import score_fidelity

    gen_dir, out = tmp_path / "gen", tmp_path / "score"
    d = DataDir()
    for i, (utt, f0) in enumerate((("T_01", 140.0), ("T_02", 190.0))):
        write_wav(gen_dir / f"{utt}.wav", harmonic(f0 * 2 ** (1 / 12), 0.6 + 0.1 * i))
        write_wav(tmp_path / "rec" / f"{utt}.wav", harmonic(f0, 0.6))
        d.add(utt, "T", str(tmp_path / "rec" / f"{utt}.wav"), "some words")
    write_datadir(tmp_path / "ref_test", d)
    res = score_fidelity(gen_dir, tmp_path / "ref_test", out)
    direct = F.fidelity(gen_dir, {u: d.wavs[u] for u in d.utts})
    assert res["mean"] == pytest.approx(direct["mean"]) and res["n_utts"] == 2
    assert res["mean"]["log_f0_rmse_cents"] == pytest.approx(100, abs=10)  # one semitone up
    assert [(r["utt"], r["gen"], r["ref"]) for r in res["rows"]] == [("T_01", "T_01.wav", "T_01.wav"),
                                                                     ("T_02", "T_02.wav", "T_02.wav")]
    assert str(tmp_path) not in (out / "fidelity.json").read_text()  # committed: names, not this machine's paths
    assert sorted(res["key"]["gen"]) == ["T_01.wav", "T_02.wav"] and res["key"]["settings"]["n_cep"] == 24
    # Same inputs: the file is returned as it is (a planted value survives); changed audio: measured again.
    stored = json.loads((out / "fidelity.json").read_text())
    stored["mean"]["mcd_db"] = -1.0
    (out / "fidelity.json").write_text(json.dumps(stored))
    assert score_fidelity(gen_dir, tmp_path / "ref_test", out)["mean"]["mcd_db"] == -1.0
    write_wav(gen_dir / "T_02.wav", harmonic(190.0, 0.7))
    again = score_fidelity(gen_dir, tmp_path / "ref_test", out)
    assert again["mean"]["mcd_db"] > 0 and again["key"]["gen"]["T_02.wav"] != res["key"]["gen"]["T_02.wav"]
    assert again["rows"][1]["log_f0_rmse_cents"] < 20  # now the same pitch as its recording
    # A folder of recordings works too (matched by file stem); a generated sentence without one is named.
    assert score_fidelity(gen_dir, tmp_path / "rec", tmp_path / "o2")["mean"] == pytest.approx(again["mean"])
    (tmp_path / "rec" / "T_02.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"rec: no recording of the generated utterance\(s\) \['T_02.wav'\]"):
        score_fidelity(gen_dir, tmp_path / "rec", tmp_path / "o3")
