"""Fused numba kernels of the selective scan (forward and backward), channel-last layout.

Imported lazily by :mod:`recbole_sigma.ops.selective_scan` (never at package import): importing
this module imports numba. The kernels run one worker per thread (``prange``). The forward's
workers take the batch's sequences one at a time from an atomic counter (dynamic load balancing:
numba's OpenMP and workqueue layers split a ``prange`` statically); the backward's take fixed
blocks, so that their partial sums of the shared gradients add up in a fixed order. A worker keeps its state ``h`` as a
``(d_state, d_inner)`` scratch array (d_inner contiguous, so the inner loops run over channels
and vectorise without horizontal sums) and never allocates anything of size
``(batch, L, d_inner, d_state)``.

The forward (when a gradient will be needed) also stores the state entering every chunk of
``chunk`` time steps, ``(batch, ceil(L / chunk) - 1, d_state, d_inner)``. The backward, per batch
element, walks the chunks from the last: it recomputes the chunk's states and decay factors from
its checkpoint into a ``(chunk, d_state, d_inner)`` buffer that stays in cache, then runs the
reverse-time (adjoint) recurrence over it.

pip's llvmlite has no vector math library, so ``exp`` and ``log1p`` are small polynomials
(``_exp``, ``_log1p_unit``) that keep the loops vectorised; their relative error is ~1e-7 in
float32 and ~1e-15 in float64.

The math helpers live in this file on purpose: numba's on-disk cache is invalidated by changes to
the file of the cached function only, not to the files it calls into.
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# No nnan/ninf: inf and nan must survive (they flag a diverging model); no afn either.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}
KERNEL_OPTIONS = dict(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
INNER_OPTIONS = dict(cache=True, fastmath=FASTMATH, error_model="numpy", inline="never")
# The polynomials are written in the order they must be evaluated in: no reassociation.
MATH_OPTIONS = dict(fastmath={"contract", "nsz"}, error_model="numpy")


# ---------------------------------------------------------------------------------------------
# Vectorisable scalar math: exp, log1p on [0, 1], softplus, sigmoid.
# ---------------------------------------------------------------------------------------------
@intrinsic
def _bits_to_float32(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _bits_to_float64(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


def _exp(x):
    """exp(x): Cody-Waite reduction x = k ln2 + r, a Taylor polynomial in r, and 2**k by bits."""


def _log1p_unit(y):
    """log(1 + y) for y in [0, 1]: 2 atanh(s), s = y / (2 + y) <= 1/3 (no cancellation)."""


def _softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))."""


def _sigmoid(x):
    """1 / (1 + exp(-x))."""


def _numpy_float(numba_type):
    return np.float32 if numba_type == types.float32 else np.float64


@overload(_exp, jit_options=MATH_OPTIONS)
def _overload_exp(x):
    if x == types.float32:
        # degree 7: truncation 5e-9 on |r| <= ln2/2. Flushes to 0 below -87.3; from 88.38 on,
        # k = 128 makes the 2**k bits those of inf (true overflow is at 88.72).
        f = np.float32
        lo, hi, log2e = f(-87.3), f(88.7), f(1.4426950408889634)
        ln2_hi, ln2_lo = f(0.693359375), f(-2.12194440e-4)
        coefs = tuple(f(1.0 / c) for c in (5040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0))
        zero, half, bias, shift = f(0.0), f(0.5), np.int32(127), np.int32(23)

        def impl_f32(x):
            xc = min(max(x, lo), hi)
            k = np.floor(xc * log2e + half)
            r = (xc - k * ln2_hi) - k * ln2_lo
            p = zero
            for c in coefs:
                p = p * r + c
            y = p * _bits_to_float32((np.int32(k) + bias) << shift)
            return zero if x < lo else y

        return impl_f32
    if x == types.float64:
        # degree 12: truncation 1.5e-16. Flushes to 0 below -708; inf from 709.44 on (k = 1024).
        f = np.float64
        lo, hi, log2e = f(-708.0), f(709.8), f(1.4426950408889634)
        ln2_hi, ln2_lo = f(6.93147180369123816490e-01), f(1.90821492927058770002e-10)
        fact = [1.0]
        for i in range(1, 13):
            fact.append(fact[-1] * i)
        coefs = tuple(f(1.0 / fact[i]) for i in range(12, -1, -1))
        zero, half, bias, shift = f(0.0), f(0.5), np.int64(1023), np.int64(52)

        def impl_f64(x):
            xc = min(max(x, lo), hi)
            k = np.floor(xc * log2e + half)
            r = (xc - k * ln2_hi) - k * ln2_lo
            p = zero
            for c in coefs:
                p = p * r + c
            y = p * _bits_to_float64((np.int64(k) + bias) << shift)
            return zero if x < lo else y

        return impl_f64
    return None


