"""Selective scan (the S6 recurrence of Mamba) for CPU tensors, channel-last layout.

Semantics are those of ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn`` with the
(batch, L, channels) layout that the CPU path of :class:`recbole_sigma.mamba.Mamba` produces:

    delta'  = softplus(delta + delta_bias)            if delta_softplus else delta + delta_bias
    h_t     = exp(delta'_t * A) * h_{t-1} + delta'_t * B_t * u_t      h: (d_inner, d_state)
    y_t     = h_t @ C_t + D * u_t
    y_t     = y_t * silu(z_t)                                          if z is given

Shapes: u, delta, z: (batch, L, d_inner); A: (d_inner, d_state); B, C: (batch, L, d_state);
D, delta_bias: (d_inner,). Returns y: (batch, L, d_inner).

Implementations, picked per call by :func:`selective_scan`:

* fused numba kernels (:mod:`._scan_numba`), for float32/float64 CPU tensors. numba is imported
  on the first call, not at package import; each dtype compiles once (~10 s, ~1 s from numba's
  on-disk cache).
* a pure-PyTorch autograd Function with a hand-written backward (:mod:`._scan_torch`), for other
  devices and dtypes, when numba is missing or fails to compile (one warning), or when the
  environment variable ``RECBOLE_SIGMA_FUSED_SCAN=0`` is set.

Neither allocates anything of size (batch, L, d_inner, d_state): for the backward they keep the
state every few steps, the fused kernels every ``_CHUNK_BYTES / (2 d_state d_inner itemsize)``
steps (32 in float32 at d_state 32, d_inner 128), the fallback every ~sqrt(L) steps. The kernels
run on ``torch.get_num_threads()`` threads (within numba's maximum), which take the batch's
sequences one at a time.
"""

import numpy as np
import torch
import torch.nn.functional as F

from recbole_sigma.ops import _numba
from recbole_sigma.ops._numba import ENV_SWITCH  # noqa: F401  (the switch, named here too)
from recbole_sigma.ops._scan_torch import needs_grad as _needs_grad
from recbole_sigma.ops._scan_torch import selective_scan_torch

_FUSED_DTYPES = (torch.float32, torch.float64)
_LOW_PRECISION = (torch.float16, torch.bfloat16)
_CHUNK_BYTES = 1 << 20  # one backward chunk of states + decay factors, per thread

_KERNELS = _numba.KernelModule("recbole_sigma.ops._scan_numba", "fused selective scan",
                               "using the slower PyTorch fallback")


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Step-by-step reference, in the dtype of its inputs (tests run it in float64)."""
    if delta_bias is not None:
        delta = delta + delta_bias
    if delta_softplus:
        delta = F.softplus(delta)
    batch, length, d_inner = u.shape
    h = u.new_zeros(batch, d_inner, A.shape[1])
    ys = []
    for t in range(length):
        dt = delta[:, t, :, None]  # (batch, d_inner, 1)
        h = torch.exp(dt * A) * h + dt * B[:, t, None, :] * u[:, t, :, None]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, t]))
    y = torch.stack(ys, dim=1)  # (batch, L, d_inner)
    if D is not None:
        y = y + u * D
    if z is not None:
        y = y * F.silu(z)
    return y


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The CPU selective scan used by the Mamba block's PyTorch path (see the module docstring).

    Differentiable in u, delta, A, B, C, D, z and delta_bias (once; no double backward). Mixed
    dtypes are promoted; float16/bfloat16 inputs are computed in float32 and the result cast back.
    """
    tensors = _common_dtype(u, delta, A, B, C, D, z, delta_bias)
    args = (*tensors, delta_softplus)
    needs_grad = _needs_grad(args)
    if _use_fused(tensors) and _compile(tensors[0].dtype, needs_grad):
        out = SelectiveScanFused.apply(*args, needs_grad)
    else:
        out = selective_scan_torch(*args)
    return out.to(u.dtype) if u.dtype in _LOW_PRECISION else out


def fused_scan_available():
    """Whether :func:`selective_scan` runs the numba kernels on float32/float64 CPU tensors.

    False when ``RECBOLE_SIGMA_FUSED_SCAN=0``, when numba cannot be imported, or after a kernel
    failed to compile (known after the first call with that dtype). Imports numba.
    """
    return _numba.switched_on() and _KERNELS.load() is not None


def _common_dtype(*tensors):
    """The tensors (None kept) in one dtype: the promoted one, float32 instead of a 16-bit one."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        if t is not None:
            dtype = torch.promote_types(dtype, t.dtype)
    if dtype in _LOW_PRECISION:
        dtype = torch.float32
    return [t.to(dtype) if t is not None else None for t in tensors]


def _use_fused(tensors):
    """The kernels take float32/float64 CPU tensors (others go to the fallback)."""
    return (tensors[0].dtype in _FUSED_DTYPES
            and all(t.device.type == "cpu" for t in tensors if t is not None)
            and fused_scan_available())


# ---------------------------------------------------------------------------------------------
# Compiling the kernels (first call per dtype)
# ---------------------------------------------------------------------------------------------
def _compile(dtype, backward):
    """Compile (or load from numba's cache) the kernels for `dtype` by running them once on a
    tiny input; on failure warn once and use the fallback from then on. True if they run."""
    names = ("scan_forward", "scan_backward") if backward else ("scan_forward",)
    return all(_KERNELS.compile((name, dtype), lambda: _tiny_call(name, dtype), name) for name in names)


def _tiny_call(name, dtype):
    """Run kernel `name` on a (batch 1, L 2, d_inner 1, d_state 1) input with the argument types
    of a real call, which triggers its compilation."""
    shapes = ((1, 2, 1), (1, 2, 1), (1, 1), (1, 2, 1), (1, 2, 1), (1,), (1, 2, 1), (1,))
    inputs = _prepare(*(torch.zeros(shape, dtype=dtype) for shape in shapes))
    out, checkpoints, chunk = _forward(inputs, True, True, save_checkpoints=True)
    if name == "scan_backward":
        _backward(inputs, checkpoints, chunk, True, True, torch.zeros_like(out))


# ---------------------------------------------------------------------------------------------
# The fused autograd Function
# ---------------------------------------------------------------------------------------------
class SelectiveScanFused(torch.autograd.Function):
    """Numba forward and backward (once differentiable). Call it through :func:`selective_scan`,
    which compiles the kernels first."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, needs_grad):
        inputs = _prepare(u, delta, A, B, C, D, z, delta_bias)
        out, checkpoints, chunk = _forward(inputs, delta_softplus, z is not None,
                                           save_checkpoints=needs_grad)
        ctx.delta_softplus, ctx.chunk = delta_softplus, chunk
        ctx.has = (D is not None, z is not None, delta_bias is not None)
        ctx.save_for_backward(*inputs, checkpoints)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gout):
        *inputs, checkpoints = ctx.saved_tensors
        grads = _backward(inputs, checkpoints, ctx.chunk, ctx.delta_softplus, ctx.has[1],
                          gout.contiguous())
        return _select_grads(grads, ctx.has)


