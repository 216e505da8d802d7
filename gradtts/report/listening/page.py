"""The two static pages: ``index.html`` (labelled clips and scores) and ``ab.html`` (the blind A/B test).

Both are self-contained (inline style and script, audio by relative path, nothing fetched from a network)
and deterministic: the same study and settings give the same bytes, so a re-run rewrites nothing.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import random
from pathlib import Path

from gradtts.report.listening.clips import AUDIO_DIR, ClipFormat
from gradtts.report.listening.study import Study

#: The columns of a ratings CSV, in order (``ab.html`` writes them, :mod:`.prefs` reads them).
CSV_COLUMNS = ("listener", "page", "trial", "pair", "seed", "step", "p", "utt", "arm_x", "arm_y", "shown_as_A",
               "choice", "preferred", "timestamp")
CHOICES = ("A", "B", "none")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; vertical-align: top; text-align: left; }
th { background: #f4f4f4; font-weight: 600; }
.scores { font-weight: normal; font-size: 0.85em; color: #444; white-space: nowrap; }
.utt { color: #777; font-size: 0.8em; }
audio { width: 16em; height: 2.2em; }
.trial { border: 1px solid #ccc; padding: 0.5em 1em; margin: 0.8em 0; }
.trial.done { border-color: #4a4; }
.side { display: inline-block; margin-right: 2em; }
.note { color: #555; font-size: 0.9em; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(v: float, signed: bool = False) -> str:
    if v is None or math.isnan(v):
        return "–"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def _audio(names: dict[Path, str], src: Path) -> str:
    return f'<audio controls preload="metadata" src="{AUDIO_DIR}/{_e(names[src])}"></audio>'


def _head(title: str) -> list[str]:
    return ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            # No favicon request: a file:// page would log a failed fetch for it.
            '<link rel="icon" href="data:,">', f"<title>{_e(title)}</title>", f"<style>{_STYLE}</style>", "</head>"]


# ---- the blind A/B trials ------------------------------------------------------------------------------------
def ab_trials(study: Study, seed: int = 0, max_trials: int | None = None) -> list[dict]:
    """Every A/B trial: each arm against the reference arm on the same sentence, pair, seed, p and step.

    Which side plays as A, the order, and (with ``max_trials``) the sample of trials come from
    ``random.Random(seed)``, so the same study and seed give the same page. A trial's id is a digest of
    what it compares, so ids stay put when the study grows.
    """
    if study.reference is None:
        return []
    trials = []
    for m in study.pairs:
        ref = {(c.seed, c.step, round(c.p, 6)): c for c in m.columns if c.arm == study.reference}
        for c in m.columns:
            partner = ref.get((c.seed, c.step, round(c.p, 6)))
            if c.arm == study.reference or partner is None:
                continue
            for utt, text in m.sentences:
                ident = [m.pair, c.seed, c.step, round(c.p, 6), utt, c.arm_id, partner.arm_id]
                tid = "t" + hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:10]
                trials.append({"id": tid, "pair": m.pair, "seed": c.seed, "step": c.step, "p": round(c.p, 6),
                               "utt": utt, "text": text, "arm_x": c.arm, "arm_y": partner.arm,
                               "src_x": c.clips[utt], "src_y": partner.clips[utt]})
    rng = random.Random(f"gradtts-listening-{seed}")
    trials.sort(key=lambda t: t["id"])
    if max_trials is not None and len(trials) > max_trials:
        trials = sorted(rng.sample(trials, max_trials), key=lambda t: t["id"])
    for t in trials:
        t["shown_as_A"] = t["arm_x"] if rng.random() < 0.5 else t["arm_y"]
    rng.shuffle(trials)
    return trials


def page_id(trials: list[dict], names: dict[Path, str]) -> str:
    """12 hex digits naming this trial list (its ids, sides and clips): ratings of two page versions never mix."""
    ident = [[t["id"], t["shown_as_A"], names[t["src_x"]], names[t["src_y"]]] for t in trials]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:12]


def _trial_json(trials: list[dict], names: dict[Path, str], pid: str) -> str:
    out = []
    for t in trials:
        a, b = (t["src_x"], t["src_y"]) if t["shown_as_A"] == t["arm_x"] else (t["src_y"], t["src_x"])
        out.append({k: t[k] for k in ("id", "pair", "seed", "step", "p", "utt", "text", "arm_x", "arm_y",
                                      "shown_as_A")} | {"a": f"{AUDIO_DIR}/{names[a]}", "b": f"{AUDIO_DIR}/{names[b]}"})
    # No "<" at all inside the script element ("</script>" or "<!--" in a sentence would break it): JSON's escape.
    return json.dumps({"page": pid, "columns": list(CSV_COLUMNS), "trials": out}, indent=1).replace("<", "\\u003c")


# The page's script: listener id -> trials in a per-listener order -> choices -> CSV download.
_AB_SCRIPT = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("trial-data").textContent);
  const ratings = {};
  let listener = "";

  // FNV-1a of the listener id seeds a small PRNG (mulberry32): each listener hears the trials in their own
  // order, the same order every time they come back.
  function hash(text) {
    let h = 2166136261 >>> 0;
    for (const ch of text) { h ^= ch.codePointAt(0); h = Math.imul(h, 16777619) >>> 0; }
    return h;
  }
  function prng(seed) {
    let a = seed >>> 0;
    return function () {
      a = (a + 0x6D2B79F5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), a | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function shuffled(list, seed) {
    const out = list.slice();
    const r = prng(seed);
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
  function storageKey() { return "gradtts-ab-" + data.page + "-" + listener; }
  function save() {
    try { window.localStorage.setItem(storageKey(), JSON.stringify(ratings)); } catch (e) { /* storage off */ }
  }
  function restore() {
    try {
      const old = JSON.parse(window.localStorage.getItem(storageKey()) || "{}");
      for (const t of data.trials) { if (old[t.id]) { ratings[t.id] = old[t.id]; } }
    } catch (e) { /* storage off or unreadable: start afresh */ }
  }
  function field(v) {
    const s = String(v);
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function ratingsCsv() {
    const lines = [data.columns.join(",")];
    for (const t of data.trials) {
      const r = ratings[t.id];
      if (!r) { continue; }
      const shownB = t.shown_as_A === t.arm_x ? t.arm_y : t.arm_x;
      const preferred = r.choice === "A" ? t.shown_as_A : (r.choice === "B" ? shownB : "");
      const row = [listener, data.page, t.id, t.pair, t.seed, t.step, t.p, t.utt, t.arm_x, t.arm_y, t.shown_as_A,
                   r.choice, preferred, r.timestamp];
      lines.push(row.map(field).join(","));
    }
    return lines.join("\n") + "\n";
  }
  function progress() {
    const n = Object.keys(ratings).length;
    document.getElementById("progress").textContent = n + " of " + data.trials.length + " trials rated";
    document.getElementById("download").disabled = n === 0;
  }
  function choose(t, box, choice) {
    ratings[t.id] = {choice: choice, timestamp: new Date().toISOString()};
    box.classList.add("done");
    save();
    progress();
  }
  function side(label, src) {
    const span = document.createElement("span");
    span.className = "side";
    const b = document.createElement("b");
    b.textContent = label + " ";
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "metadata";
    audio.src = src;
    span.append(b, audio);
    return span;
  }
  function render() {
    const root = document.getElementById("trials");
    root.textContent = "";
    const order = shuffled(data.trials, hash(listener));
    order.forEach(function (t, k) {
      const box = document.createElement("div");
      box.className = "trial";
      box.id = "trial-" + t.id;
      const h = document.createElement("h3");
      h.textContent = "Trial " + (k + 1) + " of " + order.length;
      const text = document.createElement("p");
      text.textContent = "\u201c" + t.text + "\u201d";
      const choices = document.createElement("p");
      for (const [value, label] of [["A", "A is better"], ["B", "B is better"], ["none", "no preference"]]) {
        const l = document.createElement("label");
        const input = document.createElement("input");
        input.type = "radio";
        input.name = "choice-" + t.id;
        input.value = value;
        input.id = t.id + "-" + value;
        input.checked = ratings[t.id] !== undefined && ratings[t.id].choice === value;
        input.addEventListener("change", function () { choose(t, box, value); });
        l.append(input, " " + label + "  ");
        choices.append(l);
      }
      if (ratings[t.id]) { box.classList.add("done"); }
      box.append(h, text, side("A", t.a), side("B", t.b), choices);
      root.append(box);
    });
    progress();
  }
  function start() {
    const id = document.getElementById("listener").value.trim();
    if (!id) {
      document.getElementById("message").textContent = "Enter a listener id first.";
      return;
    }
    listener = id;
    document.getElementById("message").textContent = "";
    document.getElementById("listener").disabled = true;
    document.getElementById("start").disabled = true;
    restore();
    render();
  }
  function download() {
    const blob = new Blob([ratingsCsv()], {type: "text/csv"});
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = "ratings_" + listener.replace(/[^A-Za-z0-9_.-]/g, "_") + "_" + data.page + ".csv";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }
  document.getElementById("start").addEventListener("click", start);
  document.getElementById("download").addEventListener("click", download);
  window.gradttsRatingsCsv = ratingsCsv;  // the same text as the download, for scripted checks
})();
"""


