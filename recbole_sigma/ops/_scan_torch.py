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
    """h <- exp(dt A) h + dt B u in place; h: (batch, d, n), dt_t, dtu_t: (batch, d), B_t: (batch, n).
    Returns the decay factor exp(dt A): (batch, d, n)."""
    decay = torch.exp(dt_t[:, :, None] * A)
    h.mul_(decay).add_(dtu_t[:, :, None] * B_t[:, None, :])
    return decay


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
        ys.append(torch.bmm(h, C[:, t, :, None])[..., 0])  # (batch, d)
    return torch.stack(ys, dim=1), checkpoints


def _recompute_chunk(h, dt, dtu, A, B, C, gy, t0, t1, dC):
    """States h_{t-1} for t in [t0, t1) (a list), y_t (batch, t1 - t0, d); fills dC[:, t]."""
    h = h.clone()
    h_prev, ys = [], []
    for t in range(t0, t1):
        h_prev.append(h.clone())
        _step(h, dt[:, t], dtu[:, t], A, B[:, t])
        ys.append(torch.bmm(h, C[:, t, :, None])[..., 0])
        dC[:, t] = torch.bmm(gy[:, t, None, :], h)[:, 0]
    return h_prev, torch.stack(ys, dim=1)


def _gate_backward(g, y, u, D, z):
    """Through out = (y + D u) * silu(z): gy = dL/dy, dz (or None)."""
    if z is None:
        return g, None
    sig = torch.sigmoid(z)
    ys = y + u * D if D is not None else y
    dz = g * ys * sig * (1 + z * (1 - sig))
    return g * z * sig, dz


class SelectiveScanTorch(torch.autograd.Function):
    """The fallback scan as an autograd Function (once differentiable)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        dt = _discretize(delta, delta_bias, delta_softplus)
        chunk = _chunk_size(u.shape[1]) if any(ctx.needs_input_grad) else None
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
        ctx.checkpoints = None
        gout = gout.contiguous()
        dt = _discretize(delta, delta_bias, ctx.delta_softplus)
        dtu = dt * u
        gy = gout * F.silu(z) if z is not None else gout
        batch, length, d_inner = u.shape
        dB, dC = torch.empty_like(B), torch.empty_like(C)
        ddt, du = torch.empty_like(dt), torch.empty_like(u)
        dA = torch.zeros_like(A)
        y = torch.empty_like(u)
        dh = u.new_zeros(batch, d_inner, A.shape[1])
        for c in range(len(checkpoints) - 1, -1, -1):
            t0, t1 = c * chunk, min(length, (c + 1) * chunk)
            h_prev, y[:, t0:t1] = _recompute_chunk(checkpoints[c], dt, dtu, A, B, C, gy, t0, t1, dC)
            for t in range(t1 - 1, t0 - 1, -1):
                dh.add_(gy[:, t, :, None] * C[:, t, None, :])          # (batch, d, n)
                decay = torch.exp(dt[:, t, :, None] * A)
                w = dh * h_prev[t - t0] * decay
                q = (w * A).sum(-1)                                   # (batch, d)
                dA.add_(torch.einsum("bdn,bd->dn", w, dt[:, t]))
                s = torch.bmm(dh, B[:, t, :, None])[..., 0]           # (batch, d)
                dB[:, t] = torch.bmm(dtu[:, t, None, :], dh)[:, 0]   # (batch, n)
                ddt[:, t] = q + u[:, t] * s
                du[:, t] = dt[:, t] * s
                dh.mul_(decay)
        return _input_grads(ctx, gout, gy, y, u, delta, D, z, delta_bias, ddt, du, dA, dB, dC)


def _input_grads(ctx, gout, gy, y, u, delta, D, z, delta_bias, ddt, du, dA, dB, dC):
    """Assemble the gradients of (u, delta, A, B, C, D, z, delta_bias, delta_softplus)."""
    _, dz = _gate_backward(gout, y, u, D, z)
    if D is not None:
        du = du + gy * D
    dD = (gy * u).sum((0, 1)) if D is not None else None
    if ctx.delta_softplus:
        pre = delta + delta_bias if delta_bias is not None else delta
        ddt = ddt * torch.sigmoid(pre)
    ddelta_bias = ddt.sum((0, 1)) if delta_bias is not None else None
    return du, ddt, dA, dB, dC, dD, dz, ddelta_bias, None


def selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                         delta_softplus=False):
    """The pure-PyTorch scan (same signature and semantics as ``selective_scan``)."""
    return SelectiveScanTorch.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
