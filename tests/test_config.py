"""One source of configuration: dataclass defaults registered in Hydra's ConfigStore, YAML presets in conf/.

A preset or group option placed in a config directory must reach the code that uses it (synthesis, the
trainer's loss, the speaker encoder of scoring); every registered group option must be its dataclass's
defaults except the fields it names; and the presets must ship in the wheel.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from gradtts.conf_store import REGISTER, load_stage_config, register_all
from gradtts.config import DEVICES, PACKAGE_CONF_DIR, check_command_line, composing_presets, conf_dir
from gradtts.losses import LOSSES, SCHEDULES
from gradtts.model import OFFICIAL_CONFIG
from gradtts.model.checkpoint import save_checkpoint
from gradtts.model.config import ModelConfig, build_model, model_preset
from gradtts.synth import SynthConfig, run_synthesis
from gradtts.train.cli import compose
from gradtts.train.config import (TRAIN_GROUP_DEFAULTS, TRAINABLE_PARTS, TrainConfig, option_config,
                                  train_group_options)
from gradtts.train import ddp
from gradtts.train.loop import Trainer
from train_fixtures import make_feats, smoke_overrides

REPO = Path(__file__).resolve().parents[1]
PRESETS = ("base.yaml", "base_cpu.yaml", "base_small.yaml", "finetune.yaml", "smoke.yaml")


@pytest.fixture
def site_conf(tmp_path, monkeypatch):
    """A copy of the shipped config tree, made the active one through GRADTTS_CONF_DIR."""
    root = tmp_path / "site_conf"
    shutil.copytree(conf_dir(), root)
    monkeypatch.setenv("GRADTTS_CONF_DIR", str(root))
    return root


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# ---- an override in conf/ reaches the code that uses it ---------------------------------------------------


def test_synth_preset_in_conf_dir_reaches_the_synthesis(site_conf, tmp_path):
    _write(site_conf / "experiment" / "quick_synth.yaml", """
        # @package _global_
        synth:
          n_timesteps: 2
          temperature: 3.0
    """)
    torch.manual_seed(0)
    model = build_model(model_preset("tiny"), n_spks=3).eval()
    ckpt = tmp_path / "ckpt" / "step_0000010.pt"
    ckpt.parent.mkdir()
    save_checkpoint(ckpt, model, dictionary=None, spk2id={"a": 0, "b": 1, "T": 2}, step=10, new_speakers=["T"])
    texts = tmp_path / "texts.txt"
    texts.write_text("s1 The cat sat.\n")

    def paths(out: str) -> list[str]:
        return [f"synth.texts={texts}", "synth.text_format=kaldi", f"synth.checkpoints=[{ckpt}]",
                f"synth.out_dir={tmp_path / out}", "synth.vocoder=griffinlim", "synth.device=cpu",
                "synth.save_mels=true"]

    cfg = load_stage_config("synth", ["experiment=quick_synth", *paths("preset")])
    assert isinstance(cfg, SynthConfig) and (cfg.n_timesteps, cfg.temperature) == (2, 3.0)
    run_synthesis(cfg)
    settings = json.loads((tmp_path / "preset/step_0000010/synth.json").read_text())["settings"]
    assert (settings["n_timesteps"], settings["temperature"]) == (2, 3.0)
    # The same numbers as the explicit settings, and not those of the defaults (10 steps, temperature 1.5).
    run_synthesis(dataclasses.replace(load_stage_config("synth", paths("explicit")), n_timesteps=2, temperature=3.0))
    run_synthesis(load_stage_config("synth", paths("default")))
    mel = {k: np.load(tmp_path / k / "step_0000010/s1.npy") for k in ("preset", "explicit", "default")}
    np.testing.assert_array_equal(mel["preset"], mel["explicit"])
    assert mel["preset"].shape == mel["default"].shape and np.abs(mel["preset"] - mel["default"]).max() > 1e-3


def test_loss_option_in_conf_dir_reaches_the_trainer(site_conf, tmp_path):
    _write(site_conf / "loss" / "wide_huber.yaml", """
        # A site's own loss option: only the fields it changes.
        name: huber
        delta: 0.5
    """)
    feats = make_feats(tmp_path / "feats", {"a": 3, "b": 3})
    cfg = compose(smoke_overrides(feats, tmp_path / "run", "loss=wide_huber"))
    assert OmegaConf.to_object(cfg.loss) == dataclasses.replace(option_config("loss", "huber"), delta=0.5)
    loss = Trainer(cfg, ddp.setup("cpu")).loss.loss  # the score loss the trainer builds and trains with
    assert repr(loss) == "PseudoHuberLoss(delta=0.5)"
    # rho(a) = 2 delta (sqrt(a^2 + delta^2) - delta) with delta 0.5 (the default 0.1 gives 0, 0.0820, 0.5803).
    torch.testing.assert_close(loss(torch.tensor([0.0, 0.5, 3.0]), torch.zeros(3)),
                               torch.tensor([0.0, 0.2071068, 2.5413813]))


def _audio(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        sf.write(folder / f"u{i}.wav", 0.1 * rng.standard_normal(8000).astype(np.float32), 16000)
    return folder


def test_score_preset_in_conf_dir_reaches_the_scoring_command(site_conf, tmp_path):
    missing = tmp_path / "no_ecapa_here"
    _write(site_conf / "experiment" / "ecapa_scoring.yaml", f"""
        # @package _global_
        encoder: ecapa
        encoder_source: {missing}
    """)
    args = [f"gen_dir={_audio(tmp_path / 'gen', 2)}", f"ref_target={_audio(tmp_path / 'ref', 2)}",
            f"out_dir={tmp_path / 'score'}"]
    cfg = load_stage_config("score", ["experiment=ecapa_scoring", *args])
    assert (cfg.encoder, cfg.encoder_source) == ("ecapa", str(missing))
    # The command itself (another process, same GRADTTS_CONF_DIR) hands the preset to the ECAPA loader.
    res = subprocess.run([sys.executable, "-m", "gradtts.scoring.cli", "experiment=ecapa_scoring", *args],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert res.returncode == 2, res.stderr
    assert f"{missing}: incomplete ECAPA model directory" in res.stderr


def test_a_conf_dir_with_a_whole_command_config_is_refused(site_conf):
    _write(site_conf / "synth.yaml", "synth:\n  n_timesteps: 4\n")
    with pytest.raises(ValueError, match=r"synth\.yaml would replace the built-in config"):
        load_stage_config("synth", allow_missing=True)


# ---- the registered options are the dataclasses' defaults ------------------------------------------------


def test_group_options_are_their_dataclass_defaults_except_the_fields_they_set():
    register_all()
    repo = ConfigStore.instance().repo
    options = train_group_options()
    assert {g: sorted(o) for g, (_, o) in options.items()} == {
        "model": ["gradtts", "small", "tiny"], "data": ["manifest"],
        "loss": sorted(LOSSES),  # one option per registered loss
        "optim": ["adam"], "trainer": ["default"], "filter": ["embedding", "none", "residual"]}
    for group, (cls, opts) in options.items():
        assert sorted(repo[group]) == sorted(f"{o}.yaml" for o in opts), group
        for option, fields in opts.items():
            expected = dataclasses.replace(cls(), **fields)
            assert repo[group][f"{option}.yaml"].node == OmegaConf.structured(expected), (group, option)
            # Composed as the trainer sees it: every other group at its default.
            composed = load_stage_config("train", ["data.feats_dir=x", f"{group}={option}"])
            groups = {g: option_config(g, o) for g, o in (TRAIN_GROUP_DEFAULTS | {group: option}).items()}
            groups["data"] = dataclasses.replace(groups["data"], feats_dir="x")
            assert composed == TrainConfig(**groups), (group, option)
            assert getattr(composed, group) == (groups["data"] if group == "data" else expected)


def test_model_sizes_are_defined_once():
    # The official params.py of Grad-TTS; the presets change only widths and depths.
    assert OFFICIAL_CONFIG == dict(n_vocab=149, n_spks=1, spk_emb_dim=64, n_enc_channels=192, filter_channels=768,
                                   filter_channels_dp=256, n_heads=2, n_enc_layers=6, enc_kernel=3, enc_dropout=0.1,
                                   window_size=4, n_feats=80, dec_dim=64, beta_min=0.05, beta_max=20.0,
                                   pe_scale=1000)
    assert OFFICIAL_CONFIG == dataclasses.asdict(ModelConfig()) == dataclasses.asdict(option_config("model", "gradtts"))

    def n_params(name: str, n_spks: int) -> int:
        return sum(p.numel() for p in build_model(model_preset(name), n_spks=n_spks).parameters())

    assert round(n_params("gradtts", 1) / 1e6, 1) == 14.8   # the official model
    assert round(n_params("small", 30) / 1e6, 1) == 3.9      # as model/small is documented


def test_stage_configs_are_the_commands_schemas():
    assert load_stage_config("report", ["root=r", "out_dir=o"]).level == 0.95
    score = load_stage_config("score", allow_missing=True)
    assert (score.encoder, score.gen_dir, score.meta) == ("ge2e", "???", {})
    synth = load_stage_config("synth", allow_missing=True)
    assert synth == SynthConfig()  # the mandatory texts and checkpoints left at ???
    with pytest.raises(MissingMandatoryValue, match="texts"):
        load_stage_config("synth")
    trained = load_stage_config("train", ["experiment=finetune"], allow_missing=True)
    assert (trained.data.feats_dir, trained.trainer.save_steps, trained.model.dec_dim) == (
        "???", [250, 500, 1000, 2000], 32)


def test_load_stage_config_inside_a_running_multirun(tmp_path):
    # Two jobs of one Hydra multirun each compose another stage's config; Hydra's global state (the job
    # name the second job reads) must come back intact.
    app = _write(tmp_path / "probe_app.py", """
        from hydra.core.hydra_config import HydraConfig

        from gradtts.conf_store import load_stage_config
        from gradtts.config import hydra_entry
        from gradtts.report.cli import register_config


        @hydra_entry("report", register_config)
        def run(cfg):
            score = load_stage_config("score", ["gen_dir=g", "ref_target=r", f"out_dir={cfg.root}"])
            print("JOB", HydraConfig.get().job.name, cfg.root, score.out_dir, flush=True)


        run()
    """)
    res = subprocess.run([sys.executable, str(app), "-m", "root=a,b", f"out_dir={tmp_path}",
                          f"hydra.sweep.dir={tmp_path / 'sweep'}"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr
    jobs = [line.split()[1:] for line in res.stdout.splitlines() if line.startswith("JOB")]
    assert jobs == [["probe_app", "a", "a"], ["probe_app", "b", "b"]]


# ---- enumerated fields and each command's help ------------------------------------------------------------

# Runs console entry points in one process (one torch import): argv lists in, exit status and output out.
_DRIVER = """
import contextlib, io, json, sys

