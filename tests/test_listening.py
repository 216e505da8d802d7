"""The listening page (gradtts.report.listening) on a small fake study of real files laid out as gradtts.layout says:
the pages, their clips, reruns, errors, the preference table, and a rating round in a real headless Chromium."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gradtts import layout
from gradtts.data.datadir import DataDir, write_datadir
from gradtts.report.listening import (CSV_COLUMNS, ListeningError, build_page, preference_markdown,
                                      preference_table, wilson_interval)
from gradtts.report.listening.__main__ import main as cli_main

SR = 22050
TARGET, INTRUDER = "spkA", "spkB"
PAIR = layout.pair_name(TARGET, INTRUDER)
STEP = 120
# run directory tag -> (loss, arm label, arm_id) as run.json records them
ARMS = {"l2": ("l2", "l2", "a1b2c3d4e5f6"),
        "scheduled_huber_exponential_dmin0.1": ("scheduled_huber", "scheduled_huber", "0f9e8d7c6b5a")}
S_T = {("l2", 0.0): 0.80, ("l2", 0.3): 0.70, ("scheduled_huber", 0.0): 0.82, ("scheduled_huber", 0.3): 0.78}
S_C = {("l2", 0.0): 0.40, ("l2", 0.3): 0.55, ("scheduled_huber", 0.0): 0.41, ("scheduled_huber", 0.3): 0.45}
SENTENCES = [(f"{TARGET}-0010", "The quick fox naps."), (f"{TARGET}-0011", "A second, short sentence."),
             (f"{TARGET}-0012", "Rain falls on the plain."), (f"{TARGET}-0013", "Never shown with three.")]


def _tone(path: Path, freq: float, seconds: float) -> float:
    """A real 16-bit WAV: a tone with a little noise; returns its duration."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(int(freq))
    wav = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.astype(np.float32), SR, subtype="PCM_16")
    return len(t) / SR


def _json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


def make_study(root: Path) -> tuple[Path, dict[Path, float]]:
    """EXP with one pair, two arms x p in {0, 0.3}, seed 0, step 120 (+ step 0); returns EXP and wav durations."""
    exp = root / "exp"
    durations: dict[Path, float] = {}
    freq = iter(range(200, 2000, 37))

    def tone(path: Path, seconds: float) -> Path:
        durations[path] = _tone(path, next(freq), seconds)
        return path

    fs = layout.fewshot_dir(exp, PAIR)
    for spk, ref in ((TARGET, layout.REF_TARGET), (INTRUDER, layout.REF_INTRUDER)):
        d = DataDir()
        for i in range(3):
            utt = f"{spk}-000{i}"
            d.add(utt, spk, tone(root / "corpus" / f"{utt}.wav", 0.4 + 0.1 * i), f"Reference {i} of {spk}.")
        write_datadir(fs / ref, d)
    (fs / layout.TEST_TEXTS).write_text("".join(f"{u} {t}\n" for u, t in SENTENCES), encoding="utf-8")
    _json(fs / "fewshot.json", {"target": TARGET, "intruder": INTRUDER, "test": [u for u, _ in SENTENCES]})

    def synth(gen: Path, step: int) -> None:
        utts = {}
        for k, (utt, text) in enumerate(SENTENCES):
            tone(gen / f"{utt}.wav", 0.5 + 0.05 * k + 0.01 * (len(durations) % 7))
            utts[utt] = {"text": text, "tokens": [1, 2, 3], "frames": 40, "noise_seed": k}
        _json(gen / "synth.json", {"settings": {"checkpoint": f"step_{step:07d}.pt", "step": step,
                                                "vocoder": {"name": "hifigan"}}, "utts": utts})

    s0 = layout.step0_dir(exp, PAIR)
    synth(s0 / "synth" / "step_0000000", 0)
    _json(s0 / "score" / "step_0000000" / "summary.json",
          {"S_T": 0.5, "S_C": 0.5, "n_gen": 4, "encoder": "ge2e", "kind": "step0", "pair": PAIR, "step": 0,
           "seed": None, "loss": None, "arm": None, "arm_id": None, "p": 0.0, "vocoder": "hifigan"})
    for tag, (loss, arm, arm_id) in ARMS.items():
        for p in (0.0, 0.3):
            run = layout.run_dir(exp, PAIR, tag, p, 0)
            (run / "ckpt").mkdir(parents=True)
            _json(run / "run.json", {"arm_id": arm_id, "arm": arm, "loss": loss, "loss_tag": tag, "seed": 0,
                                     "study": {"pair": PAIR, "pset": layout.set_name(p)}, "n_train": 20,
                                     "n_corrupt": round(20 * p), "p_actual": p, "new_speakers": [TARGET]})
            synth(run / "synth" / f"step_{STEP:07d}", STEP)
            _json(run / "score" / f"step_{STEP:07d}" / "summary.json",
                  {"S_T": S_T[arm, p], "S_C": S_C[arm, p], "n_gen": 4, "encoder": "ge2e", "kind": "run", "pair": PAIR,
                   "loss": loss, "arm": arm, "arm_id": arm_id, "p": p, "seed": 0, "p_actual": p, "n_train": 20,
                   "n_corrupt": round(20 * p), "step": STEP, "vocoder": "hifigan"})
    return exp, durations


