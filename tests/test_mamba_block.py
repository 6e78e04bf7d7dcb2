"""The Mamba block: mamba-ssm's parameters and init, backend dispatch, and the PyTorch path
against an independent float64 re-implementation of mamba_simple's slow path."""
import math
import sys
import types

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import recbole_sigma.mamba as mamba_module
from recbole_sigma.mamba import Mamba, MambaKernelsUnavailable, causal_depthwise_conv
from recbole_sigma.ops.selective_scan import selective_scan_ref

EXPECTED_SHAPES = {
    "in_proj.weight": (256, 64),
    "conv1d.weight": (128, 1, 4),
    "conv1d.bias": (128,),
    "x_proj.weight": (68, 128),
    "dt_proj.weight": (128, 4),
    "dt_proj.bias": (128,),
    "A_log": (128, 32),
    "D": (128,),
    "out_proj.weight": (64, 128),
}


def test_parameter_names_and_shapes_match_mamba_ssm():
    block = Mamba(d_model=64, d_state=32, d_conv=4, expand=2)
    shapes = {name: tuple(p.shape) for name, p in block.named_parameters()}
    assert shapes == EXPECTED_SHAPES


def test_initialisation_matches_mamba_ssm():
    torch.manual_seed(0)
    block = Mamba(d_model=64, d_state=32, d_conv=4, expand=2)
    assert torch.equal(block.A_log, torch.log(torch.arange(1, 33, dtype=torch.float32)).expand(128, 32))
    assert torch.equal(block.D, torch.ones(128))
    dt = F.softplus(block.dt_proj.bias.detach())
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    # log-uniform: the log of dt spreads over [log 1e-3, log 1e-1]
    assert math.log(1e-3) < dt.log().mean() < math.log(1e-1)
    bound = 4**-0.5  # dt_rank = ceil(64 / 16) = 4
    assert block.dt_proj.weight.abs().max() <= bound


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="mamba_backend='gpu'.*auto, cuda, torch"):
        Mamba(d_model=8, backend="gpu")


def test_cuda_backend_without_kernels_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(mamba_module, "_cuda_kernels", None)
    monkeypatch.setitem(sys.modules, "mamba_ssm", None)  # makes the import fail
    block = Mamba(d_model=8, d_state=4, backend="cuda")
    with pytest.raises(MambaKernelsUnavailable, match=r"pip install 'recbole-sigma\[cuda\]'"):
        block(torch.randn(2, 5, 8))