@overload(_log1p_unit, jit_options=MATH_OPTIONS)
def _overload_log1p_unit(y):
    if not isinstance(y, types.Float):
        return None
    f = _numpy_float(y)
    n_terms = 8 if y == types.float32 else 16  # (1/9)**k / (2k+1) below the dtype's epsilon
    coefs = tuple(f(1.0 / (2 * k + 1)) for k in range(n_terms - 1, -1, -1))
    zero, two = f(0.0), f(2.0)

    def impl(y):
        s = y / (two + y)
        s2 = s * s
        p = zero
        for c in coefs:
            p = p * s2 + c
        return two * s * p

    return impl


@overload(_softplus, jit_options=MATH_OPTIONS)
def _overload_softplus(x):
    if not isinstance(x, types.Float):
        return None
    zero = _numpy_float(x)(0.0)

    def impl(x):
        return max(x, zero) + _log1p_unit(_exp(-abs(x)))

    return impl


@overload(_sigmoid, jit_options=MATH_OPTIONS)
def _overload_sigmoid(x):
    if not isinstance(x, types.Float):
        return None
    one = _numpy_float(x)(1.0)

    def impl(x):
        return one / (one + _exp(-x))

    return impl


@njit(**INNER_OPTIONS)
def _math_check(x, out_exp, out_softplus, out_sigmoid):
    """Elementwise exp, softplus and sigmoid of a 1-d array (for the tests of the polynomials)."""
    for i in range(x.shape[0]):
        out_exp[i] = _exp(x[i])
        out_softplus[i] = _softplus(x[i])
        out_sigmoid[i] = _sigmoid(x[i])


# ---------------------------------------------------------------------------------------------
# Per-time-step inner loops (plain njit functions called from the prange body: they vectorise
# better than inlined bodies). Shapes: h, dh, AT, h_prev, decay, dAT: (N, D); Bt, Ct: (N,);
# every other vector is (D,).
# ---------------------------------------------------------------------------------------------
@njit(**INNER_OPTIONS)
def _discretize(delta_t, u_t, bias, softplus, dt, dtu):
    """dt = softplus(delta + bias) (or delta + bias); dtu = dt * u."""
    if softplus:
        for d in range(dt.shape[0]):
            v = _softplus(delta_t[d] + bias[d])
            dt[d] = v
            dtu[d] = v * u_t[d]
    else:
        for d in range(dt.shape[0]):
            v = delta_t[d] + bias[d]
            dt[d] = v
            dtu[d] = v * u_t[d]


@njit(**INNER_OPTIONS)
def _advance_output(h, AT, dt, dtu, Bt, Ct, y):
    """h <- exp(dt A) h + dt B u;  y = h C."""
    y[:] = 0
    for n in range(h.shape[0]):
        b = Bt[n]
        c = Ct[n]
        for d in range(h.shape[1]):
            v = _exp(dt[d] * AT[n, d]) * h[n, d] + dtu[d] * b
            h[n, d] = v
            y[d] += v * c


@njit(**INNER_OPTIONS)
def _advance_record(h, AT, dt, dtu, Bt, Ct, gy, h_prev, decay, y, dC_t):
    """Like _advance_output, also recording h_{t-1} and exp(dt A), and dC_t = sum_d gy h_t."""
    y[:] = 0
    for n in range(h.shape[0]):
        b = Bt[n]
        c = Ct[n]
        acc = h.dtype.type(0)
        for d in range(h.shape[1]):
            a = _exp(dt[d] * AT[n, d])
            hp = h[n, d]
            h_prev[n, d] = hp
            decay[n, d] = a
            v = a * hp + dtu[d] * b
            h[n, d] = v
            y[d] += v * c
            acc += gy[d] * v
        dC_t[n] = acc


@njit(**INNER_OPTIONS)
def _gate_forward(y, u_t, Dv, z_t, has_z, out_t):
    """out = (y + D u) * silu(z)."""
    if has_z:
        for d in range(y.shape[0]):
            zv = z_t[d]
            out_t[d] = (y[d] + Dv[d] * u_t[d]) * (zv * _sigmoid(zv))
    else:
        for d in range(y.shape[0]):
            out_t[d] = y[d] + Dv[d] * u_t[d]