@pytest.fixture
def study(tmp_path):
    return make_study(tmp_path)


def _srcs(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    srcs = re.findall(r'<(?:audio|source)[^>]* src="([^"]+)"', text)
    m = re.search(r'<script type="application/json" id="trial-data">(.*?)</script>', text, re.S)
    if m:
        srcs += [s for t in json.loads(m.group(1))["trials"] for s in (t["a"], t["b"])]
    return srcs


def _trials(page: Path) -> list[dict]:
    m = re.search(r'id="trial-data">(.*?)</script>', page.read_text(encoding="utf-8"), re.S)
    return json.loads(m.group(1))["trials"]


# ---- the pages and their clips ---------------------------------------------------------------------------------
def test_page_has_every_clip_compact_and_the_scores(study, tmp_path):
    exp, durations = study
    out = tmp_path / "page"
    res = build_page(exp, out, max_sentences=3)
    # 2 + 2 references, 3 step-0 sentences, 2 arms x 2 p x 3 sentences
    assert res["clips"] == 4 + 3 + 12 == res["converted"] and res["reused"] == 0
    assert res["trials"] == 2 * 3 and res["format"] == "ogg"
    assert sorted(res["pages_written"]) == ["ab.html", "index.html"]
    index, ab = out / "index.html", out / "ab.html"
    srcs = _srcs(index)
    assert len(srcs) == 19 and len(set(srcs)) == 19
    assert len(_srcs(ab)) == 12
    on_disk = {f"audio/{f.name}" for f in (out / "audio").iterdir()}
    assert set(srcs) | set(_srcs(ab)) == on_disk  # every src exists, every file is used
    by_duration = sorted(durations.values())
    for s in srcs:
        assert not s.startswith(("/", "http")), s  # relative: the page works from any folder, offline
        info = sf.info(str(out / s))
        assert (info.format, info.subtype, info.channels, info.samplerate) == ("OGG", "VORBIS", 1, SR)
        # a copy lasts as long as one of the sources (Vorbis keeps the length to the sample)
        assert min(abs(info.duration - d) for d in by_duration) < 1e-3
    total = sum((out / s).stat().st_size for s in on_disk)
    assert total == res["audio_bytes"] and res["total_bytes"] == total + res["page_bytes"]
    wav_total = sum(p.stat().st_size for p in durations)
    assert total < wav_total / 3  # compressed well below the 16-bit sources

    html = index.read_text(encoding="utf-8")
    # the reference arm (l2) first, then p ascending; R and L against the same arm's p = 0 run
    heads = re.findall(r"<th>([a-z0-9_]+)<br>p = ([0-9.]+)", html)
    assert heads == [("l2", "0.00"), ("l2", "0.30"), ("scheduled_huber", "0.00"), ("scheduled_huber", "0.30")]
    assert "S<sub>T</sub> 0.780 · S<sub>C</sub> 0.450<br>R -0.040 · L +0.040" in html
    assert "S<sub>T</sub> 0.700 · S<sub>C</sub> 0.550<br>R -0.100 · L +0.150" in html
    assert "Reference 1 of spkB." in html and "target: spkA" in html and "base model, step 0" in html
    assert "Never shown with three." not in html  # --max-sentences 3
    assert "http://" not in html + ab.read_text(encoding="utf-8") and "https://" not in html


def test_page_shows_each_clips_ovrl_and_wer_where_stage_7_measured_them(study, tmp_path):
    exp, _ = study
    score = layout.run_dir(exp, PAIR, "l2", 0.3, 0) / "score" / f"step_{STEP:07d}"
    utt = SENTENCES[1][0]
    _json(score / "quality.json", {"rows": [{"utt": utt, "ovrl": 2.875, "sig": 3.0, "bak": 3.5, "p808": 3.1}]})
    _json(score / "intelligibility.json", {"rows": [{"utt": utt, "wer": 0.25, "cer": 0.1}]})
    step0 = layout.step0_dir(exp, PAIR) / "score" / "step_0000000"
    _json(step0 / "quality.json", {"rows": [{"utt": SENTENCES[0][0], "ovrl": 3.5}]})
    build_page(exp, tmp_path / "page", max_sentences=3)
    html = (tmp_path / "page" / "index.html").read_text(encoding="utf-8")
    assert html.count('<div class="scores">OVRL 2.88 · WER 25 %</div>') == 1
    assert html.count('<div class="scores">OVRL 3.50</div>') == 1  # step 0: quality only
    assert html.count('<div class="scores">OVRL') == 2  # clips without the files show nothing more


def test_ab_trials_pair_each_arm_with_the_reference_on_the_same_sentence(study, tmp_path):
    exp, _ = study
    build_page(exp, tmp_path / "a", ab_seed=0)
    trials = _trials(tmp_path / "a" / "ab.html")
    assert len({t["id"] for t in trials}) == 6
    assert {(t["arm_x"], t["arm_y"]) for t in trials} == {("scheduled_huber", "l2")}
    assert sorted((t["p"], t["utt"]) for t in trials) == sorted((p, u) for p in (0.0, 0.3) for u, _ in SENTENCES[:3])
    # A and B are the two arms' clips of the trial's sentence, at the trial's p
    index = (tmp_path / "a" / "index.html").read_text(encoding="utf-8")
    for t in trials:
        assert t["a"] != t["b"] and t["a"] in index and t["b"] in index
    # the same seed gives the same page; another seed other sides or order, same trials
    build_page(exp, tmp_path / "b", ab_seed=0)
    assert (tmp_path / "a" / "ab.html").read_bytes() == (tmp_path / "b" / "ab.html").read_bytes()
    build_page(exp, tmp_path / "c", ab_seed=5)
    other = _trials(tmp_path / "c" / "ab.html")
    assert {t["id"] for t in other} == {t["id"] for t in trials}
    assert [(t["id"], t["shown_as_A"]) for t in other] != [(t["id"], t["shown_as_A"]) for t in trials]
    # a sample of trials, and the arm under test named by its label
    res = build_page(exp, tmp_path / "d", ab_max_trials=4)
    assert res["trials"] == 4 and len(_trials(tmp_path / "d" / "ab.html")) == 4
    with pytest.raises(ListeningError, match=r"--ab-reference: reference arm 'huber' is not one of"):
        build_page(exp, tmp_path / "e", ab_reference="huber")
    res = build_page(exp, tmp_path / "f", arms=["l2"])
    assert res["trials"] == 0 and "No A/B trials" in (tmp_path / "f" / "ab.html").read_text(encoding="utf-8")


def test_rerun_converts_nothing_and_prunes_unused_clips(study, tmp_path):
    exp, _ = study
    out = tmp_path / "page"
    first = build_page(exp, out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = build_page(exp, out)
    assert (again["converted"], again["reused"], again["removed"], again["pages_written"]) == (0, 19, 0, [])
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps
    assert again["page_id"] == first["page_id"]
    (out / "audio" / "notes.txt").write_text("mine")  # not one of the page's copies: left alone
    fewer = build_page(exp, out, max_sentences=2)
    assert (fewer["clips"], fewer["converted"], fewer["removed"]) == (4 + 2 + 8, 0, 5)
    assert len(list((out / "audio").glob("*.ogg"))) == 14 and (out / "audio" / "notes.txt").is_file()
    assert fewer["page_id"] != first["page_id"]
    # a changed source gets a new copy (its name is a digest of the bytes)
    gen = layout.run_dir(exp, PAIR, "l2", 0.3, 0) / "synth" / f"step_{STEP:07d}" / f"{SENTENCES[0][0]}.wav"
    _tone(gen, 999.0, 0.3)
    changed = build_page(exp, out, max_sentences=2)
    assert (changed["converted"], changed["removed"]) == (1, 1)


def test_wav_format_and_the_size_budget(study, tmp_path):
    exp, _ = study
    res = build_page(exp, tmp_path / "wav", audio_format="wav", sample_rate=16000, max_sentences=1)
    clip = next((tmp_path / "wav" / "audio").glob("*.wav"))
    info = sf.info(str(clip))
    assert (info.subtype, info.samplerate, res["clips"]) == ("PCM_16", 16000, 4 + 1 + 4)
    with pytest.raises(ListeningError, match=r"MiB, over --max-mb 0.01; .*\(pages not written\)"):
        build_page(exp, tmp_path / "small", max_mb=0.01)
    assert not (tmp_path / "small" / "index.html").exists()


def test_missing_inputs_are_named(study, tmp_path):
    exp, _ = study
    out = tmp_path / "page"
    with pytest.raises(ListeningError, match=r"step_0000060: no synthesis of step 60; run python -m gradtts.grid "
                                             r"synth .* --steps 60"):
        build_page(exp, out, steps=[60])
    with pytest.raises(ListeningError, match=r"--seeds: no run has seed 3 \(found: 0\)"):
        build_page(exp, out, seeds=[3])
    with pytest.raises(ListeningError, match=r"--pairs: no run has pair spkA_spkC"):
        build_page(exp, out, pairs=["spkA:spkC", "spkA:spkB"])
    run = layout.run_dir(exp, PAIR, "l2", 0.3, 0)
    summary = run / "score" / f"step_{STEP:07d}" / "summary.json"
    summary.rename(summary.with_name("old.json"))
    with pytest.raises(ListeningError, match=re.escape(str(summary)) + ": no usable score summary"):
        build_page(exp, out)
    summary.with_name("old.json").rename(summary)
    wav = run / "synth" / f"step_{STEP:07d}" / f"{SENTENCES[1][0]}.wav"
    wav.unlink()
    with pytest.raises(ListeningError, match=re.escape(str(wav)) + ": missing generated wav of test sentence"):
        build_page(exp, out)
    shutil.rmtree(run / "synth")
    with pytest.raises(ListeningError, match=r"no step is synthesised by every selected run \(.*l2/p0.30/seed0/synth "
                                             r"is missing or empty\)"):
        build_page(exp, out)
    ref = tmp_path / "corpus" / f"{INTRUDER}-0001.wav"
    ref.unlink()
    with pytest.raises(ListeningError, match=r"ref_intruder/wav.scp: audio file of spkB-0001 not found"):
        build_page(exp, out, arms=["scheduled_huber"])
    assert not out.exists() or not (out / "index.html").exists()


# ---- ratings -> preference table -------------------------------------------------------------------------------
def test_wilson_interval_matches_the_closed_form():
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)  # the textbook 8/10 example
    assert wilson_interval(0, 5)[0] == 0.0 and 0.43 < wilson_interval(0, 5)[1] < 0.44
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def _write_ratings(path: Path, rows: list[tuple]) -> None:
    """rows: (listener, trial, arm_x, arm_y, shown_as_A, choice, timestamp)"""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for lst, trial, x, y, a, choice, ts in rows:
            b = y if a == x else x
            preferred = {"A": a, "B": b, "none": ""}[choice]
            w.writerow([lst, "pg", trial, PAIR, 0, STEP, 0.3, "u", x, y, a, choice, preferred, ts])


def test_preference_table_counts_ties_duplicates_and_listeners(tmp_path):
    x, y = "scheduled_huber", "l2"
    t0 = "2024-05-01T10:00:0{}Z"
    one = [("L1", f"t{i}", x, y, x if i % 2 else y, c, t0.format(i))
           for i, c in enumerate(["A", "A", "A", "none"])]  # A alternates y, x, y, x: prefers y, x, y, tie
    two = [("L2", f"t{i}", x, y, x, c, t0.format(i)) for i, c in enumerate(["A", "A", "A", "A"])]  # 4 x
    # L1 downloads again after changing trial t0 to "B" (x, as x was shown as B): the later rating counts
    redo = one + [("L1", "t0", x, y, y, "B", "2024-05-01T10:05:00Z")]
    _write_ratings(tmp_path / "l1.csv", one)
    _write_ratings(tmp_path / "l1_again.csv", redo)
    _write_ratings(tmp_path / "l2.csv", two)
    (row,) = preference_table([tmp_path / "l1.csv", tmp_path / "l1_again.csv", tmp_path / "l2.csv"])
    assert (row["arm_x"], row["arm_y"], row["n"], row["n_listeners"]) == (x, y, 8, 2)
    assert (row["n_x"], row["n_y"], row["n_tie"]) == (6, 1, 1)
    assert (row["share_x_lo"], row["share_x_hi"]) == pytest.approx(wilson_interval(6, 8))
    # net per listener: L1 (x, x, y, tie) = 1/4, L2 = 1; t-interval over the two listeners
    assert row["net"] == pytest.approx(0.625) and row["net_n"] == 2 and row["net_df"] == 1
    # sd = 0.75 / sqrt(2), half = t(0.975, 1) * sd / sqrt(2) = 12.7062 * 0.375
    assert row["net_ci"] == pytest.approx(12.7062047 * 0.375, rel=1e-6)
    md = preference_markdown([row])
    assert f"| {x} | {y} | 8 | 2 | 0.75 [0.41, 0.93] (6) | 0.12 [0.02, 0.47] (1) |" in md
    assert "Wilson score intervals" in md and "t-interval over listeners" in md
    by_p = preference_table([tmp_path / "l2.csv"], by=("p",))
    assert [(r["p"], r["n_x"], r["net"]) for r in by_p] == [("0.3", 4, 1.0)]
    assert math.isnan(by_p[0]["net_ci"])  # one listener: no interval, said in words
    assert "(n = 1, no interval)" in preference_markdown(by_p, by=("p",))


def test_ratings_that_contradict_themselves_are_refused(tmp_path):
    path = tmp_path / "r.csv"
    _write_ratings(path, [("L1", "t0", "a", "b", "a", "A", "2024")])
    text = path.read_text().replace(",A,a,2024", ",A,b,2024")  # preferred edited: no longer what was shown as A
    path.write_text(text)
    with pytest.raises(ListeningError, match=r"r.csv:2: preferred 'b' does not follow from choice A"):
        preference_table([path])
    path.write_text("listener,trial,choice\nL1,t0,A\n")
    with pytest.raises(ListeningError, match=r"not a ratings CSV of the A/B page, columns page, pair"):
        preference_table([path])
    with pytest.raises(ListeningError, match=r"nope.csv: ratings CSV not found"):
        preference_table([tmp_path / "nope.csv"])


def test_command_line(study, tmp_path, capsys):
    exp, _ = study
    out = tmp_path / "page"
    assert cli_main([str(exp), str(out), "--pairs", f"{TARGET}:{INTRUDER}", "--seeds", "0", "--steps", str(STEP),
                     "--max-sentences", "2", "--format", "ogg", "--ab-reference", "l2"]) == 0
    said = capsys.readouterr().out
    assert re.search(r"listening page: 14 clips \(14 converted, 0 reused, 0 unused removed\), 4 A/B trials; "
                     r"0\.\d\d MiB \(audio 0\.\d\d MiB as ogg, pages \d+\.\d KiB\) -> .*index.html", said), said
    ratings = tmp_path / "ratings.csv"
    _write_ratings(ratings, [("L1", "t0", "x", "y", "x", "A", "2024"), ("L1", "t1", "x", "y", "y", "none", "2024")])
    assert cli_main(["prefs", str(tmp_path / "prefs.md"), str(ratings), "--csv", str(tmp_path / "prefs.csv")]) == 0
    assert "| x | y | 2 | 1 | 0.50" in (tmp_path / "prefs.md").read_text(encoding="utf-8")
    assert (tmp_path / "prefs.csv").read_text().startswith("arm_x,arm_y,n,n_listeners,n_x,n_y,n_tie,share_x")
    with pytest.raises(SystemExit) as e:
        cli_main([str(exp), str(out), "--steps", "60"])
    assert e.value.code == 2
    assert "python -m gradtts.report.listening: error:" in capsys.readouterr().err


# ---- a real browser --------------------------------------------------------------------------------------------
def _require_browser() -> tuple[str, str]:
    """Chromium's and chromedriver's paths; skips (naming what to install) when they or selenium are absent."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.skip("chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    return chromium, driver_bin


def _browser(download_dir: Path, chromium: str, driver_bin: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                           "download.prompt_for_download": False})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_bin), options=opts)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def _wait(what, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while True:
        got = what()
        if got or time.monotonic() > end:
            return got
        time.sleep(0.1)


_AUDIO_STATE = ("return Array.from(document.querySelectorAll('audio')).map(a => "
                "[a.getAttribute('src'), a.readyState, a.duration, a.error ? a.error.code : null]);")


def _audio_loaded(driver) -> list:
    states = _wait(lambda: (lambda s: s if all(r[1] >= 1 or r[3] for r in s) else None)(
        driver.execute_script(_AUDIO_STATE)))
    assert states, "the audio elements did not load their metadata within 30 s"
    return states


def _severe(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


# Not slow: about 3.5 CPU-s in all (0.8 in pytest, 2.5 in chromedriver and Chromium, measured from /proc).
def test_rating_round_in_headless_chromium(study, tmp_path):
    exp, _ = study
    binaries = _require_browser()
    out = tmp_path / "page"
    build_page(exp, out, max_sentences=3)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = _browser(downloads, *binaries)
    try:
        # the labelled page: no script error, every audio element's file opens with the copy's duration
        driver.get((out / "index.html").as_uri())
        states = _audio_loaded(driver)
        assert len(states) == 19 and not _severe(driver)
        for src, ready, duration, error in states:
            assert error is None and ready >= 1, (src, ready, error)
            # Chromium reads an Ogg/Vorbis length from its pages: up to one block (256 samples here) longer
            assert duration == pytest.approx(sf.info(str(out / src)).duration, abs=0.02), src

        driver.get((out / "ab.html").as_uri())
        trials = driver.execute_script("return JSON.parse(document.getElementById('trial-data').textContent)"
                                       ".trials;")
        assert len(trials) == 6 and driver.find_elements("css selector", ".trial") == []
        driver.find_element("id", "start").click()  # no listener id yet: refused, nothing shown
        assert driver.find_element("id", "message").text == "Enter a listener id first."
        driver.find_element("id", "listener").send_keys("ear,1")  # a comma: the CSV must quote it
        driver.find_element("id", "start").click()
        shown = [e.get_attribute("id")[6:] for e in driver.find_elements("css selector", ".trial")]
        assert sorted(shown) == sorted(t["id"] for t in trials)
        states = _audio_loaded(driver)
        assert len(states) == 12 and all(r[1] >= 1 and r[3] is None for r in states)
        assert driver.find_element("id", "download").get_attribute("disabled") is not None

        # the script: prefer scheduled_huber at p = 0.3, l2 at p = 0 except no preference on the first sentence
        expected = {}
        for t in trials:
            want = "scheduled_huber" if t["p"] > 0 else ("" if t["utt"] == SENTENCES[0][0] else "l2")
            choice = "none" if not want else ("A" if t["shown_as_A"] == want else "B")
            driver.find_element("id", f"{t['id']}-{choice}").click()
            expected[t["id"]] = (choice, want)
        assert driver.find_element("id", "progress").text == "6 of 6 trials rated"
        driver.find_element("id", "download").click()
        page = json.loads(re.search(r'id="trial-data">(.*?)</script>', (out / "ab.html").read_text(), re.S)
                          .group(1))["page"]
        target = downloads / f"ratings_ear_1_{page}.csv"
        assert _wait(lambda: target.is_file() and not list(downloads.glob("*.crdownload")), 20), \
            f"no download: {list(downloads.iterdir())}"
        text = target.read_text(encoding="utf-8")
        assert text == driver.execute_script("return window.gradttsRatingsCsv();")
        assert not _severe(driver), driver.get_log("browser")
        # the listener comes back: the same id finds the choices kept in the browser
        driver.refresh()
        driver.find_element("id", "listener").send_keys("ear,1")
        driver.find_element("id", "start").click()
        assert driver.find_element("id", "progress").text == "6 of 6 trials rated"
        assert driver.execute_script("return window.gradttsRatingsCsv();") == text
    finally:
        driver.quit()

    rows = list(csv.DictReader(text.splitlines()))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 6
    assert text.splitlines()[1].startswith('"ear,1",')
    by_id = {t["id"]: t for t in trials}
    for r in rows:
        t = by_id[r["trial"]]
        assert (r["choice"], r["preferred"]) == expected[r["trial"]]
        assert (r["arm_x"], r["arm_y"], r["shown_as_A"], r["page"]) == (t["arm_x"], t["arm_y"], t["shown_as_A"], page)
        assert (r["pair"], r["seed"], r["step"], float(r["p"]), r["utt"]) == (PAIR, "0", str(STEP), t["p"], t["utt"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["timestamp"])
    (row,) = preference_table([target])
    assert (row["arm_x"], row["arm_y"], row["n"], row["n_listeners"]) == ("scheduled_huber", "l2", 6, 1)
    assert (row["n_x"], row["n_y"], row["n_tie"]) == (3, 2, 1)
    assert row["net"] == pytest.approx(1 / 6) and math.isnan(row["net_ci"])
    by_p = preference_table([target], by=("p",))
    assert [(r["p"], r["n_x"], r["n_y"], r["n_tie"]) for r in by_p] == [("0", 0, 2, 1), ("0.3", 3, 0, 0)]


# ---- gradtts-report: the page and the preferences as part of the report ----------------------------------------
def _ratings_pair(tmp_path: Path) -> list[Path]:
    """Two listeners' downloads of the preference-table test: 8 ratings, 6 prefer scheduled_huber, 1 l2, 1 tie."""
    x, y = "scheduled_huber", "l2"
    one = [("L1", f"t{i}", x, y, x if i % 2 else y, c, f"2024-05-01T10:00:0{i}Z")
           for i, c in enumerate(["B", "A", "A", "none"])]  # x (shown as B), x, y, tie
    two = [("L2", f"t{i}", x, y, x, "A", f"2024-05-01T10:00:0{i}Z") for i in range(4)]  # 4 x
    _write_ratings(tmp_path / "l1.csv", one)
    _write_ratings(tmp_path / "l2.csv", two)
    return [tmp_path / "l1.csv", tmp_path / "l2.csv"]


def test_report_writes_the_page_links_it_and_reads_ratings(study, tmp_path):
    from gradtts.report.cli import ReportConfig, report
    from gradtts.report.listening.report_hook import ListeningOptions
    from gradtts.report.tables import read_csv

    exp, _ = study
    out = tmp_path / "report"
    results_md = tmp_path / "egs" / "RESULTS.md"
    results_md.parent.mkdir()
    results_md.write_text("# Curated\n\nKept.\n", encoding="utf-8")
    res = report(ReportConfig(root=str(exp / "finetune"), out_dir=str(out), results_md=str(results_md),
                              listening=ListeningOptions(exp=str(exp), max_sentences=2),
                              ratings=[str(p) for p in _ratings_pair(tmp_path)]))
    page = out / "listening"
    assert res["listening"].page["clips"] == 4 + 2 + 8 and res["listening"].page["trials"] == 4
    for name, n_audio in (("index.html", 14), ("ab.html", 8)):
        srcs = _srcs(page / name)
        assert len(srcs) == n_audio and all((page / s).is_file() for s in srcs), name
        assert str(tmp_path) not in (page / name).read_text(encoding="utf-8")  # relative paths only

    md = (out / "results.md").read_text(encoding="utf-8")
    mib = res["listening"].page["total_bytes"] / 2 ** 20
    assert "\n## Listening page\n" in md and "[index.html](listening/index.html)" in md
    assert "[ab.html](listening/ab.html): a blind A/B test of 4 trials (each arm against l2 " in md
    assert f"- 14 clips (ogg), {mib:.2f} MiB in all" in md
    # the preference section: the numbers of test_preference_table_counts_ties_duplicates_and_listeners
    assert "\n## Listening test: preferences\n" in md
    assert "| scheduled_huber | l2 | 8 | 2 | 0.75 [0.41, 0.93] (6) | 0.12 [0.02, 0.47] (1) |" in md
    (row,) = read_csv(out / "preferences.csv")
    assert (row["arm_x"], row["arm_y"], row["n"], row["n_listeners"], row["n_x"], row["n_y"], row["n_tie"]) == \
        ("scheduled_huber", "l2", "8", "2", "6", "1", "1")
    assert (float(row["share_x_lo"]), float(row["share_x_hi"])) == pytest.approx(wilson_interval(6, 8))
    # net per listener: L1 (x, x, y, tie) = 1/4, L2 = 1; t(0.975, 1) * (0.75 / sqrt 2) / sqrt 2
    assert float(row["net"]) == pytest.approx(0.625) and float(row["net_ci"]) == pytest.approx(12.7062047 * 0.375)

    # RESULTS.md: the same sections one level deeper, linked from its own folder, preferences.csv beside it
    text = results_md.read_text(encoding="utf-8")
    assert text.startswith("# Curated\n\nKept.\n")
    assert "\n### Listening page\n" in text and "[index.html](../report/listening/index.html)" in text
    assert (results_md.parent / "../report/listening/index.html").resolve().is_file()
    assert "\n### Listening test: preferences\n" in text
    assert (results_md.parent / "results" / "preferences.csv").read_bytes() == (out / "preferences.csv").read_bytes()


def test_report_command_line_takes_listening_options_and_names_bad_inputs(study, tmp_path):
    import subprocess
    import sys

    exp, _ = study
    ratings = _ratings_pair(tmp_path)
    base = [sys.executable, "-m", "gradtts.report.cli", f"root={exp / 'finetune'}", f"out_dir={tmp_path / 'r'}"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(base + list(args), capture_output=True, text=True, timeout=300)

    # typed list options through Hydra: fractions, seeds, ratings, ratings_by
    r = run(f"listening.exp={exp}", "listening.fractions=[0.3]", "listening.seeds=[0]", "listening.refs=1",
            "listening.max_sentences=1", "listening.out_subdir=page", f"ratings=[{ratings[0]},{ratings[1]}]",
            "ratings_by=[p]")
    assert r.returncode == 0, r.stderr[-2000:]
    page = tmp_path / "r" / "page"
    assert len(_srcs(page / "index.html")) == 2 + 1 + 2 and len(_srcs(page / "ab.html")) == 2
    md = (tmp_path / "r" / "results.md").read_text(encoding="utf-8")
    assert "[index.html](page/index.html)" in md and "a blind A/B test of 1 trials" in md
    assert "| arm | vs | p | ratings |" in md and "| scheduled_huber | l2 | 0.3 | 8 | 2 |" in md

    # bad inputs: one line naming the file and what to do, status 2, nothing else on stderr
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfe\x00not a csv")
    for args, message in (
            ([f"listening.exp={tmp_path / 'nope'}"],
             f"listening.exp={tmp_path / 'nope'}: experiment directory not found; give the recipe's --exp folder"),
            ([f"ratings=[{tmp_path / 'missing.csv'}]"],
             f"ratings: {tmp_path / 'missing.csv'}: file not found; give the CSV files downloaded from ab.html"),
            ([f"ratings=[{bad}]"], f"{bad}: unreadable ratings CSV ('utf-8' codec can't decode")):
        r = run(*args)
        errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
        assert r.returncode == 2 and len(errors) == 1, r.stderr
        assert errors[0].startswith(f"gradtts-report: error: {message}"), errors[0]


def test_recipe_stage_8_writes_the_page_unless_turned_off(study, tmp_path):
    import os
    import subprocess
    import sys

    exp, _ = study
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "fewshot.sh"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def stage8(*opts: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(recipe), "--exp", str(exp), "--pairs", f"{TARGET}:{INTRUDER}", "--stage",
                               "8", *opts], capture_output=True, text=True, env=env, timeout=300)

    r = stage8("--listening", "yes")
    assert r.returncode == 1 and "--listening yes: true or false" in r.stderr and not (exp / ".done").exists()
    r = stage8("--listening", "false")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (exp / "report" / "listening").exists()
    assert "Listening page" not in (exp / "report" / "results.md").read_text(encoding="utf-8")
    r = stage8("--force_stage", "8")  # the default: listening=true
    assert r.returncode == 0, r.stderr[-2000:]
    page = exp / "report" / "listening"
    assert len(_srcs(page / "index.html")) == 19 and len(_srcs(page / "ab.html")) == 12
    assert "[index.html](listening/index.html)" in (exp / "report" / "results.md").read_text(encoding="utf-8")


# ---- the committed demo page -----------------------------------------------------------------------------------
DEMO_PAGE = Path(__file__).resolve().parents[1] / "egs" / "synthvox" / "listening"
DEMO_MAX_BYTES = 3 * 2 ** 20


def test_committed_demo_page():
    """egs/synthvox/listening/: both pages, every clip they play inside the folder, nothing else, under 3 MiB,
    and no path of the machine that made it."""
    pages = [DEMO_PAGE / "index.html", DEMO_PAGE / "ab.html"]
    missing = [str(p) for p in pages + [DEMO_PAGE / "README.md"] if not p.is_file()]
    assert not missing, f"{missing}: the committed demo page is part of the repository ({DEMO_PAGE}/README.md)"
    used = set()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        srcs = _srcs(page)
        assert srcs, page
        for s in srcs:
            target = (DEMO_PAGE / s).resolve()
            assert target.is_relative_to(DEMO_PAGE.resolve()) and target.is_file(), (page.name, s)
            used.add(target)
        # every link and source is relative (the favicon is an inline data: URL, not a path)
        for ref in re.findall(r'(?:src|href)="([^"]*)"', text):
            assert ref == "data:," or not (ref.startswith("/") or ":" in ref or ".." in ref), (page.name, ref)
        for absolute in ("/work/", "/home/", "/tmp/", "/root/", "file:", str(DEMO_PAGE.parents[2])):
            assert absolute not in text, (page.name, absolute)
    audio = {p.resolve() for p in (DEMO_PAGE / "audio").iterdir()}
    assert audio == used, f"clips no page plays: {sorted(p.name for p in audio - used)}"
    assert len(_srcs(pages[1])) > 0 and "Blind A/B test" in pages[0].read_text(encoding="utf-8")
    total = sum(p.stat().st_size for p in DEMO_PAGE.rglob("*") if p.is_file())
    assert total <= DEMO_MAX_BYTES, f"{DEMO_PAGE}: {total / 2 ** 20:.2f} MiB, over the 3 MiB for committed pages"
