"""Tests of the fused (numba) dropout, :mod:`recbole_sigma.ops.dropout`.

The mask is checked against a numpy re-implementation of the kernel's hash, statistically (keep
fraction), exactly (scale, zeros, the backward's mask) and for reproducibility (seed, threads).
The first run compiles the kernel (float32 and float64, a few seconds); numba caches it on disk.
"""
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import recbole_sigma.ops
from recbole_sigma.ops import dropout as dropout_module
from recbole_sigma.ops.dropout import Dropout, dropout, fused_dropout_available

requires_fused = pytest.mark.skipif(not fused_dropout_available(), reason="numba unavailable")

BLOCK = 1 << 14  # the kernel's block (_dropout_numba.BLOCK), repeated to avoid importing numba
MASK64 = (1 << 64) - 1


def seeded(fn, seed=0):
    torch.manual_seed(seed)
    return fn()


def reference_keep(seed, n, p):
    """The kernel's keep mask, in numpy: element i keeps when 16-bit lane i % 4 of
    splitmix64(splitmix64(seed + GOLDEN) + (i // 4) * GOLDEN) is below round((1 - p) 2**16)."""
    golden = np.uint64(0x9E3779B97F4A7C15)

    def mix(z):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

    with np.errstate(over="ignore"):
        key = mix(np.array([(seed + 0x9E3779B97F4A7C15) & MASK64], dtype=np.uint64))
        index = np.arange(n, dtype=np.uint64)
        h = mix(key + (index >> np.uint64(2)) * golden)
        lanes = (h >> (np.uint64(16) * (index & np.uint64(3)))) & np.uint64(0xFFFF)
    return torch.from_numpy(lanes < np.uint64(round((1 - p) * 65536)))


def seed_drawn_by_torch(seed):
    torch.manual_seed(seed)
    return int(torch.randint(0, 1 << 62, (1,)).item())


def nonzero_input(*shape, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=dtype)
    return torch.where(x == 0, torch.ones_like(x), x)


# ---------------------------------------------------------------------------------------------
# The mask
# ---------------------------------------------------------------------------------------------
@requires_fused
@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_keep_fraction_and_exact_scale(p):
    n = 1_000_000
    x = nonzero_input(n)
    out = seeded(lambda: dropout(x, p))
    kept = out != 0
    fraction = kept.double().mean().item()
    assert abs(fraction - (1 - p)) < 5 * (p * (1 - p) / n) ** 0.5
    scale = torch.tensor(1 / (1 - p), dtype=torch.float32)
    assert torch.equal(out[kept], x[kept] * scale)
    assert torch.equal(out[~kept], torch.zeros_like(out[~kept]))
    assert out[~kept].signbit().eq(x[~kept].signbit()).all()  # x * 0, as F.dropout


@requires_fused
@pytest.mark.parametrize("n", [5, BLOCK - 1, 3 * BLOCK + 7])
def test_mask_is_the_documented_hash(n):
    x = torch.ones(n)
    out = seeded(lambda: dropout(x, 0.3), seed=7)
    assert torch.equal(out != 0, reference_keep(seed_drawn_by_torch(7), n, 0.3))


@requires_fused
def test_backward_uses_the_forward_mask():
    p = 0.25
    g = torch.Generator().manual_seed(2)
    # x = +-2**k: x * scale is exact, so out / x is exactly the forward's factor (scale or 0)
    x = torch.randint(-3, 4, (40, 33, 17), generator=g).float().exp2()
    x = (x * torch.randint(0, 2, x.shape, generator=g).mul(2).sub(1)).requires_grad_()
    grad_out = torch.randn(x.shape, generator=g)
    out = seeded(lambda: dropout(x, p))
    out.backward(grad_out)
    assert torch.equal(x.grad, out.detach() / x.detach() * grad_out)
    assert torch.equal(x.grad != 0, out.detach() != 0)


@requires_fused
def test_double_backward_and_gradcheck():
    x = nonzero_input(3, 11, dtype=torch.float64).requires_grad_()

    def fn(t):
        return seeded(lambda: dropout(t, 0.4), seed=3)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@requires_fused
def test_same_seed_same_output_different_seed_different_mask():
    x = nonzero_input(64, 50, 32)
    first, again = seeded(lambda: dropout(x, 0.2)), seeded(lambda: dropout(x, 0.2))
    assert torch.equal(first, again)
    other = seeded(lambda: dropout(x, 0.2), seed=1)
    assert not torch.equal(first != 0, other != 0)
    torch.manual_seed(0)
    a, b = dropout(x, 0.2), dropout(x, 0.2)  # successive calls draw new seeds
    assert not torch.equal(a != 0, b != 0)


@requires_fused
def test_result_does_not_depend_on_the_thread_count():
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread")
    x = nonzero_input(5 * BLOCK + 3).requires_grad_()
    grad_out = nonzero_input(5 * BLOCK + 3, seed=4)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = seeded(lambda: dropout(x, 0.3))
            assert numba.get_num_threads() == threads
            (grad,) = torch.autograd.grad(out, x, grad_out)
            results.append((out, grad))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


