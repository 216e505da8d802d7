"""LoRA voices: adapters start as the identity, merge exactly, train alone; voice files round-trip on their base."""

import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn

from gradtts.digest import file_digest
from gradtts.model.checkpoint import load_checkpoint, save_checkpoint
from gradtts.model.config import build_model, model_preset
from gradtts.model.lora import (LORA_TARGETS, LoRAConv2d, inject_lora, lora_info, lora_parameters, lora_state_dict,
                                merge_lora, plain_state_dict)
from gradtts.train.adapt import add_speaker_rows, set_trainable
from gradtts.train.voice import VoiceError, is_voice_file, load_voice, main, read_voice, save_voice

SPK2ID = {"a": 0, "b": 1, "c": 2, "T": 3}


def _tiny(seed: int = 0, n_spks: int = 3):
    """A tiny model whose Rezero gains are nonzero, as after training (at 0 the attention would be muted)."""
    torch.manual_seed(seed)
    model = build_model(model_preset("tiny"), n_spks=n_spks)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".g"):
                p.uniform_(0.5, 1.0)
    return model


def _inputs(model, spk: int = 0, seed: int = 1):
    """Estimator inputs: x_t, a mask with padding, mu, t and the speaker embedding."""
    g = torch.Generator().manual_seed(seed)
    b, t = 2, 24
    x, mu = torch.randn(b, 80, t, generator=g), torch.randn(b, 80, t, generator=g)
    mask = torch.ones(b, 1, t)
    mask[1, :, 17:] = 0
    s = model.spk_emb(torch.full((b,), spk)).detach()
    return x, mask, mu, torch.rand(b, generator=g), s


