"""The decisive study's pair-forming rule (egs/synthvox/local/decisive_pairs.py) on hand-made similarity
matrices, and the `decisive` preset of egs/synthvox/run.sh, whose --help lists the pairs of decisive/pairs.tsv."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("decisive_pairs", ROOT / "egs/synthvox/local/decisive_pairs.py")
dp = importlib.util.module_from_spec(_spec)
sys.modules["decisive_pairs"] = dp  # dataclasses look their module up there
_spec.loader.exec_module(dp)


def _sim(n: int, entries: dict[tuple[int, int], float], fill: float = 0.3) -> np.ndarray:
    s = np.full((n, n), fill)
    for (i, j), c in entries.items():
        s[i, j] = s[j, i] = c
    np.fill_diagonal(s, 1.0)
    return s


# Six candidates: position 1 is close to a base voice, 4 a near-duplicate of 2; among the kept 0, 2, 3, 5 the
# cosines are 0.50, 0.60, 0.64, 0.67, 0.70, 0.80, so the 25th-75th percentile band is [0.61, 0.6925].
SIX = _sim(6, {(0, 2): 0.60, (0, 3): 0.70, (0, 5): 0.64, (2, 3): 0.67, (2, 5): 0.80, (3, 5): 0.50, (2, 4): 0.97})
SIX_TO_BASE = np.array([0.5, 0.95, 0.5, 0.5, 0.5, 0.5])


def test_novelty_drops_base_like_voices_and_the_later_of_two_near_duplicates():
    kept, dropped = dp.keep_novel(SIX, SIX_TO_BASE, max_cos=0.92)
    assert kept == [0, 2, 3, 5]
    assert dropped == {1: (0.95, -1), 4: (0.97, 2)}


def test_pairs_are_disjoint_in_band_and_targets_are_the_lower_index():
    rule = dp.form_pairs(SIX, SIX_TO_BASE, max_cos=0.92, band=(25, 75))
    assert rule.lo == pytest.approx(0.61) and rule.hi == pytest.approx(0.6925)
    assert rule.median == pytest.approx(0.655)
    # In band: (0, 5) 0.64 and (2, 3) 0.67; (0, 2) 0.60, (0, 3) 0.70, (2, 5) 0.80 and (3, 5) 0.50 are not.
    assert rule.pairs == [(0, 5, pytest.approx(0.64)), (2, 3, pytest.approx(0.67))]
    voices = [v for a, b, _ in rule.pairs for v in (a, b)]
    assert len(voices) == len(set(voices))
    assert all(a < b and rule.lo <= c <= rule.hi for a, b, c in rule.pairs)
    assert 1 not in voices and 4 not in voices


def test_greedy_takes_the_pair_closest_to_the_median_and_breaks_ties_by_index():
    # 1-2 is nearest the median; 0-2 is in band too but 2 is taken, so 0 pairs with 3 (farther, still in band).
    sim = _sim(4, {(1, 2): 0.52, (0, 2): 0.55, (0, 3): 0.40, (1, 3): 0.20})
    assert dp.match_in_band(sim, [0, 1, 2, 3], lo=0.35, hi=0.6, median=0.5) == [
        (0, 3, pytest.approx(0.40)), (1, 2, pytest.approx(0.52))]
    # Equal distance from the median (exact binary values): the lower target index wins, 1 stays unpaired.
    tie = _sim(3, {(0, 2): 0.75, (1, 2): 0.25, (0, 1): 0.0})
    assert dp.match_in_band(tie, [0, 1, 2], lo=0.25, hi=0.75, median=0.5) == [(0, 2, 0.75)]
    tie2 = _sim(3, {(0, 2): 0.5, (1, 2): 0.5, (0, 1): 0.0})
    assert dp.match_in_band(tie2, [0, 1, 2], lo=0.25, hi=0.75, median=0.5) == [(0, 2, 0.5)]


def test_the_rule_is_deterministic_on_a_random_matrix():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)) + 2.0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    to_base = rng.uniform(0.5, 1.0, 40)
    a, b = dp.form_pairs(sim, to_base, 0.92), dp.form_pairs(sim.copy(), to_base.copy(), 0.92)
    assert a == b and len(a.pairs) >= 5
    voices = [v for p, q, _ in a.pairs for v in (p, q)]
    assert len(voices) == len(set(voices)) and not set(voices) & set(a.dropped)
    assert all(a.lo <= c <= a.hi for _, _, c in a.pairs)
    assert all(to_base[k] <= 0.92 for k in a.kept)


def test_bad_matrices_are_refused():
    with pytest.raises(ValueError, match="square and symmetric"):
        dp.form_pairs(np.array([[1.0, 0.2], [0.3, 1.0]]), np.zeros(2))
    with pytest.raises(ValueError, match="one base cosine per candidate"):
        dp.form_pairs(SIX, np.zeros(5))
    with pytest.raises(ValueError, match="pass the novelty rule"):
        dp.form_pairs(SIX, np.ones(6))


def test_decisive_preset_help_lists_the_pairs_of_pairs_tsv():
    rows = [line.split("\t") for line in (ROOT / "egs/synthvox/decisive/pairs.tsv").read_text().splitlines()[1:]]
    assert len(rows) >= 36
    pairs = " ".join(f"{t}:{c}" for t, c, _ in rows)
    last = max(int(v[2:]) for t, c, _ in rows for v in (t, c))
    h = subprocess.run(["bash", "egs/synthvox/run.sh", "--preset", "decisive", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert h.returncode == 0, h.stderr
    for s in (f"--pairs [{pairs}]", "--seeds [0]", "--fractions [0 0.30]", "--ft_steps [120]",
              "--losses [l2,scheduled_huber,reweighted_l2]", "--exp [exp/synthvox_decisive]",
              f"--study_first_voice 34 --study_voices {last - 33} --study_utts 45",
              "Hydra overrides: data.batch_size=8 data.out_size=128 optim.lr=1e-3 trainer.precision=bf16"):
        assert s in h.stdout, s
