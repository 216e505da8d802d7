"""The model's own paths: per-utterance noise taken by GradTTS itself, and the alignment's log-prior."""

import math

import pytest
import torch

from gradtts.model import GradTTS, OFFICIAL_CONFIG, maximum_path, sequence_mask
from gradtts.model.inference import SeededNoise, synthesize_mels

TINY = dict(OFFICIAL_CONFIG, spk_emb_dim=16, n_enc_channels=32, filter_channels=64, filter_channels_dp=32,
            n_enc_layers=2, dec_dim=16)
TOKENS = [148, 5, 148, 60, 148, 61, 148, 70, 148]


def test_seeded_noise_draws_each_utterance_at_its_own_length():
    noise = SeededNoise([5, 9])
    mask = sequence_mask(torch.tensor([7, 3]), 8).unsqueeze(1).float()
    eps = noise(torch.Size([2, 80, 8]), mask)
    assert torch.equal(eps[0, :, :7], torch.randn(80, 7, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(eps[1, :, :3], torch.randn(80, 3, generator=torch.Generator().manual_seed(9)))
    assert torch.all(eps[0, :, 7:] == 0) and torch.all(eps[1, :, 3:] == 0)
    # the next call continues each utterance's own stream
    g = torch.Generator().manual_seed(9)
    torch.randn(80, 3, generator=g)
    assert torch.equal(noise(torch.Size([2, 80, 8]), mask)[1, :, :3], torch.randn(80, 3, generator=g))
    # a bf16 mask cannot sum to 301 exactly; the frames are counted instead
    long_mask = sequence_mask(torch.tensor([301]), 304).unsqueeze(1).to(torch.bfloat16)
    assert float(long_mask.sum()) != 301
    assert torch.count_nonzero(SeededNoise([1])(torch.Size([1, 2, 304]), long_mask)[0, 0]) == 301
    with pytest.raises(ValueError, match="batch of 2 utterances, but 1 seeds"):
        SeededNoise([1])(torch.Size([2, 80, 8]), mask)


@torch.no_grad()
def test_reverse_sde_takes_the_seeded_noise_at_every_step():
    torch.manual_seed(0)
    model = GradTTS(**dict(TINY, n_spks=3)).eval()
    seed, spk, steps, temperature = 77, torch.tensor([2]), 3, 1.5
    mel = synthesize_mels(model, [TOKENS], [seed], spk=2, n_timesteps=steps, temperature=temperature,
                          stoc=True, batch_size=1)[0]
    # Reference: the official Euler-Maruyama update, written out, with draws from the utterance's generator.
    mu_y, _, _ = model(torch.tensor([TOKENS]), torch.tensor([len(TOKENS)]), 1, spk=spk)
    n = mu_y.shape[-1]
    t_max = -(-n // 4) * 4
    mu = torch.nn.functional.pad(mu_y, (0, t_max - n))
    mask = sequence_mask(torch.tensor([n]), t_max).unsqueeze(1).float()
    g = torch.Generator().manual_seed(seed)

    def draw():
        return torch.nn.functional.pad(torch.randn(1, 80, n, generator=g), (0, t_max - n))

    emb = model.spk_emb(spk)
    x = (mu + draw() / temperature) * mask
    dec = model.decoder
    for i in range(steps):
        t = torch.tensor([1 - (i + 0.5) / steps])
        b = (dec.beta_min + (dec.beta_max - dec.beta_min) * t).view(1, 1, 1)
        score = dec.estimator(x, mask, mu, t, emb)
        dx = (0.5 * (mu - x) - score) * b / steps + draw() * torch.sqrt(b / steps)
        x = (x - dx) * mask
    assert mel.shape == (80, n)
    torch.testing.assert_close(mel, x[0, :, :n], rtol=1e-5, atol=1e-5)
    # and the ODE ignores the step noise: one draw (the prior) only
    ode = synthesize_mels(model, [TOKENS], [seed], spk=2, n_timesteps=steps, temperature=temperature)[0]
    assert not torch.allclose(ode, mel)


@torch.no_grad()
def test_forward_takes_a_noise_source_and_keeps_the_global_rng_by_default():
    torch.manual_seed(0)
    model = GradTTS(**dict(TINY, n_spks=1)).eval()
    x, lengths = torch.tensor([TOKENS]), torch.tensor([len(TOKENS)])
    calls = []

    def zeros(shape, mask):
        calls.append((tuple(shape), int(mask.sum())))
        return torch.zeros(shape)

    mu_y, mel, _ = model(x, lengths, 2, stoc=True, noise=zeros)
    n = mu_y.shape[-1]
    t_max = -(-n // 4) * 4
    assert calls == [((1, 80, t_max), n)] * 3  # the prior, then one draw per step
    # zero noise: the SDE is the deterministic part of its update, starting at mu_y
    mu = torch.nn.functional.pad(mu_y, (0, t_max - n))
    mask = torch.nn.functional.pad(torch.ones(1, 1, n), (0, t_max - n))
    want = model.decoder.reverse_diffusion(mu, mask, mu, 2, stoc=True, noise=zeros)[:, :, :n]
    assert torch.equal(mel, want)
    torch.manual_seed(4)
    default = model(x, lengths, 2, stoc=True)[1]
    torch.manual_seed(4)
    again = model(x, lengths, 2, stoc=True)[1]
    assert torch.equal(default, again) and not torch.allclose(default, mel)


def test_log_prior_is_the_unit_variance_gaussian_density():
    torch.manual_seed(0)
    model = GradTTS(**dict(TINY, n_spks=1))
    mu = torch.randn(2, 80, 6) * 2 - 3
    y = torch.randn(2, 80, 11) * 2 - 5
    direct = torch.distributions.Normal(mu.unsqueeze(-1), 1.0).log_prob(y.unsqueeze(2)).sum(1)  # [B, T_x, T_y]
    got = model.log_prior(mu, y)
    assert got.shape == (2, 6, 11)
    torch.testing.assert_close(got, direct, rtol=1e-5, atol=1e-3)
    # the official expansion (a ones-matrix product for |y|^2) agrees to float rounding, and gives the same path
    factor = -0.5 * torch.ones_like(mu)
    official = (torch.matmul(factor.transpose(1, 2), y ** 2) - torch.matmul(2.0 * (factor * mu).transpose(1, 2), y)
                + torch.sum(factor * mu ** 2, 1).unsqueeze(-1) - 0.5 * math.log(2 * math.pi) * 80)
    torch.testing.assert_close(got, official, rtol=1e-6, atol=1e-3)
    mask = torch.ones(2, 6, 11)
    assert torch.equal(maximum_path(got, mask), maximum_path(official, mask))