def _install_stand_in_kernels(monkeypatch, calls):
    """Fake mamba_ssm / causal_conv1d modules whose mamba_inner_fn records its call."""

    def mamba_inner_fn(xz, conv_w, conv_b, x_proj_w, dt_proj_w, out_w, out_b, A, B, C, D, delta_bias, delta_softplus):
        calls.append({"xz": xz.shape, "A": A, "delta_softplus": delta_softplus})
        return torch.zeros(xz.shape[0], xz.shape[2], out_w.shape[0])

    iface = types.ModuleType("mamba_ssm.ops.selective_scan_interface")
    iface.mamba_inner_fn = mamba_inner_fn
    for name, module in {
        "mamba_ssm": types.ModuleType("mamba_ssm"),
        "mamba_ssm.ops": types.ModuleType("mamba_ssm.ops"),
        "mamba_ssm.ops.selective_scan_interface": iface,
        "causal_conv1d": types.ModuleType("causal_conv1d"),
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(mamba_module, "_cuda_kernels", None)


def test_auto_dispatch_picks_the_kernels_on_cuda(monkeypatch):
    calls = []
    _install_stand_in_kernels(monkeypatch, calls)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(mamba_module, "_on_cuda", lambda tensor: True)
    block = Mamba(d_model=16, d_state=4, backend="auto")
    out = block(torch.randn(3, 7, 16))
    assert len(calls) == 1 and calls[0]["xz"] == (3, 64, 7) and calls[0]["delta_softplus"]
    assert torch.equal(calls[0]["A"], -torch.exp(block.A_log))
    assert out.shape == (3, 7, 16)


def test_auto_dispatch_stays_on_torch_for_cpu_tensors(monkeypatch):
    calls = []
    _install_stand_in_kernels(monkeypatch, calls)
    block = Mamba(d_model=16, d_state=4, backend="auto")
    block(torch.randn(2, 5, 16))
    assert calls == []


def test_torch_backend_never_uses_the_kernels(monkeypatch):
    calls = []
    _install_stand_in_kernels(monkeypatch, calls)
    monkeypatch.setattr(mamba_module, "_on_cuda", lambda tensor: True)
    Mamba(d_model=16, d_state=4, backend="torch")(torch.randn(2, 5, 16))
    assert calls == []


def test_state_dict_moves_between_backends_strictly():
    source = Mamba(d_model=32, d_state=8, backend="cuda")  # construction needs no kernels
    target = Mamba(d_model=32, d_state=8, backend="torch")
    target.load_state_dict(source.state_dict(), strict=True)
    back = Mamba(d_model=32, d_state=8, backend="auto")
    back.load_state_dict(target.state_dict(), strict=True)
    for name, tensor in source.state_dict().items():
        assert torch.equal(tensor, back.state_dict()[name])


def mamba_simple_slow_path(block, hidden_states):
    """mamba_simple.Mamba.forward without causal-conv1d: (B, D, L) layout, conv via nn.Conv1d."""
    seqlen = hidden_states.shape[1]
    xz = (block.in_proj.weight @ hidden_states.reshape(-1, block.d_model).t()).reshape(2 * block.d_inner, -1, seqlen)
    xz = xz.transpose(0, 1)  # (B, 2*d_inner, L)
    x, z = xz.chunk(2, dim=1)
    x = F.silu(block.conv1d(x)[..., :seqlen])
    x_dbl = block.x_proj(x.transpose(1, 2).reshape(-1, block.d_inner))
    dt, B, C = torch.split(x_dbl, [block.dt_rank, block.d_state, block.d_state], dim=-1)
    dt = (block.dt_proj.weight @ dt.t()).reshape(block.d_inner, -1, seqlen).transpose(0, 1)  # (B, d_inner, L)
    B = B.reshape(-1, seqlen, block.d_state)
    C = C.reshape(-1, seqlen, block.d_state)
    y = selective_scan_ref(
        x.transpose(1, 2), dt.transpose(1, 2), -torch.exp(block.A_log), B, C, block.D,
        z=z.transpose(1, 2), delta_bias=block.dt_proj.bias, delta_softplus=True,
    )
    return block.out_proj(y)


@pytest.mark.parametrize("length", [1, 3, 20])
def test_torch_path_matches_mamba_simple_in_float64(length):
    torch.manual_seed(1)
    block = Mamba(d_model=16, d_state=8, d_conv=4, expand=2, backend="torch").double()
    x = torch.randn(3, length, 16, dtype=torch.float64)
    expected = mamba_simple_slow_path(block, x)
    got = block(x)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", [1, 2, 4])
@pytest.mark.parametrize("seqlen", [1, 3, 7])
def test_causal_depthwise_conv_equals_nn_conv1d_with_its_gradients(kernel, seqlen):
    torch.manual_seed(kernel * 10 + seqlen)
    conv = nn.Conv1d(6, 6, kernel, groups=6, padding=kernel - 1).double()
    x = torch.randn(3, seqlen, 6, dtype=torch.double, requires_grad=True)
    ours = causal_depthwise_conv(x, conv.weight, conv.bias)
    ref = conv(x.transpose(1, 2))[..., :seqlen].transpose(1, 2)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(ours, (x, conv.weight, conv.bias), g)
    ref_grads = torch.autograd.grad(ref, (x, conv.weight, conv.bias), g)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
