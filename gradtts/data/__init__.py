"""Data on disk: Kaldi-style data directories and feature manifests."""
