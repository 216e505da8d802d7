"""The 2-D diffusion toy (gradtts.toy): data, forward process, metrics, loss settings, outputs and CLI."""

from __future__ import annotations

import csv
import math
import subprocess
import sys

import pytest
import torch

from gradtts import toy
from gradtts.losses import PseudoHuberLoss, ScheduledPseudoHuberLoss, pseudo_huber
from gradtts.model.diffusion import Diffusion


@pytest.mark.parametrize("n, p, expected", [(1000, 0.3, 300), (10, 0.25, 2), (7, 0.5, 4), (50, 0.0, 0)])
def test_the_data_hold_exactly_round_p_n_outliers_in_their_own_mode(n, p, expected):
    x, is_out = toy.make_data(n, p, torch.Generator().manual_seed(0))
    assert x.shape == (n, 2) and int(is_out.sum()) == expected == toy.n_outliers(n, p)
    # the modes are 16 std apart: every outlier lies right of the origin, every clean point left of it
    assert bool((x[is_out, 0] > 0).all()) and bool((x[~is_out, 0] < 0).all())
    x2, is_out2 = toy.make_data(n, p, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2) and torch.equal(is_out, is_out2)


def test_the_data_blobs_have_the_stated_centres_and_std():
    x, is_out = toy.make_data(20000, 0.5, torch.Generator().manual_seed(1))
    for mask, centre in ((~is_out, toy.CLEAN_MEAN), (is_out, toy.OUTLIER_MEAN)):
        pts = x[mask]
        assert torch.allclose(pts.mean(0), torch.tensor(centre), atol=0.01)
        assert torch.allclose(pts.std(0), torch.full((2,), toy.MODE_STD), rtol=0.03)


def test_the_forward_process_is_grad_tts_linear_beta_vp_sde():
    # sigma_t^2 = 1 - exp(-(0.05 t + 9.975 t^2)), the closed form of Diffusion.noise_std
    t = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    expected = [math.sqrt(1 - math.exp(-(0.05 * v + 9.975 * v * v))) for v in (0.1, 0.5, 1.0)]
    assert toy.noise_std(t).tolist() == pytest.approx(expected, rel=1e-12)
    assert expected[0] == pytest.approx(0.315358, abs=1e-6) and expected[2] == pytest.approx(0.999978, abs=1e-6)
    model_sigma = Diffusion(n_feats=80, dim=8).noise_std(t.float())  # the Grad-TTS model's own, same betas
    assert toy.noise_std(t.float()).tolist() == pytest.approx(model_sigma.tolist(), rel=1e-6)
    # the empirical per-axis std of x_t over the clean blob matches the closed-form marginal
    g = torch.Generator().manual_seed(2)
    x0, _ = toy.make_data(100000, 0.0, g)
    for v in (0.02, 0.1, 0.3, 1.0):
        tt = torch.full((len(x0),), v)
        xt = toy.diffuse(x0, tt, torch.randn(x0.shape, generator=g))
        closed = toy.marginal_std(v)
        assert xt.std(0).tolist() == pytest.approx([closed, closed], rel=0.01), v
        decay = math.exp(-0.5 * (0.05 * v + 9.975 * v * v))
        assert xt.mean(0).tolist() == pytest.approx([-2.0 * decay, 0.0], abs=0.01), v
    assert toy.marginal_std(0.0) == pytest.approx(toy.MODE_STD) and toy.marginal_std(1.0) == pytest.approx(1.0, 1e-4)


def test_leakage_and_clean_spread_of_a_hand_made_sample_set():
    pts = torch.tensor([[-2.0, -1.0], [-2.0, 1.0], [-3.0, 0.0], [-1.0, 0.0],  # clean: per-axis var 2/3, mean (-2, 0)
                        [2.0, 0.0], [0.5, 0.0], [1.0, 5.0]])                   # nearer (+2, 0)
    m = toy.mode_metrics(pts)
    assert m["leakage"] == pytest.approx(3 / 7, abs=1e-12)
    assert m["clean_std"] == pytest.approx(math.sqrt(2 / 3), abs=1e-12)
    assert m["clean_std_err"] == pytest.approx(math.sqrt(2 / 3) - toy.MODE_STD, abs=1e-12)
    assert m["clean_shift"] == pytest.approx(0.0, abs=1e-12)
    # a point on the bisector counts as clean; one clean point has no spread
    assert toy.assign_outlier(torch.tensor([[0.0, 7.0], [1e-6, 0.0]])).tolist() == [False, True]
    lone = toy.mode_metrics(torch.tensor([[-2.5, 0.0], [2.0, 0.0], [3.0, 0.0]]))
    assert lone["leakage"] == pytest.approx(2 / 3) and math.isnan(lone["clean_std"])
    assert lone["clean_shift"] == pytest.approx(0.5)


def test_aggregate_takes_a_95_percent_t_interval_over_seeds():
    rows = [{"p": 0.3, "loss": "l2", "seed": s, "clean_std_true": 0.25, "leakage": v, "clean_std": 0.25,
             "clean_std_err": 0.0, "clean_shift": 0.1} for s, v in enumerate((0.1, 0.2, 0.3))]
    (agg,) = toy.aggregate(rows)
    assert agg["leakage"] == pytest.approx(0.2) and agg["n_seeds"] == 3 and agg["leakage_ref"] == 0.3
    # t(0.975, df 2) = 4.302653, s = 0.1
    assert agg["leakage_ci"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6)
    assert agg["clean_std_ci"] == pytest.approx(0.0, abs=1e-12)


