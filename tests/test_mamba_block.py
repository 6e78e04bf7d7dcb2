"""The Mamba block: mamba-ssm's parameters and init, and the PyTorch path against an independent
float64 re-implementation of mamba_simple's slow path (backend dispatch: test_mamba_kernels.py)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_sigma.mamba import Mamba, causal_depthwise_conv
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
    # log-uniform: log dt spreads evenly over [log 1e-3, log 1e-1], centred on log 1e-2 with std 4.6 / sqrt(12)
    # = 1.33 (a dt uniform on [1e-3, 1e-1] would centre near log 0.05)
    assert abs(dt.log().mean() - math.log(1e-2)) < 0.4 and 1.1 < dt.log().std() < 1.6
    bound = 4**-0.5  # dt_rank = ceil(64 / 16) = 4
    assert block.dt_proj.weight.abs().max() <= bound


def mamba_simple_construction(d_model, d_state, d_conv, expand):
    """The parameters mamba_simple.Mamba.__init__ draws, in its order (dt init before out_proj)."""
    d_inner, dt_rank = expand * d_model, math.ceil(d_model / 16)
    params = {"in_proj.weight": nn.Linear(d_model, 2 * d_inner, bias=False).weight}
    conv = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
    params.update({"conv1d.weight": conv.weight, "conv1d.bias": conv.bias})
    params["x_proj.weight"] = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False).weight
    dt_proj = nn.Linear(dt_rank, d_inner)
    nn.init.uniform_(dt_proj.weight, -(dt_rank**-0.5), dt_rank**-0.5)
    dt = torch.exp(torch.rand(d_inner) * (math.log(0.1) - math.log(0.001)) + math.log(0.001)).clamp(min=1e-4)
    params.update({"dt_proj.weight": dt_proj.weight, "dt_proj.bias": dt + torch.log(-torch.expm1(-dt))})
    params["A_log"] = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1)
    params["D"] = torch.ones(d_inner)
    params["out_proj.weight"] = nn.Linear(d_inner, d_model, bias=False).weight
    return params


def test_same_seed_draws_mamba_simples_parameters():
    torch.manual_seed(3)
    expected = mamba_simple_construction(d_model=24, d_state=8, d_conv=3, expand=2)
    torch.manual_seed(3)
    block = Mamba(d_model=24, d_state=8, d_conv=3, expand=2)
    got = dict(block.named_parameters())
    # names and state_dict order as before out_proj moved: own parameters first, then submodules
    assert list(got) == ["A_log", "D"] + [n for n in EXPECTED_SHAPES if n not in ("A_log", "D")]
    for name, tensor in expected.items():
        assert torch.equal(got[name].detach(), tensor.detach()), name


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="mamba_backend='gpu'.*auto, cuda, torch"):
        Mamba(d_model=8, backend="gpu")


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
