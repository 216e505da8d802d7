"""Digests and differences of stored records: what decides whether an output may be reused or resumed."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def differences(stored: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key: stored -> wanted`` lines for every leaf that differs."""
    out = []
    for k in sorted(set(stored) | set(wanted), key=str):
        a, b = stored.get(k, "<absent>"), wanted.get(k, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out
