"""Grad-TTS model: module tree and computations of the official implementation."""

from gradtts.model.alignment import maximum_path
from gradtts.model.config import CONFIG_KEYS, OFFICIAL_CONFIG
from gradtts.model.diffusion import Diffusion, ScoreLoss, beta, beta_integral
from gradtts.model.encoder import TextEncoder
from gradtts.model.gradtts import GradTTS
from gradtts.model.masks import fix_len_compatibility, generate_path, sequence_mask
from gradtts.model.unet import GradLogPEstimator2d

__all__ = ["GradTTS", "TextEncoder", "Diffusion", "GradLogPEstimator2d", "maximum_path", "sequence_mask",
           "generate_path", "fix_len_compatibility", "beta", "beta_integral", "ScoreLoss", "CONFIG_KEYS",
           "OFFICIAL_CONFIG"]
