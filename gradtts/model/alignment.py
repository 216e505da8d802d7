"""Monotonic alignment search (Glow-TTS / Grad-TTS), batched and compiled with numba.

For each utterance it finds the monotonic, surjective token-to-frame path maximising the summed
log-likelihood. Arithmetic is float32 and ties are broken as in the reference implementation (stay
on the same token unless the previous token's cumulative score is strictly larger), so paths agree
exactly with the official Cython kernel.
"""

from __future__ import annotations

import numpy as np
import torch

try:
    import numba

    _njit = numba.njit(cache=True, nogil=True)
    _pnjit = numba.njit(cache=True, nogil=True, parallel=True)
    _prange = numba.prange
except ImportError:  # pragma: no cover - numba is a declared dependency; keep a slow path anyway
    numba = None
    _njit = _pnjit = lambda f: f  # noqa: E731
    _prange = range

_NEG = np.float32(-1e9)


@_njit
def _path_one(path, value, t_x, t_y):
    # Forward pass: value[x, y] becomes the best cumulative score ending at token x, frame y.
    for y in range(t_y):
        lo = max(0, t_x + y - t_y)
        hi = min(t_x, y + 1)
        for x in range(lo, hi):
            stay = _NEG if x == y else value[x, y - 1]
            if x == 0:
                move = np.float32(0.0) if y == 0 else _NEG
            else:
                move = value[x - 1, y - 1]
            value[x, y] = np.float32(max(stay, move) + value[x, y])
    # Backtrack from the last token at the last frame.
    index = t_x - 1
    for y in range(t_y - 1, -1, -1):
        path[index, y] = 1
        if index != 0 and (index == y or value[index, y - 1] < value[index - 1, y - 1]):
            index -= 1


@_pnjit
def _path_batch(paths, values, t_xs, t_ys):
    for i in _prange(values.shape[0]):
        _path_one(paths[i], values[i], t_xs[i], t_ys[i])


def maximum_path(value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Most likely monotonic alignment.

    Args:
        value: log-likelihoods ``[B, T_x, T_y]``.
        mask: ``[B, T_x, T_y]`` with ones on valid (token, frame) pairs.
    Returns:
        0/1 path ``[B, T_x, T_y]`` in ``value``'s dtype and device.
    """
    value = value * mask
    values = np.ascontiguousarray(value.detach().cpu().numpy().astype(np.float32))
    m = mask.detach().cpu().numpy()
    t_xs = np.ascontiguousarray(m.sum(1)[:, 0].astype(np.int32))
    t_ys = np.ascontiguousarray(m.sum(2)[:, 0].astype(np.int32))
    paths = np.zeros(values.shape, dtype=np.int32)
    _path_batch(paths, values, t_xs, t_ys)
    return torch.from_numpy(paths).to(device=value.device, dtype=value.dtype)


def compile_kernels() -> None:
    """Compile (or load from numba's on-disk cache) the alignment kernel now, on a tiny input.

    Parallel jobs started after this call only read the cache: processes that compile the same kernel for the
    first time at the same moment race on numba's cache index, which can leave it corrupt (a later process may
    then crash on loading it).
    """
    if numba is None:
        return
    mask = torch.ones(1, 2, 3)
    maximum_path(torch.zeros(1, 2, 3), mask)
