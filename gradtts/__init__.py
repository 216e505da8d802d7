"""gradtts-adapt: Grad-TTS few-shot speaker adaptation with robust score losses.

Importing the package has no side effects; submodules are imported on demand.
"""

__version__ = "0.1.0"
