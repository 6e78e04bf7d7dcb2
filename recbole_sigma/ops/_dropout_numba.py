"""Fused numba kernel of :mod:`recbole_sigma.ops.dropout`: ``out = x * keep / (1 - p)``.

Imported lazily by :mod:`recbole_sigma.ops.dropout` (never at package import): importing this
module imports numba.

The keep/drop decisions come from a counter-based hash, not from a stored mask: element ``i`` of
the flattened (row-major) tensor reads 16-bit lane ``i % 4`` of ``splitmix64(key + (i // 4) *
GOLDEN)``, ``key = splitmix64(seed)``, and is kept when that lane is below ``threshold =
round((1 - p) * 2**16)``. Each decision depends on (seed, i) only: the result is the same on any
number of threads, and the backward recomputes the same mask from the same seed (the operator is
diagonal, so its backward is the same kernel applied to the incoming gradient).

The tensor is cut into blocks of ``BLOCK`` elements (a multiple of 4, so that no hash is shared
by two blocks) which ``prange`` splits among the threads.
"""
import numpy as np
from numba import njit, prange

KERNEL_OPTIONS = dict(parallel=True, cache=True, nogil=True, error_model="numpy")

BLOCK = 1 << 14
LANE_BITS = 16

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S16, _S27, _S30, _S31, _S32, _S48 = (np.uint64(s) for s in (16, 27, 30, 31, 32, 48))
_LANE = np.uint64(0xFFFF)


@njit(cache=True, inline="always")
def _mix(z):
    """The splitmix64 finaliser (a bijection of uint64 with good avalanche)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(**KERNEL_OPTIONS)
def dropout_apply(x, out, seed, threshold, scale):
    """out[i] = x[i] * (scale if element i is kept else 0), x and out 1-d contiguous, seed and
    threshold uint64, scale of x's dtype."""
    n = x.size
    key = _mix(seed + _GOLDEN)
    zero = scale - scale
    for block in prange((n + BLOCK - 1) // BLOCK):
        start = block * BLOCK
        stop = min(start + BLOCK, n)
        for j in range(start // 4, stop // 4):
            h = _mix(key + np.uint64(j) * _GOLDEN)
            i = 4 * j
            out[i] = x[i] * (scale if (h & _LANE) < threshold else zero)
            out[i + 1] = x[i + 1] * (scale if ((h >> _S16) & _LANE) < threshold else zero)
            out[i + 2] = x[i + 2] * (scale if ((h >> _S32) & _LANE) < threshold else zero)
            out[i + 3] = x[i + 3] * (scale if (h >> _S48) < threshold else zero)
        for i in range(stop - (stop & 3), stop):  # the tensor's last n % 4 elements
            h = _mix(key + np.uint64(i >> 2) * _GOLDEN)
            lane = (h >> np.uint64(LANE_BITS * (i & 3))) & _LANE
            out[i] = x[i] * (scale if lane < threshold else zero)
