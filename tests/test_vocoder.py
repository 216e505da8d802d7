"""HiFi-GAN V1 with the official weights, batching, Griffin-Lim fallback, round-trip numbers."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gradtts.audio import load_audio
from gradtts.features import mel_spectrogram
from gradtts.vocoder import HiFiGAN, Vocoder, griffin_lim, load_hifigan, official_weights_path

LIBRI = Path(__file__).resolve().parents[1].parent / "shared/data/librispeech-3spk"


@pytest.fixture(scope="module")
def hifigan():
    return load_hifigan()


def test_official_weights_load_strictly_from_the_wheel():
    path = official_weights_path("universal")
    assert path.name == "generator_universal.pth.tar" and path.parent.name == "data"
    sd = torch.load(path, map_location="cpu", weights_only=True)["generator"]
    model = HiFiGAN()
    assert list(model.state_dict()) == list(sd)
    assert all(model.state_dict()[k].shape == v.shape for k, v in sd.items())
    model.load_state_dict(sd, strict=True)
    assert len(sd) == 234 and "conv_pre.weight_g" in sd and "resblocks.11.convs2.2.weight_v" in sd
    # Folding weight norm does not change the output.
    mel = torch.randn(1, 80, 12) - 4
    with torch.no_grad():
        before = model(mel)
        after = model.fold_weight_norm()(mel)
    assert torch.allclose(before, after, atol=1e-5)
    assert official_weights_path("lj").name == "generator_LJSpeech.pth.tar"


def test_wrong_files_are_rejected(tmp_path):
    torch.save({"encoder.emb.weight": torch.zeros(1)}, tmp_path / "gradtts.pt")
    with pytest.raises(RuntimeError, match="expected a dict with key 'generator'"):
        load_hifigan(tmp_path / "gradtts.pt")
    torch.save({"generator": {"conv_pre.bias": torch.zeros(512)}}, tmp_path / "g.pt")
    with pytest.raises(RuntimeError, match="does not fit the HiFi-GAN V1 generator"):
        load_hifigan(tmp_path / "g.pt")


def test_batched_vocoding_trims_each_output(hifigan, tmp_path):
    voc = Vocoder("hifigan", model=hifigan, batch_size=4)
    g = torch.Generator().manual_seed(0)
    mels = [torch.randn(80, n, generator=g) - 5 for n in (60, 83)]
    wavs = voc(mels)
    assert [w.shape[0] for w in wavs] == [60 * 256, 83 * 256]
    with torch.no_grad():
        alone = hifigan(mels[0][None])[0, 0]
    # Padding with silence only reaches the receptive field of the last frames.
    assert torch.allclose(wavs[0][:8000], alone[:8000], atol=1e-4)
    voc.to_files(mels, [tmp_path / "a.wav", tmp_path / "b.wav"])
    assert sf.info(tmp_path / "b.wav").frames == 83 * 256 and sf.info(tmp_path / "b.wav").subtype == "PCM_16"


def _round_trip(hifigan, wav):
    mel = mel_spectrogram(torch.from_numpy(wav)[None])
    with torch.no_grad():
        hifi = hifigan(mel)[:, 0]
    gl = griffin_lim(mel)
    l1 = lambda y: (mel_spectrogram(y) - mel).abs().mean().item()  # noqa: E731
    return l1(hifi), l1(gl)


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed")
def test_round_trip_on_synthetic_speech(hifigan, tmp_path):
    subprocess.run(["espeak-ng", "-w", str(tmp_path / "s.wav"), "The quick brown fox jumps over the lazy dog."],
                   check=True)
    wav, _ = load_audio(tmp_path / "s.wav")
    hifi, gl = _round_trip(hifigan, wav[:22050 * 2])
    print(f"log-mel L1 (espeak-ng): HiFi-GAN {hifi:.3f}, Griffin-Lim {gl:.3f}")
    assert hifi < 0.4 and gl < 0.4


@pytest.mark.skipif(not LIBRI.is_dir(), reason="shared LibriSpeech sample not available")
def test_round_trip_on_real_speech(hifigan):
    wav, _ = load_audio(sorted(LIBRI.rglob("*.flac"))[5])
    hifi, gl = _round_trip(hifigan, wav[:22050 * 2])
    print(f"log-mel L1 (LibriSpeech): HiFi-GAN {hifi:.3f}, Griffin-Lim {gl:.3f}")
    assert hifi < 0.4 and gl < 0.4
    silence = torch.full((1, 80, 40), float(np.log(1e-5)))
    with torch.no_grad():
        assert hifigan(silence).abs().max() < 0.05
