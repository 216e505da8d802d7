"""Speaker encoders: GE2E equals resemblyzer, separates real speakers; ECAPA loads from a local dir."""

import collections
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gradtts.scoring import SpeakerAudioError, load_speaker_encoder

LIBRI = Path(__file__).resolve().parents[1].parent / "shared/data/librispeech-3spk"
needs_libri = pytest.mark.skipif(not LIBRI.is_dir(), reason="real speech of 3 readers not present: "
                                                            "../shared/data/librispeech-3spk")
# Reader 19's first reading (LibriSpeech 19-198-0000, 2 s, CC BY 4.0; tests/data/README.md) travels with the
# tests, so GE2E is compared with resemblyzer on real speech without ../shared.
BUNDLED_READING = Path(__file__).resolve().parent / "data/19-198-0000.flac"


def _libri_files(per_speaker):
    by = collections.defaultdict(list)
    for f in sorted(LIBRI.rglob("*.flac")):
        by[f.parts[-3]].append(f)
    return {s: fs[:per_speaker] for s, fs in sorted(by.items())}


@pytest.mark.parametrize("reader", ["19", "26", "27"])
def test_ge2e_equals_resemblyzer_embeddings(reader):
    # Each reader's first reading; 19's is bundled (the same file as in ../shared), 26's and 27's are not.
    if reader == "19":
        path = BUNDLED_READING
    elif LIBRI.is_dir():
        path = _libri_files(1)[reader][0]
    else:
        pytest.skip("real speech of readers 26 and 27 not present: ../shared/data/librispeech-3spk")
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except Exception as exc:  # resemblyzer's webrtcvad import may be broken on a machine
        pytest.skip(f"resemblyzer not importable ({exc}): make install takes it with webrtcvad-wheels")
    from gradtts.audio import load_audio
    from gradtts.scoring.ge2e import GE2EEncoder, embed_preprocessed, preprocess

    ref = VoiceEncoder("cpu", verbose=False)
    ours = GE2EEncoder.from_resemblyzer()
    wav_ref = preprocess_wav(path)
    wav_ours = preprocess(load_audio(path, 16000)[0])
    np.testing.assert_array_equal(wav_ref, wav_ours)
    np.testing.assert_allclose(embed_preprocessed(ours, [wav_ours])[0], ref.embed_utterance(wav_ref), atol=1e-6)


@pytest.mark.slow  # 24 LibriSpeech readings embedded: 17.7 CPU-s on the 2-core machine
@needs_libri
def test_ge2e_separates_the_three_librispeech_speakers(tmp_path):
    enc = load_speaker_encoder("ge2e", cache_dir=tmp_path)
    groups = _libri_files(8)
    emb = {s: enc.embed_files(fs) for s, fs in groups.items()}
    same, cross = [], []
    for s, e in emb.items():
        for i in range(len(e)):
            c = np.delete(e, i, axis=0).mean(0)  # leave-one-out centroid of the same speaker
            same.append(float(e[i] @ c / np.linalg.norm(c)))
            for s2, e2 in emb.items():
                if s2 != s:
                    c2 = e2.mean(0)
                    cross.append(float(e[i] @ c2 / np.linalg.norm(c2)))
    print(f"GE2E LibriSpeech: same-speaker {np.mean(same):.3f}, cross-speaker {np.mean(cross):.3f}")
    assert np.mean(same) > np.mean(cross) + 0.2
    assert min(same) > max(cross) - 0.05
    # Cached: a second call reads the cache and returns identical rows.
    f = groups[next(iter(groups))][:2]
    assert len(list(tmp_path.rglob("*.npy"))) == sum(len(v) for v in groups.values())
    np.testing.assert_array_equal(enc.embed_files(f), emb[next(iter(groups))][:2])


def test_bad_audio_is_named(tmp_path):
    enc = load_speaker_encoder("ge2e", cache_dir=tmp_path / "cache")
    sf.write(tmp_path / "short.wav", 0.3 * np.sin(np.arange(4000) / 5), 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(32000), 16000)
    (tmp_path / "junk.wav").write_bytes(b"RIFF nonsense")
    for name, msg in (("short.wav", "at least 0.5 s"), ("silent.wav", "silent"), ("junk.wav", "cannot be read"),
                      ("absent.wav", "no such audio file")):
        with pytest.raises(SpeakerAudioError, match=name.replace(".", r"\.") + ".*" + msg):
            enc.embed_files([tmp_path / name])
    with pytest.raises(ValueError, match="unknown speaker encoder"):
        load_speaker_encoder("xvector")