@njit(**INNER_OPTIONS)
def _gate_backward(g_t, gy, y, u_t, Dv, z_t, has_z, dz_t, du_t, dD):
    """Through out = (y + D u) * silu(z), given gy = dL/dy: dz, du = gy D, dD += gy u."""
    if has_z:
        one = y.dtype.type(1)
        for d in range(y.shape[0]):
            zv = z_t[d]
            sig = _sigmoid(zv)
            dz_t[d] = g_t[d] * (y[d] + Dv[d] * u_t[d]) * sig * (one + zv * (one - sig))
    for d in range(y.shape[0]):
        du_t[d] = gy[d] * Dv[d]
        dD[d] += gy[d] * u_t[d]


@njit(**INNER_OPTIONS)
def _gate_weights(g_t, z_t, has_z, gy):
    """gy = g * silu(z) (or g): the gradient reaching the SSM output y."""
    if has_z:
        for d in range(gy.shape[0]):
            zv = z_t[d]
            gy[d] = g_t[d] * zv * _sigmoid(zv)
    else:
        for d in range(gy.shape[0]):
            gy[d] = g_t[d]


@njit(**INNER_OPTIONS)
def _reverse_step(dh, h_prev, decay, AT, dt, dtu, gy, Bt, Ct, q, s, dAT, dB_t):
    """One adjoint step: dh_t = dh + gy C; q = sum_n dh_t h_{t-1} a A; s = sum_n dh_t B;
    dA += dh_t h_{t-1} a dt; dB_t = sum_d dh_t dt u; dh <- a dh_t (the adjoint of h_{t-1})."""
    q[:] = 0
    s[:] = 0
    for n in range(dh.shape[0]):
        b = Bt[n]
        c = Ct[n]
        acc = dh.dtype.type(0)
        for d in range(dh.shape[1]):
            g = dh[n, d] + gy[d] * c
            a = decay[n, d]
            w = g * h_prev[n, d] * a
            q[d] += w * AT[n, d]
            dAT[n, d] += w * dt[d]
            s[d] += g * b
            acc += g * dtu[d]
            dh[n, d] = a * g
        dB_t[n] = acc


@njit(**INNER_OPTIONS)
def _delta_backward(q, s, u_t, dt, delta_t, bias, softplus, du_t, ddelta_t, dbias):
    """d(dt) = q + u s; du += dt s; ddelta = d(dt) * sigmoid(delta + bias) under softplus."""
    for d in range(q.shape[0]):
        ddt = q[d] + u_t[d] * s[d]
        du_t[d] += dt[d] * s[d]
        if softplus:
            ddt = ddt * _sigmoid(delta_t[d] + bias[d])
        ddelta_t[d] = ddt
        dbias[d] += ddt


@intrinsic
def _next_sequence(typingctx, counter):
    """Atomically counter[0] += 1, returning the old value: the workers take the batch's
    sequences one at a time, so a core shared with other work delays the others little."""
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, [zero])
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", pointer, one, "monotonic")

    return types.int64(counter), codegen


@njit(**INNER_OPTIONS)
def _copy(src, dst):
    """dst[:] = src for (N, D) arrays (explicit loops: numba's array setitem is slow to compile)."""
    for n in range(src.shape[0]):
        for d in range(src.shape[1]):
            dst[n, d] = src[n, d]


@njit(**INNER_OPTIONS)
def _accumulate(src, dst):
    """dst += src for (N, D) arrays."""
    for n in range(src.shape[0]):
        for d in range(src.shape[1]):
            dst[n, d] += src[n, d]


