"""Pure-PyTorch selective scan with a hand-written backward (the fallback of the numba kernels).

The same algorithm as :mod:`recbole_sigma.ops._scan_numba`, vectorised over the batch by torch:
the time loop works on ``(batch, d_inner, d_state)`` temporaries. Autograd never sees the loop, so
nothing of size ``(batch, L, d_inner, d_state)`` is kept: the forward stores the state every
``chunk`` steps (only when a gradient is needed) and the backward recomputes each chunk's states
from its checkpoint before running the reverse-time recurrence over it.

Works on any device and float dtype. Shapes as in :mod:`recbole_sigma.ops.selective_scan`.
"""
import math

import torch
import torch.nn.functional as F


def _chunk_size(length):
    """~sqrt(L) balances the stored checkpoints (L / chunk) against one chunk's states."""
    return max(1, math.isqrt(max(length - 1, 0)) + 1)


def _discretize(delta, delta_bias, delta_softplus):
    """dt = softplus(delta + delta_bias) (or delta + delta_bias): (batch, L, d_inner)."""
    if delta_bias is not None:
        delta = delta + delta_bias
    return F.softplus(delta) if delta_softplus else delta


def _gate(y, u, D, z):
    """out = (y + D u) * silu(z): (batch, L, d_inner)."""
    if D is not None:
        y = y + u * D
    return y * F.silu(z) if z is not None else y


def _step(h, dt_t, dtu_t, A, B_t):
    """h <- exp(dt A) h + dt B u in place, and returns exp(dt A).
    h, the result: (batch, d, n); dt_t, dtu_t: (batch, d); B_t: (batch, n)."""
    decay = torch.exp(dt_t[:, :, None] * A)
    h.mul_(decay).addcmul_(dtu_t[:, :, None], B_t[:, None, :])
    return decay


def _contract_state(h, v):
    """sum_n h[b, d, n] v[b, n]: (batch, d) (faster than bmm for these shapes)."""
    return (h * v[:, None, :]).sum(-1)


def _scan(dt, dtu, A, B, C, chunk=None):
    """The recurrence: y (batch, L, d_inner) and, if chunk is given, the states entering every
    chunk (a list of (batch, d, n))."""
    batch, length, d_inner = dt.shape
    h = dt.new_zeros(batch, d_inner, A.shape[1])
    ys, checkpoints = [], []
    for t in range(length):
        if chunk is not None and t % chunk == 0:
            checkpoints.append(h.clone())
        _step(h, dt[:, t], dtu[:, t], A, B[:, t])
        ys.append(_contract_state(h, C[:, t]))
    y = torch.stack(ys, dim=1) if ys else dt.new_zeros(batch, 0, d_inner)
    return y, checkpoints


def _recompute_chunk(h, dt, dtu, A, B, C, gy, t0, t1, dC):
    """For t in [t0, t1): the states h_{t-1} and decay factors exp(dt_t A) (two lists of
    (batch, d, n)) and y_t (batch, t1 - t0, d); fills dC[:, t] = sum_d gy_t h_t."""
    h = h.clone()
    h_prev, decays, ys = [], [], []
    for t in range(t0, t1):
        h_prev.append(h.clone())
        decays.append(_step(h, dt[:, t], dtu[:, t], A, B[:, t]))
        ys.append(_contract_state(h, C[:, t]))
        dC[:, t] = torch.bmm(gy[:, t, None, :], h)[:, 0]
    return h_prev, decays, torch.stack(ys, dim=1)


def _gate_grad_z(g, y, u, D, z):
    """dL/dz through out = (y + D u) * silu(z), given g = dL/dout (None without z)."""
    if z is None:
        return None
    sig = torch.sigmoid(z)
    ys = y + u * D if D is not None else y
    return g * ys * sig * (1 + z * (1 - sig))


class SelectiveScanTorch(torch.autograd.Function):
    """The fallback scan as an autograd Function (once differentiable)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, needs_grad):
        dt = _discretize(delta, delta_bias, delta_softplus)
        chunk = _chunk_size(u.shape[1]) if needs_grad else None
        y, checkpoints = _scan(dt, dt * u, A, B, C, chunk)
        ctx.delta_softplus = delta_softplus
        ctx.chunk = chunk
        ctx.checkpoints = checkpoints
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
        return _gate(y, u, D, z)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gout):
        u, delta, A, B, C, D, z, delta_bias = ctx.saved_tensors
        checkpoints, chunk = ctx.checkpoints, ctx.chunk
        gout = gout.contiguous()
        dt = _discretize(delta, delta_bias, ctx.delta_softplus)
        dtu = dt * u
        gy = gout * F.silu(z) if z is not None else gout
        batch, length, d_inner = u.shape
        dB, dC = torch.empty_like(B), torch.empty_like(C)
        ddt, du = torch.empty_like(dt), torch.empty_like(u)
        dA = A.new_zeros(batch, *A.shape)  # per batch element, summed at the end
        y = torch.empty_like(u)
        dh = u.new_zeros(batch, d_inner, A.shape[1])
        for c in range(len(checkpoints) - 1, -1, -1):
            t0, t1 = c * chunk, min(length, (c + 1) * chunk)
            h_prev, decays, y[:, t0:t1] = _recompute_chunk(checkpoints[c], dt, dtu, A, B, C, gy,
                                                           t0, t1, dC)
            for t in range(t1 - 1, t0 - 1, -1):
                decay = decays[t - t0]
                dh.addcmul_(gy[:, t, :, None], C[:, t, None, :])    # dL/dh_t: (batch, d, n)
                w = torch.mul(dh, h_prev[t - t0]).mul_(decay)        # dL/d(dt A)
                dA.addcmul_(w, dt[:, t, :, None])
                s = _contract_state(dh, B[:, t])                     # (batch, d)
                ddt[:, t] = (w * A).sum(-1) + u[:, t] * s
                du[:, t] = dt[:, t] * s
                dB[:, t] = torch.bmm(dtu[:, t, None, :], dh)[:, 0]  # (batch, n)
                dh.mul_(decay)                                       # dL/dh_{t-1} (partial)
        dA = dA.sum(0)
        return _input_grads(ctx, gout, gy, y, u, delta, D, z, delta_bias, ddt, du, dA, dB, dC)


def _input_grads(ctx, gout, gy, y, u, delta, D, z, delta_bias, ddt, du, dA, dB, dC):
    """Assemble the gradients of (u, delta, A, B, C, D, z, delta_bias) (and None for the flags)."""
    dz = _gate_grad_z(gout, y, u, D, z)
    if D is not None:
        du = du + gy * D
    dD = (gy * u).sum((0, 1)) if D is not None else None
    if ctx.delta_softplus:
        pre = delta + delta_bias if delta_bias is not None else delta
        ddt = ddt * torch.sigmoid(pre)
    ddelta_bias = ddt.sum((0, 1)) if delta_bias is not None else None
    return du, ddt, dA, dB, dC, dD, dz, ddelta_bias, None, None


def needs_grad(args):
    """Whether autograd will differentiate through a call with these arguments."""
    return torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in args)


def selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                         delta_softplus=False):
    """The pure-PyTorch scan (same signature and semantics as ``selective_scan``)."""
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return SelectiveScanTorch.apply(*args, needs_grad(args))