def test_loss_settings_build_the_losses_of_gradtts_losses():
    a = torch.linspace(-3, 3, 13)
    t = torch.full((13,), 0.5)
    huber = toy.parse_loss_spec("huber:0.1").build()
    assert isinstance(huber, PseudoHuberLoss) and torch.equal(huber(a, t), pseudo_huber(a, 0.1))
    sched = toy.parse_loss_spec("scheduled_huber:0.01").build()
    assert isinstance(sched, ScheduledPseudoHuberLoss) and sched.schedule.name == "exponential"
    assert sched.delta(torch.tensor([0.0, 0.5, 1.0])).tolist() == pytest.approx([1.0, 0.1, 0.01], rel=1e-6)
    assert toy.parse_loss_spec("scheduled_huber:0.1:snr").label == "scheduled_huber:0.1:snr"
    assert [toy.parse_loss_spec(s).label for s in toy.DEFAULT_LOSSES] == list(toy.DEFAULT_LOSSES)
    assert torch.equal(toy.parse_loss_spec("l2").build()(a, t), a * a)


def test_each_member_trains_as_if_alone():
    def train(specs):
        g = torch.Generator().manual_seed(3)
        x, _ = toy.make_data(200, 0.3, g)
        return toy.train_scores(x, [toy.parse_loss_spec(s).build() for s in specs], 15, g, batch=64)

    (both, f_both), (alone, f_alone) = train(["huber:0.1", "l2"]), train(["l2"])
    for w_both, w_alone in zip(both.weights, alone.weights):
        torch.testing.assert_close(w_both[1], w_alone[0], rtol=0, atol=1e-6)
    assert f_both[1] == pytest.approx(f_alone[0], abs=1e-6)
    assert not torch.allclose(both.weights[0][0], both.weights[0][1])  # the losses did pull apart


QUICK = ["--quick", "--p", "0", "0.3", "--seeds", "0", "1", "--losses", "l2", "scheduled_huber:0.01",
         "--steps", "20", "--n", "120", "--samples", "150", "--sample-steps", "5", "--no-progress"]
FILES = ("toy_runs.csv", "toy_aggregate.csv", "toy_table.md", "toy.png")


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # a quick run in process and again in a subprocess: 12 CPU-s in a loaded CI run
def test_a_quick_run_writes_its_tables_and_figure_and_is_bit_reproducible(tmp_path, capsys):
    assert toy.main(QUICK + ["--out", str(tmp_path / "a")]) == 0
    summary = capsys.readouterr().out
    assert "scheduled_huber:0.01" in summary and "wall time" in summary
    # the same run in a fresh process, with this process's thread count, gives the same bytes
    subprocess.run([sys.executable, "-m", "gradtts.toy", *QUICK, "--out", str(tmp_path / "b"),
                    "--threads", str(torch.get_num_threads())], check=True, capture_output=True)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    runs = _read(tmp_path / "a" / "toy_runs.csv")
    assert list(runs[0]) == list(toy.RUN_FIELDS)
    assert [(r["p"], r["seed"], r["loss"]) for r in runs] == [
        (p, s, loss) for p in ("0", "0.3") for s in ("0", "1") for loss in ("l2", "scheduled_huber:0.01")]
    assert {r["n_outliers"] for r in runs if r["p"] == "0.3"} == {"36"}  # round(0.3 * 120)
    assert all(0.0 <= float(r["leakage"]) <= 1.0 and r["n_samples"] == "150" for r in runs)
    agg = _read(tmp_path / "a" / "toy_aggregate.csv")
    assert [(r["p"], r["loss"], r["n_seeds"]) for r in agg] == [
        (p, loss, "2") for p in ("0", "0.3") for loss in ("l2", "scheduled_huber:0.01")]
    assert {"leakage_ci", "clean_std_ci", "clean_std_err_ci", "clean_shift_ci"} <= set(agg[0])
    leak = [float(r["leakage"]) for r in runs if r["p"] == "0.3" and r["loss"] == "l2"]
    assert float(agg[2]["leakage"]) == pytest.approx(sum(leak) / 2, abs=2e-6)
    table = (tmp_path / "a" / "toy_table.md").read_text(encoding="utf-8").splitlines()
    assert table[0].startswith("| p | loss | seeds | leakage") and len([ln for ln in table if ln.startswith("| ")]) == 5
    png = (tmp_path / "a" / "toy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 300_000


@pytest.mark.parametrize("args, message", [
    (["--p", "1.0"], "argument --p: 1.0 is outside [0, 1)"),
    (["--p", "-0.1"], "argument --p: -0.1 is outside [0, 1)"),
    (["--p", "x"], "argument --p: 'x' is not a number"),
    (["--losses", "l1"], "argument --losses: unknown loss 'l1'; choose one of l2, huber, scheduled_huber"),
    (["--losses", "huber"], "argument --losses: loss 'huber': write l2, huber:DELTA"),
    (["--losses", "huber:-1"], "the delta must be a positive number"),
    (["--losses", "scheduled_huber:0.1:cosine"], "unknown schedule 'cosine'"),
    (["--steps", "0"], "argument --steps: 0 must be at least 1"),
    (["--p", "0.99", "--n", "10"], "--p 0.99 with --n 10 leaves no clean training point"),
    (["--seeds", "0", "0"], "--p and --seeds must not repeat a value"),
])
def test_the_cli_rejects_bad_arguments_with_a_clear_message(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        toy.main(args + ["--out", str(tmp_path), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"{toy.PROG}: error:" in err and message in err
    assert not list(tmp_path.iterdir())  # nothing was written