# ---------------------------------------------------------------------------------------------
# Kernels: n_workers threads take the sequences one at a time from counter (int64 (1,), 0).
# u, delta, z, out, gout, du, ddelta, dz: (batch, L, D); AT: (N, D); Bm, Cm, dB, dC: (batch, L, N);
# Dv, bias: (D,); dAT_parts: (n_workers, N, D); dD_parts, dbias_parts: (n_workers, D): one
# partial sum per worker. z is a (batch, L, D) array even when has_z is False (then unread).
# ---------------------------------------------------------------------------------------------
@njit(**KERNEL_OPTIONS)
def scan_forward(n_workers, counter, u, delta, AT, Bm, Cm, Dv, z, bias, softplus, has_z, out,
                 checkpoints, chunk):
    """out = the scan; checkpoints[b, c] = the state entering chunk c + 1, i.e. h_{(c+1) chunk - 1}
    (checkpoints: (batch, n_chunks - 1, N, D), or (0, 0, 0, 0) to save none)."""
    batch, length, d_inner = u.shape
    d_state = AT.shape[0]
    save = checkpoints.shape[0] > 0
    for worker in prange(n_workers):
        h = np.empty((d_state, d_inner), dtype=u.dtype)
        dt = np.empty(d_inner, dtype=u.dtype)
        dtu = np.empty(d_inner, dtype=u.dtype)
        y = np.empty(d_inner, dtype=u.dtype)
        b = _next_sequence(counter)
        while b < batch:
            h[:] = 0
            for t in range(length):
                if save and t > 0 and t % chunk == 0:
                    _copy(h, checkpoints[b, t // chunk - 1])
                _discretize(delta[b, t], u[b, t], bias, softplus, dt, dtu)
                _advance_output(h, AT, dt, dtu, Bm[b, t], Cm[b, t], y)
                _gate_forward(y, u[b, t], Dv, z[b, t], has_z, out[b, t])
            b = _next_sequence(counter)


@njit(**KERNEL_OPTIONS)
def scan_backward(n_workers, u, delta, AT, Bm, Cm, Dv, z, bias, softplus, has_z, gout,
                  checkpoints, chunk, du, ddelta, dB, dC, dz, dAT_parts, dD_parts, dbias_parts):
    """Gradients, given the forward's checkpoints: per chunk (last first) recompute its states
    and decay factors, then run the adjoint recurrence over it.

    Unlike the forward, each worker takes a fixed contiguous block of sequences: its partial sums
    of dA, dD and dbias then add up in the same order on every run (bit-identical training for a
    given thread count), where taking sequences from the counter would reorder them."""
    batch, length, d_inner = u.shape
    d_state = AT.shape[0]
    n_chunks = (length + chunk - 1) // chunk
    for worker in prange(n_workers):
        dtype = u.dtype
        h = np.empty((d_state, d_inner), dtype=dtype)
        dh = np.empty((d_state, d_inner), dtype=dtype)
        h_prev = np.empty((chunk, d_state, d_inner), dtype=dtype)
        decay = np.empty((chunk, d_state, d_inner), dtype=dtype)
        dAT_seq = np.empty((d_state, d_inner), dtype=dtype)
        dt = np.empty((chunk, d_inner), dtype=dtype)
        dtu = np.empty((chunk, d_inner), dtype=dtype)
        gy = np.empty((chunk, d_inner), dtype=dtype)
        y = np.empty(d_inner, dtype=dtype)
        q = np.empty(d_inner, dtype=dtype)
        s = np.empty(d_inner, dtype=dtype)
        dAT_parts[worker, :, :] = 0
        dD_parts[worker, :] = 0
        dbias_parts[worker, :] = 0
        per_worker = (batch + n_workers - 1) // n_workers
        for b in range(worker * per_worker, min(batch, (worker + 1) * per_worker)):
            dh[:] = 0
            dAT_seq[:] = 0
            for c in range(n_chunks - 1, -1, -1):
                t0 = c * chunk
                t1 = min(length, t0 + chunk)
                if c == 0:
                    h[:] = 0
                else:
                    _copy(checkpoints[b, c - 1], h)
                for t in range(t0, t1):
                    i = t - t0
                    _discretize(delta[b, t], u[b, t], bias, softplus, dt[i], dtu[i])
                    _gate_weights(gout[b, t], z[b, t], has_z, gy[i])
                    _advance_record(h, AT, dt[i], dtu[i], Bm[b, t], Cm[b, t], gy[i],
                                    h_prev[i], decay[i], y, dC[b, t])
                    _gate_backward(gout[b, t], gy[i], y, u[b, t], Dv, z[b, t], has_z, dz[b, t],
                                   du[b, t], dD_parts[worker])
                for t in range(t1 - 1, t0 - 1, -1):
                    i = t - t0
                    _reverse_step(dh, h_prev[i], decay[i], AT, dt[i], dtu[i], gy[i], Bm[b, t],
                                  Cm[b, t], q, s, dAT_seq, dB[b, t])
                    _delta_backward(q, s, u[b, t], dt[i], delta[b, t], bias, softplus, du[b, t],
                                    ddelta[b, t], dbias_parts[worker])
            _accumulate(dAT_seq, dAT_parts[worker])