ECAPA_YAML = """
pretrained_path: unused
n_mels: 24
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    lin_neurons: 24
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 24
    out_neurons: 3
mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


def _save_random_ecapa(path: Path) -> dict:
    from speechbrain.dataio.encoder import CategoricalEncoder
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
    from speechbrain.processing.features import InputNormalization

    torch.manual_seed(7)
    path.mkdir(parents=True)
    (path / "hyperparams.yaml").write_text(ECAPA_YAML)
    emb = ECAPA_TDNN(24, channels=[32, 32, 32, 32, 96], kernel_sizes=[5, 3, 3, 3, 1], dilations=[1, 2, 3, 4, 1],
                     attention_channels=16, lin_neurons=24)
    for p in emb.parameters():
        p.data.normal_(0, 0.2)
    cls = Classifier(24, out_neurons=3)
    torch.save(emb.state_dict(), path / "embedding_model.ckpt")
    torch.save(cls.state_dict(), path / "classifier.ckpt")
    norm = InputNormalization(norm_type="global", std_norm=False)
    norm(torch.randn(4, 10, 24), torch.ones(4))
    norm._save(path / "mean_var_norm_emb.ckpt")
    enc = CategoricalEncoder()
    enc.update_from_iterable(["a", "b", "c"])
    enc.save(path / "label_encoder.txt")
    return emb.state_dict()


@pytest.mark.parametrize("trust_yaml", [False, True])
def test_ecapa_loads_a_local_model_exactly(tmp_path, trust_yaml):
    saved = _save_random_ecapa(tmp_path / "ecapa")
    enc = load_speaker_encoder("ecapa", source=tmp_path / "ecapa", cache_dir=tmp_path / "cache", trust_yaml=trust_yaml)
    loaded = enc.embedding_model.state_dict()
    assert set(loaded) == set(saved)
    for k, v in saved.items():
        assert torch.equal(loaded[k], v), k
    wav = [0.3 * np.sin(np.arange(16000) / (3 + i)) for i in range(2)]
    e = enc.embed_wavs(wav, 16000)
    assert e.shape == (2, 24) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)


def _wavs():
    rng = np.random.default_rng(5)
    return [0.3 * np.sin(np.arange(n) / (3 + i)) + 0.05 * rng.standard_normal(n) for i, n in enumerate((16000, 12000))]


def test_ecapa_yaml_that_runs_a_command_is_never_executed(tmp_path):
    # The safe loader reads plain values only: a hyperparams.yaml with !apply:os.system loads the same model
    # (and the same embeddings as speechbrain's own loader gives for the clean file) without running anything.
    _save_random_ecapa(tmp_path / "clean")
    trusted = load_speaker_encoder("ecapa", source=tmp_path / "clean", cache_dir=tmp_path / "c1", trust_yaml=True)
    want = trusted.embed_wavs(_wavs(), 16000)
    _save_random_ecapa(tmp_path / "evil")
    marker = tmp_path / "MARKER"
    with open(tmp_path / "evil/hyperparams.yaml", "a") as f:
        f.write(f'\nowned: !apply:os.system ["touch {marker}"]\n')
    enc = load_speaker_encoder("ecapa", source=tmp_path / "evil", cache_dir=tmp_path / "c2")
    assert not marker.exists()
    got = enc.embed_wavs(_wavs(), 16000)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # The control: speechbrain's loader does execute it, which is why it needs trust_yaml=True.
    load_speaker_encoder("ecapa", source=tmp_path / "evil", cache_dir=tmp_path / "c3", trust_yaml=True)
    assert marker.exists()


def test_ecapa_safe_loader_refuses_what_it_cannot_read_as_data(tmp_path):
    from gradtts.scoring.encoders import EncoderModelError

    _save_random_ecapa(tmp_path / "m")
    yaml_file = tmp_path / "m/hyperparams.yaml"
    clean = yaml_file.read_text()
    yaml_file.write_text(clean.replace("lin_neurons: 24", "lin_neurons: !apply:os.getpid []"))
    with pytest.raises(EncoderModelError, match=r"embedding_model.lin_neurons: !apply:os.getpid .*not a plain value"):
        load_speaker_encoder("ecapa", source=tmp_path / "m")
    yaml_file.write_text(clean.replace("!new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN",
                                       "!new:speechbrain.lobes.models.Xvector.Xvector"))
    with pytest.raises(EncoderModelError, match="embedding_model: is !new:.*Xvector.*encoder_trust_yaml"):
        load_speaker_encoder("ecapa", source=tmp_path / "m")
    yaml_file.write_text(clean.replace("lin_neurons: 24", "lin_neurons: 32"))
    with pytest.raises(EncoderModelError, match="embedding_model.ckpt: does not fit ECAPA_TDNN"):
        load_speaker_encoder("ecapa", source=tmp_path / "m")


def test_ecapa_missing_files_are_named(tmp_path):
    _save_random_ecapa(tmp_path / "ecapa")
    os.remove(tmp_path / "ecapa" / "classifier.ckpt")
    with pytest.raises(FileNotFoundError, match="missing classifier.ckpt.*spkrec-ecapa-voxceleb"):
        load_speaker_encoder("ecapa", source=tmp_path / "ecapa")
    with pytest.raises(FileNotFoundError, match="huggingface-cli download"):
        load_speaker_encoder("ecapa")
