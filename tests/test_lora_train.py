"""LoRA fine-tuning through the trainer: what it trains, what it writes, and that the voice file is the run."""

import hashlib
import json

import pytest
import torch

from gradtts.model.checkpoint import load_checkpoint
from gradtts.train import train
from gradtts.train.cli import compose
from gradtts.train.voice import load_voice
from train_fixtures import make_feats, save_tiny_base, smoke_overrides


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return save_tiny_base(tmp_path_factory.mktemp("base") / "base.pt")


def _cfg(feats, out, base, steps, *extra):
    return compose(smoke_overrides(
        feats, out, "experiment=finetune", "model=tiny", f"adapt.checkpoint={base}", f"trainer.max_steps={steps}",
        "trainer.save_steps=[0,3]", "trainer.save_every=3", "trainer.device=cpu", "trainer.progress=false",
        "trainer.tensorboard=false", "trainer.sample_every=0", "trainer.deterministic=false", "data.batch_size=4",
        "data.out_size=32", "optim.lr=1e-2", "adapt.method=lora", "adapt.rank=2", *extra))


@pytest.mark.slow  # a LoRA fine-tuning and a voice load: 12 CPU-s on the loaded 2-core machine
def test_lora_run_trains_adapters_only_and_writes_a_voice(base_ckpt, tmp_path):
    feats = make_feats(tmp_path / "few", {"T": 6}, seed=2)
    out = tmp_path / "ft"
    digest = hashlib.sha256(base_ckpt.read_bytes()).hexdigest()
    train(_cfg(feats, out, base_ckpt, 3))
    assert hashlib.sha256(base_ckpt.read_bytes()).hexdigest() == digest  # the base file is never written
    rec = json.loads((out / "run.json").read_text())
    assert rec["arm_tag"] == "l2_lora-r2" and rec["arm"] == "l2 + LoRA r=2"
    assert rec["identity"]["adapt"]["method"] == "lora" and rec["identity"]["adapt"]["rank"] == 2
    voice = out / "ckpt" / "step_0000003.voice.pt"
    assert rec["lora"]["voice_bytes"] == voice.stat().st_size and rec["lora"]["n_params"] > 0
    base, _ = load_checkpoint(base_ckpt)
    # Step 0 is the base with the new row: zero-initialised adapters merge to the base weights exactly.
    step0, _ = load_checkpoint(out / "ckpt" / "step_0000000.pt")
    sb, s0 = base.state_dict(), step0.state_dict()
    assert all(torch.equal(sb[k], s0[k]) for k in sb if k != "spk_emb.weight")
    # Step 3: a plain checkpoint whose convolutions moved (merged adapters); the encoder, the time and speaker
    # MLPs and the base speaker rows did not.
    tuned, info = load_checkpoint(out / "ckpt" / "step_0000003.pt")
    st = tuned.state_dict()
    assert info.spk2id["T"] == 3 and torch.equal(st["spk_emb.weight"][:3], sb["spk_emb.weight"])
    assert not torch.equal(st["spk_emb.weight"][3], s0["spk_emb.weight"][3])
    frozen = [k for k in sb if k.startswith("encoder.") or ".mlp." in k or "spk_mlp" in k or k.endswith(".g")]
    assert frozen and all(torch.equal(sb[k], st[k]) for k in frozen)
    moved = [k for k in sb if k.startswith("decoder.") and not torch.equal(sb[k], st[k])]
    assert moved and all(k.endswith(".weight") for k in moved)
    # The voice file on the base is the same model.
    voiced, vinfo = load_voice(voice, base_ckpt)
    assert vinfo.spk2id["T"] == 3
    sv = voiced.state_dict()
    assert all(torch.allclose(sv[k], st[k], atol=1e-6) for k in st)


@pytest.mark.slow  # two LoRA fine-tunings: 14 CPU-s on the loaded 2-core machine
def test_lora_run_resumes_its_adapters(base_ckpt, tmp_path):
    feats = make_feats(tmp_path / "few", {"T": 6}, seed=2)
    out = tmp_path / "ft"
    train(_cfg(feats, out, base_ckpt, 3))
    first = torch.load(out / "ckpt" / "step_0000003.pt", weights_only=True)
    summary = train(_cfg(feats, out, base_ckpt, 5))
    assert summary["step"] == 5 and len(summary["history"]) == 2  # resumed at 3, not restarted
    last = torch.load(out / "ckpt" / "step_0000005.pt", weights_only=True)
    assert first["lora"].keys() == last["lora"].keys()
    assert any(not torch.equal(first["lora"][k], last["lora"][k]) for k in first["lora"])
    with pytest.raises(ValueError, match="adapt.method='loRA'"):
        train(_cfg(feats, tmp_path / "bad", base_ckpt, 1, "adapt.method=loRA"))


@pytest.mark.slow  # a LoRA fine-tuning and two syntheses: 16 CPU-s on the loaded 2-core machine
def test_synthesis_takes_a_voice_file_on_its_base(tmp_path):
    import numpy as np
    import soundfile as sf

    from gradtts.synth import SynthConfig, list_checkpoints, run_synthesis
    from gradtts.text.cmudict import dictionary_id

    # Synthesis reads real text: a base and features made with the packaged dictionary.
    base_ckpt = save_tiny_base(tmp_path / "base.pt", dictionary=dictionary_id(None))
    feats = make_feats(tmp_path / "few", {"T": 6}, seed=2, dictionary=dictionary_id(None))
    out = tmp_path / "ft"
    train(_cfg(feats, out, base_ckpt, 3))
    ckpt = out / "ckpt"
    # A ckpt dir lists its checkpoints, not the voice files beside them; a voice file is taken when named.
    assert [p.name for p in list_checkpoints([str(ckpt)])] == ["step_0000000.pt", "step_0000003.pt"]
    voice = ckpt / "step_0000003.voice.pt"
    assert list_checkpoints([str(voice)], [3]) == [voice]
    texts = tmp_path / "texts.txt"
    texts.write_text("s1 the cat sat\n")
    common = dict(texts=str(texts), text_format="kaldi", n_timesteps=2, vocoder="griffinlim", device="cpu")
    run_synthesis(SynthConfig(**common, checkpoints=[str(voice)], base=str(base_ckpt), out_dir=str(tmp_path / "v")))
    run_synthesis(SynthConfig(**common, checkpoints=[str(ckpt / "step_0000003.pt")], out_dir=str(tmp_path / "m")))
    rec = json.loads((tmp_path / "v/step_0000003/synth.json").read_text())
    assert rec["settings"]["base_sha256"] == hashlib.sha256(base_ckpt.read_bytes()).hexdigest()
    a, _ = sf.read(tmp_path / "v/step_0000003/s1.wav")
    b, _ = sf.read(tmp_path / "m/step_0000003/s1.wav")
    # The same voice (the new speaker by default) either way, up to the float rounding of the merge.
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-3
