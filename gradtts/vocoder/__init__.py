"""Vocoders: HiFi-GAN V1 with the official weights, a Griffin-Lim fallback, and the front end over both."""

from gradtts.vocoder.frontend import load_vocoder
from gradtts.vocoder.griffinlim import griffin_lim
from gradtts.vocoder.hifigan import HiFiGAN
from gradtts.vocoder.weights import load_hifigan, official_weights_path

__all__ = ["HiFiGAN", "load_hifigan", "official_weights_path", "griffin_lim", "load_vocoder"]