def render_ab(trials: list[dict], names: dict[Path, str], pid: str, title: str, reference: str | None) -> str:
    """``ab.html``: the blind test (hidden labels, per-listener order), ratings downloadable as CSV."""
    lines = _head(f"{title}: blind A/B test") + ["<body>", f"<h1>{_e(title)}: blind A/B test</h1>"]
    if not trials:
        lines += ["<p>No A/B trials: the page shows a single arm, or no arm has a partner run of the reference "
                  f"arm ({_e(reference or 'none')}) at the same pair, seed, p and step.</p>",
                  '<p><a href="index.html">Back to the clips</a></p>', "</body>", "</html>", ""]
        return "\n".join(lines)
    lines += [
        "<p>Each trial plays one sentence synthesised by two systems, in random order as A and B. Listen to "
        "both and choose the one that sounds better (more natural and closer to the target speaker), or "
        "<i>no preference</i>. Take the test before opening the labelled clips of "
        '<a href="index.html">the study page</a>.</p>',
        f'<p class="note">{len(trials)} trials; page id <code>{pid}</code>. Your choices stay in this browser '
        "until you download them; send the downloaded CSV to the experimenter.</p>",
        '<p><label>Listener id <input id="listener" autocomplete="off"></label> '
        '<button id="start">Start</button> <span id="message"></span></p>',
        '<div id="trials"></div>',
        '<p><span id="progress"></span> <button id="download" disabled>Download ratings (CSV)</button></p>',
        f'<script type="application/json" id="trial-data">{_trial_json(trials, names, pid)}</script>',
        f"<script>{_AB_SCRIPT}</script>", "</body>", "</html>", ""]
    return "\n".join(lines)