def _prepare(u, delta, A, B, C, D, z, delta_bias):
    """Contiguous inputs for the kernels; A transposed to (N, D); missing D, bias zeroed and a
    missing z replaced by u (then never read)."""
    u, delta, B, C = (t.contiguous() for t in (u, delta, B, C))
    d_inner = u.shape[-1]
    A_T = A.t().contiguous()  # (N, D)
    D = D.contiguous() if D is not None else u.new_zeros(d_inner)
    delta_bias = delta_bias.contiguous() if delta_bias is not None else u.new_zeros(d_inner)
    z = z.contiguous() if z is not None else u
    _check_shapes(u, delta, A_T, B, C, D, z, delta_bias)
    return u, delta, A_T, B, C, D, z, delta_bias


def _check_shapes(u, delta, A_T, B, C, D, z, delta_bias):
    batch, length, d_inner = u.shape
    d_state = A_T.shape[0]
    expected = [(delta, u.shape), (z, u.shape), (A_T, (d_state, d_inner)),
                (B, (batch, length, d_state)), (C, (batch, length, d_state)),
                (D, (d_inner,)), (delta_bias, (d_inner,))]
    for tensor, shape in expected:
        if tuple(tensor.shape) != tuple(shape):
            raise ValueError(f"selective_scan: got a tensor of shape {tuple(tensor.shape)}, "
                             f"expected {tuple(shape)}")


def _numpy(*tensors):
    return [t.detach().numpy() for t in tensors]


def _chunk_steps(length, d_state, d_inner, itemsize):
    """Time steps per backward chunk: its states and decay factors take ~_CHUNK_BYTES."""
    return max(1, min(length, _CHUNK_BYTES // (2 * d_state * d_inner * itemsize)))


def _n_workers(batch):
    """Threads to run a kernel on: torch's count, within numba's maximum and the batch."""
    return max(1, min(batch, _numba.set_threads()))


def _counter():
    """The kernels' work counter: the next sequence to take."""
    return np.zeros(1, dtype=np.int64)


def _forward(inputs, delta_softplus, has_z, save_checkpoints):
    """out (batch, L, D), the checkpoints (batch, n_chunks - 1, N, D) (empty if not saved) and
    the chunk length."""
    u, A_T = inputs[0], inputs[2]
    (batch, length, d_inner), d_state = u.shape, A_T.shape[0]
    chunk = _chunk_steps(length, d_state, d_inner, u.element_size())
    n_saved = max(0, (length - 1) // chunk) if save_checkpoints else 0
    checkpoints = u.new_empty(batch if n_saved else 0, n_saved, d_state, d_inner)
    out = torch.empty_like(u)
    _KERNELS.module.scan_forward(_n_workers(batch), _counter(), *_numpy(*inputs), delta_softplus, has_z,
                                  out.numpy(), checkpoints.numpy(), chunk)
    return out, checkpoints, chunk


def _backward(inputs, checkpoints, chunk, delta_softplus, has_z, gout):
    """Gradients (du, ddelta, dA, dB, dC, dD, dz, ddelta_bias) of the fused scan."""
    u, delta, A_T, B, C = inputs[:5]
    (batch, _, d_inner), d_state = u.shape, A_T.shape[0]
    du, ddelta, dz = torch.empty_like(u), torch.empty_like(u), torch.empty_like(u)
    dB, dC = torch.empty_like(B), torch.empty_like(C)
    n_workers = _n_workers(batch)
    dA_T = u.new_empty(n_workers, d_state, d_inner)  # per-worker partial sums
    dD, dbias = u.new_empty(n_workers, d_inner), u.new_empty(n_workers, d_inner)
    _KERNELS.module.scan_backward(n_workers, *_numpy(*inputs), delta_softplus, has_z,
                           gout.numpy(), checkpoints.numpy(), chunk,
                           *_numpy(du, ddelta, dB, dC, dz, dA_T, dD, dbias))
    return du, ddelta, dA_T.sum(0).t().contiguous(), dB, dC, dD.sum(0), dz, dbias.sum(0)


def _select_grads(grads, has):
    """Drop the gradients of the optional inputs that were None; None for the two flags."""
    du, ddelta, dA, dB, dC, dD, dz, dbias = grads
    has_D, has_z, has_bias = has
    return (du, ddelta, dA, dB, dC, dD if has_D else None, dz if has_z else None,
            dbias if has_bias else None, None, None)