def _perturb(model, seed: int = 2, std: float = 0.05):
    """Random nonzero ``lora_up`` kernels, as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRAConv2d):
                m.lora_up.weight.normal_(0, std, generator=g)


@torch.no_grad()
def _score(model, inputs):
    return model.decoder.estimator(*inputs)


@torch.no_grad()
def _synth(model, spk: int, seed: int = 5):
    x = torch.tensor([[0, 12, 0, 40, 0, 33, 0, 7, 0]])
    torch.manual_seed(seed)
    return model.synthesize(x, torch.tensor([9]), n_timesteps=3, spk=torch.tensor([spk])).mel


def test_injection_starts_as_the_base_bit_for_bit_and_wraps_the_documented_convs():
    model = _tiny()
    inputs = _inputs(model)
    before = _score(model, inputs)
    n_conv2d = sum(type(m) is nn.Conv2d for m in model.decoder.estimator.modules())
    names = inject_lora(model.decoder.estimator, rank=3)
    assert torch.equal(_score(model, inputs), before)
    est = model.decoder.estimator
    assert names == sorted(names) and len(names) == n_conv2d == 45
    assert {"final_conv", "downs.0.3.conv", "downs.0.0.res_conv", "mid_attn.fn.fn.to_qkv", "ups.1.2.fn.fn.to_out",
            "final_block.block.0"} <= set(names)
    # Upsample's transposed conv and the MLPs' Linear layers stay as they were.
    assert type(est.ups[0][3].conv) is nn.ConvTranspose2d and type(est.mlp[0]) is nn.Linear
    assert not any(n.startswith("ups.0.3") or "mlp" in n for n in names)
    info = lora_info(est)
    assert info["rank"] == 3 and info["alpha"] == 3.0 and info["targets"] == list(LORA_TARGETS)
    assert info["n_params"] == sum(3 * (m.base.in_channels * m.base.kernel_size[0] * m.base.kernel_size[1]
                                        + m.base.out_channels) for m in est.modules() if isinstance(m, LoRAConv2d))
    attn_only = _tiny()
    attn_names = inject_lora(attn_only.decoder.estimator, 2, targets=["attention"])
    assert len(attn_names) == 12 and all(n.endswith(("to_qkv", "to_out")) for n in attn_names)
    conv_names = inject_lora(_tiny().decoder.estimator, 2, targets=("conv",))
    assert sorted(attn_names + conv_names) == names


def test_injection_freezes_only_the_wrapped_convs_and_merge_restores_them():
    model = add_speaker_rows(_tiny(), 1)
    set_trainable(model, ["decoder", "spk_new"], n_base_spks=3)
    before = {n for n, p in model.named_parameters() if p.requires_grad}
    names = inject_lora(model.decoder.estimator, 2, targets=["attention"])
    after = {n for n, p in model.named_parameters() if p.requires_grad}
    wrapped = {f"decoder.estimator.{n}.{w}" for n in names for w in ("weight", "bias")}
    adapters = set(lora_state_dict(model))
    assert adapters == {f"decoder.estimator.{n}.lora_{d}.weight" for n in names for d in ("down", "up")}
    # The caller's choice (GroupNorm, MLPs, non-target convs, the new speaker row) is kept.
    assert after == adapters | {k for k in before if k not in wrapped}
    assert "decoder.estimator.downs.0.0.block1.block.0.weight" in after and "spk_emb.weight" in after
    merge_lora(model)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == before


@pytest.mark.parametrize("targets", [("conv",), ("attention",), LORA_TARGETS])
def test_trained_adapters_merge_exactly(targets):
    model = _tiny()
    original_keys = list(model.state_dict())
    inputs = _inputs(model, spk=1)
    base_out = _score(model, inputs)
    inject_lora(model.decoder.estimator, rank=2, alpha=4.0, targets=targets)  # scale 2
    _perturb(model)
    live = _score(model, inputs)
    assert (live - base_out).abs().max() > 1e-3  # the adapters do change the score
    plain = plain_state_dict(model)
    assert list(plain) == original_keys
    fresh = build_model(model_preset("tiny"), n_spks=3)
    fresh.load_state_dict(plain, strict=True)
    torch.testing.assert_close(_score(fresh, inputs), live, atol=1e-5, rtol=0)
    # merged=False is the untouched base under the plain names
    fresh.load_state_dict(plain_state_dict(model, merged=False), strict=True)
    assert torch.equal(_score(fresh, inputs), base_out)
    assert merge_lora(model) is model
    assert not any(isinstance(m, LoRAConv2d) for m in model.modules())
    assert list(model.state_dict()) == original_keys and lora_info(model)["n_params"] == 0
    torch.testing.assert_close(_score(model, inputs), live, atol=1e-5, rtol=0)


def _save_base(path, seed: int = 0):
    """A tiny base checkpoint (speakers a, b, c) in our format, with nonzero Rezero gains as after training."""
    save_checkpoint(path, _tiny(seed), dictionary="test-dictionary", spk2id={"a": 0, "b": 1, "c": 2}, step=1000)
    return path


def _adapted(base_ckpt, rank: int = 2, steps: int = 4):
    """Base + one new speaker row, LoRA on the estimator, a few Adam steps on the diffusion loss."""
    base, _ = load_checkpoint(base_ckpt)
    model = add_speaker_rows(base, 1)
    set_trainable(model, ["spk_new"], n_base_spks=3)
    torch.manual_seed(10)
    inject_lora(model.decoder.estimator, rank)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # every tensor: frozen ones must stay put by themselves
    g = torch.Generator().manual_seed(3)
    y, mu = torch.randn(2, 80, 28, generator=g) - 5.0, torch.randn(2, 80, 28, generator=g) - 5.0
    mask = torch.ones(2, 1, 28)
    mask[1, :, 21:] = 0
    torch.manual_seed(4)
    for _ in range(steps):
        opt.zero_grad()
        model.decoder.compute_loss(y, mask, mu, model.spk_emb(torch.tensor([3, 3])))[0].backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return _save_base(tmp_path_factory.mktemp("base") / "base.pt")


def test_only_the_adapters_and_new_row_train(base_ckpt):
    base, _ = load_checkpoint(base_ckpt)
    digest = file_digest(base_ckpt)
    base_mel = _synth(base, spk=1)
    model = _adapted(base_ckpt)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lora_keys = set(lora_state_dict(model))
    assert trainable == lora_keys | {"spk_emb.weight"} and len(lora_keys) == 90
    start = add_speaker_rows(base, 1).state_dict()
    for k, v in plain_state_dict(model, merged=False).items():
        if k == "spk_emb.weight":
            assert torch.equal(v[:3], start[k][:3]) and not torch.equal(v[3], start[k][3])
        else:
            assert torch.equal(v, start[k]), k
    for name, p in lora_state_dict(model).items():
        assert p.abs().max() > 0, name  # lora_up moved off zero, and lora_down off its init
    assert all(not torch.equal(a, b) for a, b in zip(lora_parameters(model), lora_parameters(_fresh_lora(base_ckpt))))
    # The base file and what it synthesises for its own speakers are untouched.
    assert file_digest(base_ckpt) == digest
    assert torch.equal(_synth(load_checkpoint(base_ckpt)[0], spk=1), base_mel)


def _fresh_lora(base_ckpt):
    """The adapters as _adapted initialises them, before any step (same RNG draws)."""
    model = add_speaker_rows(load_checkpoint(base_ckpt)[0], 1)
    torch.manual_seed(10)
    inject_lora(model.decoder.estimator, 2)
    return model


@pytest.fixture(scope="module")
def voice(base_ckpt, tmp_path_factory):
    model = _adapted(base_ckpt)
    path = save_voice(tmp_path_factory.mktemp("voice") / "T.voice.pt", model, base_path=base_ckpt, n_base_spks=3,
                      spk2id=SPK2ID, dictionary="test-dictionary", step=3)
    return model, path


def test_voice_round_trip_is_small_and_exact(base_ckpt, voice, capsys):
    live, path = voice
    size, full = path.stat().st_size, base_ckpt.stat().st_size
    print(f"tiny model, rank 2: voice {size} bytes vs full checkpoint {full} bytes ({size / full:.3f})")
    assert size < 0.08 * full
    v = read_voice(path)
    assert v["speakers"] == ["T"] and v["spk_rows"].shape == (1, 16) and v["base"]["n_spks"] == 3
    assert v["lora_config"]["rank"] == 2 and len(v["lora_config"]["modules"]) == 45
    assert is_voice_file(path) and not is_voice_file(base_ckpt) and not is_voice_file(path.with_name("none.pt"))

    inputs = _inputs(live, spk=3)
    unmerged, _ = load_voice(path, merge=False)
    assert torch.equal(_score(unmerged, inputs), _score(live, inputs))
    merged, info = load_voice(path)
    assert not any(isinstance(m, LoRAConv2d) for m in merged.modules())
    assert info.kind == "gradtts-voice" and info.spk2id == SPK2ID and info.dictionary == "test-dictionary"
    assert info.extra["new_speakers"] == ["T"] and info.extra["n_base_spks"] == 3 and info.step == 3
    torch.testing.assert_close(_score(merged, inputs), _score(live, inputs), atol=1e-5, rtol=0)
    torch.testing.assert_close(_synth(merged, spk=3), _synth(live, spk=3), atol=1e-4, rtol=0)

    out = path.with_name("merged.pt")
    assert main(["merge", str(path), "--out", str(out)]) == 0
    ckpt, cinfo = load_checkpoint(out)
    assert cinfo.spk2id == SPK2ID and cinfo.extra["new_speakers"] == ["T"]
    assert torch.equal(_score(ckpt, inputs), _score(merged, inputs))
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    shown = capsys.readouterr().out
    assert f"{size:,} bytes" in shown and "rank 2" in shown and "new speakers (1): T" in shown


def test_voice_refuses_a_wrong_or_missing_base(base_ckpt, voice, tmp_path):
    live, path = voice
    other = _save_base(tmp_path / "other.pt", seed=1)
    with pytest.raises(VoiceError, match="not the base this voice was trained on.*base_path"):
        load_voice(path, other)
    moved = shutil.copy(base_ckpt, tmp_path / "moved.pt")
    orphan = save_voice(tmp_path / "orphan.pt", live, base_path=moved, n_base_spks=3, spk2id=SPK2ID)
    (tmp_path / "moved.pt").unlink()
    with pytest.raises(VoiceError, match=r"moved\.pt is missing; pass .*base_path=PATH.*--base PATH"):
        load_voice(orphan)
    assert load_voice(orphan, base_ckpt)[1].spk2id == SPK2ID  # the override finds it again
    r = subprocess.run([sys.executable, "-m", "gradtts.train.voice", "merge", str(orphan), "--out",
                        str(tmp_path / "m.pt")], capture_output=True, text=True)
    assert r.returncode == 2 and "--base PATH" in r.stderr and not (tmp_path / "m.pt").exists()


def test_save_voice_refuses_what_the_file_could_not_hold(base_ckpt, voice, tmp_path):
    live, _ = voice
    with pytest.raises(VoiceError, match="row 3"):
        save_voice(tmp_path / "v.pt", live, base_path=base_ckpt, n_base_spks=3, spk2id={"a": 0})
    with torch.no_grad():
        live.encoder.proj_m.weight.add_(1e-3)
    try:
        with pytest.raises(VoiceError, match=r"differs from its base.*encoder\.proj_m\.weight"):
            save_voice(tmp_path / "v.pt", live, base_path=base_ckpt, n_base_spks=3, spk2id=SPK2ID)
    finally:
        with torch.no_grad():
            live.encoder.proj_m.weight.sub_(1e-3)
    with pytest.raises(VoiceError, match="no LoRA adapters"):
        save_voice(tmp_path / "v.pt", load_checkpoint(base_ckpt)[0], base_path=base_ckpt, n_base_spks=3,
                   spk2id=SPK2ID)
    assert not (tmp_path / "v.pt").exists()


def test_bad_options_are_named():
    est = _tiny().decoder.estimator
    for rank in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match=r"adapt\.rank must be >= 1"):
            inject_lora(est, rank)
    for targets in ((), ("mlp",), ["conv", "upsample"]):
        with pytest.raises(ValueError, match=r"adapt\.lora_targets must be a non-empty subset"):
            inject_lora(est, 2, targets=targets)
    with pytest.raises(ValueError, match=r"adapt\.alpha must be > 0"):
        inject_lora(est, 2, alpha=0)
    assert lora_info(est)["modules"] == []  # nothing was wrapped by the failed calls
    inject_lora(est, 2, targets="attention")
    with pytest.raises(ValueError, match="already injected"):
        inject_lora(est, 2, targets=["conv"])