# ---- the labelled page ---------------------------------------------------------------------------------------
def _scores(c) -> str:
    s = c.scores
    return (f'<div class="scores">S<sub>T</sub> {_num(s["S_T"])} · S<sub>C</sub> {_num(s["S_C"])}<br>'
            f'R {_num(s["R"], True)} · L {_num(s["L"], True)}</div>')


def _clip_scores(scores: dict[str, float] | None) -> str:
    """A line under a clip with its DNSMOS OVRL and ASR WER, when stage 7 measured them ("" otherwise)."""
    if not scores:
        return ""
    parts = ([f"OVRL {scores['OVRL']:.2f}"] if "OVRL" in scores else []) + \
        ([f"WER {100 * scores['WER']:.0f} %"] if "WER" in scores else [])
    return f'<div class="scores">{" · ".join(parts)}</div>'


def render_index(study: Study, names: dict[Path, str], fmt: ClipFormat, title: str, n_trials: int) -> str:
    """``index.html``: per pair the reference clips, then per pair × seed × step a table of the sentences
    (rows) by arm × p (columns), with each run's scores."""
    n_clips = len(set(names.values()))
    lines = _head(title) + ["<body>", f"<h1>{_e(title)}</h1>",
                            f'<p class="note">Study <code>{_e(study.exp.name)}</code>: {len(study.pairs)} pair(s), '
                            f"arms {_e(', '.join(study.arms))}. {n_clips} clips, {_e(fmt.name)} at "
                            f"{fmt.sample_rate} Hz mono.</p>"]
    if n_trials:
        lines.append(f'<p><a href="ab.html">Blind A/B test</a> ({n_trials} trials, each arm against '
                     f"{_e(study.reference)}): take it before listening to the labelled clips below.</p>")
    lines.append("<h2>1. Reference speakers</h2>")
    for m in study.pairs:
        lines += [f"<h3>Pair {_e(m.pair)}</h3>", "<table>",
                  "<tr><th>speaker</th><th>utterance</th><th>sentence</th><th>clip</th></tr>"]
        for role, who, clips in (("target", m.target, m.refs_target), ("intruder", m.intruder, m.refs_intruder)):
            for c in clips:
                lines.append(f"<tr><td>{role}: {_e(who)}</td><td class=\"utt\">{_e(c.utt)}</td><td>{_e(c.text)}</td>"
                             f"<td>{_audio(names, c.src)}</td></tr>")
        if m.step0:
            for utt, text in m.sentences:
                lines.append(f"<tr><td>base model, step 0</td><td class=\"utt\">{_e(utt)}</td><td>{_e(text)}</td>"
                             f"<td>{_audio(names, m.step0[utt])}{_clip_scores(m.step0_scores.get(utt))}</td></tr>")
        lines.append("</table>")
    lines += ["<h2>2. Generated clips</h2>",
              '<p class="note">S<sub>T</sub>, S<sub>C</sub>: speaker similarity of the run\'s test sentences to the '
              "target and to the intruder; R = S<sub>T</sub>(p) − S<sub>T</sub>(0) and L = S<sub>C</sub>(p) − "
              "S<sub>C</sub>(0) against the same arm's clean run (– where it has none). Under a clip, where stage 7 "
              "measured them: its DNSMOS OVRL (1–5) and the ASR's word error rate on it.</p>"]
    for m in study.pairs:
        groups: dict[tuple[int, int], list] = {}
        for c in m.columns:
            groups.setdefault((c.seed, c.step), []).append(c)
        for (seed, step), cols in groups.items():
            lines += [f"<h3>Pair {_e(m.pair)} · seed {seed} · step {step}</h3>", "<table>",
                      "<tr><th>sentence</th>" + "".join(f"<th>{_e(c.arm)}<br>p = {c.p:.2f}{_scores(c)}</th>"
                                                       for c in cols) + "</tr>"]
            for utt, text in m.sentences:
                lines.append(f'<tr><td>{_e(text)}<br><span class="utt">{_e(utt)}</span></td>'
                             + "".join(f"<td>{_audio(names, c.clips[utt])}{_clip_scores(c.clip_scores.get(utt))}</td>"
                                       for c in cols) + "</tr>")
            lines.append("</table>")
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)
