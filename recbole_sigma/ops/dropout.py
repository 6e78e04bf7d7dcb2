"""Dropout for CPU training: a fused numba kernel with a counter-based RNG and no stored mask.

:class:`Dropout` replaces ``nn.Dropout`` (same constructor, attributes, ``repr`` and state dict:
none). In ``eval()`` or with ``p == 0`` it returns its input. In training, on float32/float64
CPU tensors, it runs the kernel of :mod:`._dropout_numba`: ``out = x * keep / (1 - p)``, with the
keep/drop decision of each element a hash of (seed, element index). The seed is drawn from
torch's default CPU generator at every call, so ``torch.manual_seed`` (RecBole's ``init_seed``)
makes runs bit-identical, on any number of threads. The backward recomputes the mask from the
seed instead of keeping it: nothing of the input's size is saved for it.

The decisions use 16-bit lanes: the keep probability is ``round((1 - p) * 2**16) / 2**16``, within
``2**-17`` (7.6e-6) of ``1 - p``; kept values are scaled by ``1 / (1 - p)`` exactly as given.

``torch.nn.functional.dropout`` runs instead on other devices and dtypes, with ``inplace=True``,
when numba is missing or the kernel fails to compile (one warning), or when
``RECBOLE_SIGMA_FUSED_SCAN=0`` (the switch of every fused kernel, see :mod:`._numba`). numba is
imported on the first training call, not at package import; the kernel compiles once per dtype
(a few seconds, well under one from numba's on-disk cache).
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbole_sigma.ops import _numba

_FUSED_DTYPES = (torch.float32, torch.float64)
_LANE_RANGE = 1 << 16   # the kernel's decisions are 16-bit lanes
_SEED_BOUND = 1 << 62

_KERNELS = _numba.KernelModule("recbole_sigma.ops._dropout_numba", "fused dropout",
                               "using torch.nn.functional.dropout")


class Dropout(nn.Dropout):
    """``nn.Dropout(p, inplace)`` with the fused CPU kernel (see the module docstring).

    A subclass of ``nn.Dropout``: same ``p`` / ``inplace`` attributes, ``extra_repr`` and empty
    state dict, and code looking for ``nn.Dropout`` modules still finds it.
    """

    def forward(self, input):
        return dropout(input, self.p, self.training, self.inplace)


def dropout(input, p=0.5, training=True, inplace=False):
    """``F.dropout`` with the fused kernel on float32/float64 CPU tensors (when not in place).
    Returns `input` itself when not training or when ``p == 0``."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    if inplace or not _use_fused(input):
        return F.dropout(input, p, training, inplace)
    seed = int(torch.randint(0, _SEED_BOUND, (1,)).item())
    return _FusedDropout.apply(input, *_parameters(seed, p, input.dtype))


def fused_dropout_available():
    """Whether :func:`dropout` runs the numba kernel on float32/float64 CPU tensors: False when
    ``RECBOLE_SIGMA_FUSED_SCAN=0``, when numba cannot be imported, or after the kernel failed to
    compile (known after the first call with that dtype). Imports numba."""
    return _numba.switched_on() and _KERNELS.load() is not None


def _use_fused(input):
    return (input.dtype in _FUSED_DTYPES and input.device.type == "cpu"
            and input.layout == torch.strided and fused_dropout_available()
            and _compile(input.dtype))


def _parameters(seed, p, dtype):
    """The kernel's (seed, threshold, scale): keep an element when its 16-bit lane is below the
    threshold; scale 0 when everything is dropped (p == 1), as F.dropout gives zeros."""
    threshold = min(_LANE_RANGE, max(0, round((1.0 - p) * _LANE_RANGE)))
    numpy_dtype = np.float32 if dtype == torch.float32 else np.float64
    scale = numpy_dtype(1.0 / (1.0 - p)) if p < 1 else numpy_dtype(0.0)
    return np.uint64(seed), np.uint64(threshold), scale


def _apply(tensor, seed, threshold, scale):
    """tensor * mask * scale, a new contiguous tensor of tensor's shape and dtype."""
    source = tensor.detach().contiguous()
    out = torch.empty_like(source, memory_format=torch.contiguous_format)
    _numba.set_threads()
    _KERNELS.module.dropout_apply(source.view(-1).numpy(), out.view(-1).numpy(), seed, threshold, scale)
    return out


class _FusedDropout(torch.autograd.Function):
    """x * mask * scale. Linear and diagonal: its backward is itself, with the same mask, so it
    is differentiable any number of times."""

    @staticmethod
    def forward(ctx, input, seed, threshold, scale):
        ctx.parameters = (seed, threshold, scale)
        return _apply(input, seed, threshold, scale)

    @staticmethod
    def backward(ctx, grad_output):
        return _FusedDropout.apply(grad_output, *ctx.parameters), None, None, None


# ---------------------------------------------------------------------------------------------
# Loading and compiling the kernel
# ---------------------------------------------------------------------------------------------
def _compile(dtype):
    """Compile (or load from numba's cache) the kernel for `dtype` by running it on a tiny input;
    on failure warn once and use F.dropout from then on. True if it runs."""
    return _KERNELS.compile(dtype, lambda: _apply(torch.zeros(5, dtype=dtype), *_parameters(0, 0.5, dtype)),
                            "dropout_apply")
