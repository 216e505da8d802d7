"""Speaker similarity: speaker encoders (GE2E, ECAPA), similarity, resilience and leakage."""

from gradtts.scoring.encoders import SpeakerAudioError, load_speaker_encoder

__all__ = ["load_speaker_encoder", "SpeakerAudioError"]
