"""Vocoders: HiFi-GAN V1 with the official weights, and a Griffin-Lim fallback."""

from gradtts.vocoder.griffinlim import griffin_lim
from gradtts.vocoder.hifigan import HiFiGAN
from gradtts.vocoder.vocode import Vocoder
from gradtts.vocoder.weights import load_hifigan, official_weights_path

__all__ = ["HiFiGAN", "load_hifigan", "official_weights_path", "griffin_lim", "Vocoder"]