@requires_fused
def test_float64_same_mask_and_exact_scale():
    x32 = nonzero_input(1000, 7)
    x64 = x32.double()
    out32, out64 = seeded(lambda: dropout(x32, 0.1)), seeded(lambda: dropout(x64, 0.1))
    assert out64.dtype == torch.float64
    assert torch.equal(out32 != 0, out64 != 0)
    kept = out64 != 0
    assert torch.equal(out64[kept], x64[kept] * torch.tensor(1 / 0.9, dtype=torch.float64))


@requires_fused
def test_non_contiguous_input():
    base = nonzero_input(40, 30, 20)
    x = base.transpose(0, 2)[:, 1:, ::2].requires_grad_()  # (20, 29, 20), strided
    assert not x.is_contiguous()
    out = seeded(lambda: dropout(x, 0.5))
    expected = seeded(lambda: dropout(x.detach().contiguous(), 0.5))
    assert out.shape == x.shape and torch.equal(out, expected)
    out.sum().backward()
    assert torch.equal(x.grad, (expected != 0).float() * 2.0)


# ---------------------------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------------------------
def test_eval_mode_and_p_zero_are_identities():
    x = torch.randn(4, 5, requires_grad=True)
    module = Dropout(0.3).eval()
    assert module(x) is x
    assert Dropout(0.0)(x) is x
    assert dropout(x, 0.7, training=False) is x


def test_constructor_repr_and_p_checks():
    module = Dropout(0.25)
    assert module.p == 0.25 and isinstance(module, nn.Dropout)
    assert repr(module) == repr(nn.Dropout(0.25)) == "Dropout(p=0.25, inplace=False)"
    assert module.extra_repr() == nn.Dropout(0.25).extra_repr()
    assert Dropout().p == 0.5
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            Dropout(bad)
        with pytest.raises(ValueError):
            dropout(torch.ones(3), bad)


def test_p_one_gives_zeros_and_zero_gradients():
    x = torch.randn(100, requires_grad=True)
    out = dropout(x, 1.0)
    out.sum().backward()
    assert torch.equal(out, torch.zeros(100)) and torch.equal(x.grad, torch.zeros(100))


def test_state_dict_is_that_of_nn_dropout(make_model):
    model = make_model("Mamba4Rec")
    ours = model.state_dict()
    assert any(isinstance(m, Dropout) for m in model.modules())
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, Dropout):
                setattr(parent, name, nn.Dropout(child.p))
    assert not any(isinstance(m, Dropout) for m in model.modules())
    theirs = model.state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert Dropout(0.1).state_dict() == nn.Dropout(0.1).state_dict() == {}
    assert list(Dropout(0.1).parameters()) == [] and list(Dropout(0.1).buffers()) == []


# ---------------------------------------------------------------------------------------------
# The fallback
# ---------------------------------------------------------------------------------------------
def test_env_switch_falls_back_to_f_dropout(monkeypatch):
    monkeypatch.setenv(dropout_module._numba.ENV_SWITCH, "0")
    assert not fused_dropout_available()
    monkeypatch.setattr(dropout_module, "_FusedDropout", None)  # would fail if called
    x = nonzero_input(200, 10, dtype=torch.float64).requires_grad_()
    out = seeded(lambda: Dropout(0.3).train()(x))
    assert torch.equal(out, seeded(lambda: F.dropout(x, 0.3)))
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).double() / 0.7)


def test_other_dtypes_and_inplace_use_f_dropout(monkeypatch):
    monkeypatch.setattr(dropout_module, "_FusedDropout", None)
    x = torch.randn(300, dtype=torch.bfloat16)
    assert torch.equal(seeded(lambda: dropout(x, 0.5)), seeded(lambda: F.dropout(x, 0.5)))
    y = torch.randn(300)
    expected = seeded(lambda: F.dropout(y, 0.5))
    z = y.clone()
    assert seeded(lambda: dropout(z, 0.5, inplace=True)) is z and torch.equal(z, expected)


def test_missing_numba_falls_back_with_one_warning(monkeypatch):
    fresh = dropout_module._numba.KernelModule(dropout_module._KERNELS.module_name, dropout_module._KERNELS.what, dropout_module._KERNELS.fallback)
    monkeypatch.setattr(dropout_module, "_KERNELS", fresh)
    monkeypatch.setitem(sys.modules, "recbole_sigma.ops._dropout_numba", None)
    monkeypatch.delattr(recbole_sigma.ops, "_dropout_numba", raising=False)
    monkeypatch.delenv(dropout_module._numba.ENV_SWITCH, raising=False)
    x = torch.randn(50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [seeded(lambda: dropout(x, 0.5)) for _ in range(2)]
    messages = [str(w.message) for w in caught if "fused dropout" in str(w.message)]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert not fused_dropout_available()
    assert torch.equal(results[0], seeded(lambda: F.dropout(x, 0.5)))