from hydra.core.global_hydra import GlobalHydra

import gradtts.report.cli, gradtts.scoring.cli, gradtts.synth, gradtts.train.cli

MAINS = {"train": gradtts.train.cli.main, "synth": gradtts.synth.main, "score": gradtts.scoring.cli.main,
         "report": gradtts.report.cli.main}
results = []
for name, *args in json.loads(sys.argv[1]):
    out, err, rc = io.StringIO(), io.StringIO(), 0
    sys.argv = [f"gradtts-{name}", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            MAINS[name]()
        except SystemExit as exc:
            rc = exc.code or 0
    GlobalHydra.instance().clear()
    results.append({"rc": rc, "out": out.getvalue(), "err": err.getvalue()})
sys.stdout.write(json.dumps(results))
"""


def _commands(tmp_path: Path, calls: list[list[str]]) -> list[dict]:
    driver = _write(tmp_path / "driver.py", _DRIVER)
    res = subprocess.run([sys.executable, str(driver), json.dumps(calls)], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_a_bad_enumerated_value_stops_each_command_at_composition(tmp_path):
    run_dir = tmp_path / "run"
    calls = [["train", "loss.schedule=cosine", "--cfg", "job"],
             ["train", "loss.schedule=cosine", "data.feats_dir=x", f"trainer.out_dir={run_dir}"],
             ["synth", "synth.vocoder=wavenet", "--cfg", "job"],
             ["score", "encoder=xvector", "--cfg", "job"],
             ["report", "listening.format=aac", "--cfg", "job"],
             ["train", "trainer.device=cuda:1", "trainer.vocoder=null", "--cfg", "job"]]
    *bad, good = _commands(tmp_path, calls)
    expected = [f"gradtts-train: error: loss.schedule='cosine': expected one of {', '.join(SCHEDULES)}"] * 2 + [
        "gradtts-synth: error: synth.vocoder='wavenet': expected one of auto, hifigan, griffinlim",
        "gradtts-score: error: encoder='xvector': expected one of ge2e, ecapa",
        "gradtts-report: error: listening.format='aac': expected one of ogg, mp3, flac, wav"]
    assert [(r["rc"], r["out"], r["err"].strip()) for r in bad] == [(2, "", e) for e in expected]
    assert not run_dir.exists()  # stopped before Hydra made the run directory
    # An indexed device and a null vocoder are within the choices.
    assert good["rc"] == 0 and "device: cuda:1\n" in good["out"] and "vocoder: null\n" in good["out"], good["err"]


def test_choices_are_checked_in_every_job_of_a_multirun_and_in_list_elements():
    from gradtts.train.cli import register_config

    with pytest.raises(ValueError) as exc:
        check_command_line("train", register_config, [
            "-m", "loss.schedule=linear,cosine", "trainer.device=cpu,gpu", "adapt.trainable=[decoder,spk_neww]"])
    assert str(exc.value) == "; ".join([
        f"adapt.trainable[1]='spk_neww': expected one of {', '.join(TRAINABLE_PARTS)}",
        f"loss.schedule='cosine': expected one of {', '.join(SCHEDULES)}",
        f"trainer.device='gpu': expected one of {', '.join(DEVICES)}"])
    check_command_line("train", register_config, ["-m", "loss=l2,huber", "trainer.device=cpu,cuda:0"])
    with pytest.raises(ValueError, match=f"loss.name='l1': expected one of {', '.join(LOSSES)}$"):
        load_stage_config("train", ["loss.name=l1"], allow_missing=True)


def test_every_shipped_preset_composes_for_training_only():
    register_all()
    shipped = sorted(p.removesuffix(".yaml") for p in PRESETS)
    assert composing_presets("train") == shipped
    for name in shipped:
        load_stage_config("train", [f"experiment={name}"], allow_missing=True)
    assert load_stage_config("train", ["experiment=smoke"], allow_missing=True).trainer.max_steps == 20
    for command in ("synth", "score", "report"):
        assert composing_presets(command) == [], command


def _presets_line(help_text: str) -> list[str]:
    (line,) = [x for x in help_text.splitlines() if x.startswith("Presets (experiment=NAME")]
    listed = line.split(": ", 1)[1]
    return [] if listed == "none" else listed.split(", ")


@pytest.mark.slow  # four --help runs, each composing every preset: ~13 CPU-s on the loaded 2-core machine
def test_each_command_has_its_own_help_listing_only_the_presets_that_compose_for_it(site_conf, tmp_path):
    _write(site_conf / "experiment" / "quick_synth.yaml", "# @package _global_\nsynth:\n  n_timesteps: 2\n")
    _write(site_conf / "experiment" / "ecapa_scoring.yaml", "# @package _global_\nencoder: ecapa\n")
    _write(site_conf / "experiment" / "typo_scoring.yaml", "# @package _global_\nencoder: xvector\n")
    helps = dict(zip(REGISTER, _commands(tmp_path, [[name, "--help"] for name in REGISTER])))
    presets = {"train": sorted(p.removesuffix(".yaml") for p in PRESETS), "synth": ["quick_synth"],
               "score": ["ecapa_scoring"], "report": []}
    for name, res in helps.items():
        text = res["out"]
        assert res["rc"] == 0, res["err"]
        assert text.startswith(f"gradtts-{name}") and "powered by hydra" not in text.lower(), text
        assert _presets_line(text) == presets[name]
        assert f"\nExamples:\n  gradtts-{name} " in text
    train = helps["train"]["out"]
    assert "  data.feats_dir=???\n" in train and "  gradtts-train experiment=base data.feats_dir=FEATS_DIR\n" in train
    assert f"  loss.schedule=exponential    one of {', '.join(SCHEDULES)}\n" in train
    assert "  loss: " + ", ".join(f"{o}*" if o == "l2" else o for o in sorted(LOSSES)) + "\n" in train
    assert "  synth.texts=???\n" in helps["synth"]["out"] and "  synth.n_timesteps=10\n" in helps["synth"]["out"]
    assert "  encoder=ge2e    one of ge2e, ecapa\n" in helps["score"]["out"]
    assert "  level=0.95\n" in helps["report"]["out"]


# ---- packaging ---------------------------------------------------------------------------------------------


def test_presets_ship_inside_the_package():
    assert PACKAGE_CONF_DIR == REPO / "gradtts" / "conf"
    assert sorted(p.name for p in (PACKAGE_CONF_DIR / "experiment").glob("*.yaml")) == sorted(PRESETS)
    # The recipe layout keeps its conf/ path.
    assert (REPO / "conf").resolve() == PACKAGE_CONF_DIR


def test_wheel_carries_the_presets_and_finds_them_when_installed(tmp_path):
    # Built from a copy, so that the build's scratch files stay out of the working tree.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for pkg in ("gradtts", "data_prep"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("gradtts_adapt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"gradtts/conf/experiment/{p}" for p in PRESETS} | {"gradtts/conf/hydra/launcher/slurm.yaml"} <= names
    # Installed without the repository (a pure wheel unpacks as it installs), from another directory.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import gradtts, gradtts.config as c; from gradtts.train.cli import compose; "
             "cfg = compose(['experiment=smoke', 'data.feats_dir=x']); "
             "print(gradtts.__file__, c.conf_dir(), cfg.trainer.max_steps, cfg.model.dec_dim)")
    env = {k: v for k, v in os.environ.items() if k != "GRADTTS_CONF_DIR"}
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                         env={**env, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    init, found, max_steps, dec_dim = res.stdout.split()
    assert Path(init).is_relative_to(site) and Path(found) == site / "gradtts" / "conf"
    assert (max_steps, dec_dim) == ("20", "16")  # experiment=smoke and its model=tiny
