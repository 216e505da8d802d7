"""The report's metric figures: a forest plot for a single checkpoint, lines across several, never empty files."""

import math

import pytest
from matplotlib.image import imread

from gradtts.report.plots import plot_metric


def _rows(steps, arms=("l2", "huber(δ=0.1)", "scheduled_huber(exponential, δ_min=0.1)"), ps=(0.0, 0.3)):
    return [{"arm": a, "p": p, "step": s, "R": -0.01 * (i + 1) * s / 120 if p else 0.0, "R_ci": 0.02 if i else math.nan}
            for i, a in enumerate(arms) for p in ps for s in steps]


def test_single_step_is_a_forest_with_one_row_per_arm_in_table_order(tmp_path):
    out = tmp_path / "R.png"
    drawn = plot_metric(_rows([120]), "R", out, "R")
    assert drawn["layout"] == "forest" and drawn["panels"] == [0.3]
    assert drawn["series"] == sorted(["l2", "huber(δ=0.1)", "scheduled_huber(exponential, δ_min=0.1)"])
    h = imread(out).shape[0]
    # More arms, taller figure: rows keep their spacing instead of crowding.
    many = [f"arm{i:02d}" for i in range(15)]
    drawn15 = plot_metric(_rows([120], arms=many), "R", tmp_path / "R15.png", "R")
    assert drawn15["series"] == many and imread(tmp_path / "R15.png").shape[0] > h + 100


def test_several_steps_draw_lines_with_every_arm_in_the_legend(tmp_path):
    drawn = plot_metric(_rows([60, 120], ps=(0.0, 0.1, 0.3)), "R", tmp_path / "R.png")
    assert drawn["layout"] == "lines" and drawn["panels"] == [0.1, 0.3] and len(drawn["series"]) == 3
    assert imread(tmp_path / "R.png").shape[1] >= 2 * 4.2 * 120 - 1


def test_no_points_still_writes_a_figure_that_says_why(tmp_path):
    rows = [{**r, "R": math.nan} for r in _rows([120])]
    drawn = plot_metric(rows, "R", tmp_path / "R.png", note="no p = 0 runs")
    assert drawn == {"layout": "empty", "series": [], "panels": [0.3]}
    assert imread(tmp_path / "R.png").shape[1] > 0


@pytest.mark.parametrize("steps", [[120], [60, 120]])
def test_single_pair_cells_without_interval_are_drawn(tmp_path, steps):
    # The first arm's R_ci is NaN (one pair): it must still appear, as a bare point.
    drawn = plot_metric(_rows(steps), "R", tmp_path / "R.png")
    assert "huber(δ=0.1)" in drawn["series"]
