"""Loading and choosing mamba-ssm's CUDA kernels, with stand-in kernel modules and a faked CUDA
check: every branch of mamba_backend auto / cuda, without a GPU."""
import sys
import types
import warnings

import pytest
import torch

import recbole_sigma.mamba as mamba_module
from recbole_sigma.errors import ConfigError, RecBoleSigmaError
from recbole_sigma.gpu_check import reference_inner_fn
from recbole_sigma.mamba import Mamba, MambaKernelsUnavailable, kernel_limits

GOOD_PAIR = {"mamba-ssm": "2.3.2.post1", "causal-conv1d": "1.6.0"}
PROBE = (1, 16, 4)  # the xz of probe_kernels' tiny run, once a device


@pytest.fixture(autouse=True)
def fresh_kernel_state(monkeypatch):
    """Each test starts with the kernels not yet imported and nothing warned; counts the imports."""
    monkeypatch.setattr(mamba_module, "_kernels", None)
    monkeypatch.setattr(mamba_module, "_warned", set())
    monkeypatch.setattr(mamba_module, "_probed", {})
    imports = []
    real = mamba_module._import_kernels
    monkeypatch.setattr(mamba_module, "_import_kernels", lambda: imports.append(1) or real())
    return imports


@pytest.fixture
def on_gpu(monkeypatch):
    """Every tensor counts as a CUDA tensor."""
    monkeypatch.setattr(mamba_module, "_on_cuda", lambda tensor: True)


def install_kernels(monkeypatch, versions=GOOD_PAIR, **iface_attrs):
    """Stand-in mamba_ssm / causal_conv1d modules; their mamba_inner_fn is the PyTorch reference and
    records its calls. ``iface_attrs`` are extra attributes of selective_scan_interface."""
    calls = []
    iface = types.ModuleType("mamba_ssm.ops.selective_scan_interface")
    iface.mamba_inner_fn = lambda *args, **kwargs: calls.append(args[0].shape) or reference_inner_fn(*args, **kwargs)
    for name, value in iface_attrs.items():
        setattr(iface, name, value)
    ops = types.ModuleType("mamba_ssm.ops")
    ops.selective_scan_interface = iface
    for name, module in {"mamba_ssm": types.ModuleType("mamba_ssm"), "mamba_ssm.ops": ops,
                         "mamba_ssm.ops.selective_scan_interface": iface,
                         "causal_conv1d": types.ModuleType("causal_conv1d")}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(mamba_module, "kernel_versions", lambda: dict(versions))
    return calls


def remove_kernels(monkeypatch):
    for name in ("mamba_ssm", "causal_conv1d"):
        monkeypatch.setitem(sys.modules, name, None)  # the import raises ModuleNotFoundError


def block_and_input(dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    block = Mamba(d_model=8, d_state=kwargs.pop("d_state", 4), **kwargs).to(dtype)
    return block, torch.randn(2, 6, 8, dtype=dtype)


def test_good_pair_on_gpu_runs_the_kernels_as_called_by_mamba_simple(monkeypatch, on_gpu):
    calls = install_kernels(monkeypatch)
    block, x = block_and_input()
    out = block(x)
    assert calls == [PROBE, (2, 32, 6)]  # the probe, then xz: (B, 2 * d_inner, L)
    torch.testing.assert_close(out, block._forward_torch(x), rtol=1e-5, atol=1e-6)


def test_missing_kernels_on_gpu_under_auto_warn_once_and_keep_the_cause(monkeypatch, on_gpu, fresh_kernel_state):
    remove_kernels(monkeypatch)
    block, x = block_and_input()
    with pytest.warns(RuntimeWarning) as caught:
        out = block(x)
        Mamba(d_model=8, d_state=4)(x)  # a second block: no second warning, no second import
    assert len(caught) == 1 and fresh_kernel_state == [1]
    message = str(caught[0].message)
    cause = mamba_module.kernel_error()
    assert isinstance(cause, ImportError) and mamba_module.describe_error(cause) in message
    assert "mamba_backend='auto'" in message and "PyTorch path" in message
    assert torch.equal(out, block._forward_torch(x))


def test_cuda_backend_without_kernels_raises_one_line_with_the_import_error_as_cause(monkeypatch, on_gpu):
    remove_kernels(monkeypatch)
    block, x = block_and_input(backend="cuda")
    with pytest.raises(MambaKernelsUnavailable) as raised:
        block(x)
    error = raised.value
    assert isinstance(error, RecBoleSigmaError) and "\n" not in str(error)
    assert isinstance(error.__cause__, ImportError)
    assert "--no-build-isolation 'causal-conv1d>=1.5.1' 'mamba-ssm>=2.2.5'" in str(error)


@pytest.mark.parametrize("versions", [{"mamba-ssm": "2.2.4", "causal-conv1d": "1.5.1"},
                                      {"mamba-ssm": "2.2.5", "causal-conv1d": "1.5.0.post8"}])
def test_an_incompatible_pair_is_named_and_never_run(monkeypatch, on_gpu, versions):
    calls = install_kernels(monkeypatch, versions)
    block, x = block_and_input(backend="cuda")
    with pytest.raises(MambaKernelsUnavailable, match=f"mamba-ssm {versions['mamba-ssm']} does not work with "
                       f"causal-conv1d {versions['causal-conv1d']}; install mamba-ssm>=2.2.5 with causal-conv1d>=1.5.1"):
        block(x)
    auto_block, _ = block_and_input()
    with pytest.warns(RuntimeWarning, match="does not work with causal-conv1d"):
        assert torch.equal(auto_block(x), auto_block._forward_torch(x))
    assert calls == []


UNKNOWN_VERSIONS = {"mamba-ssm": None, "causal-conv1d": None}


def _fwd_taking(n):
    def causal_conv1d_fwd(*args):
        raise AssertionError("never called")

    causal_conv1d_fwd.__doc__ = "causal_conv1d_fwd(" + ", ".join(f"arg{i}: torch.Tensor" for i in range(n)) + ") -> None"
    return causal_conv1d_fwd


@pytest.mark.parametrize("iface_attrs, named", [
    ({"causal_conv1d_fwd_function": None}, "finds no usable causal-conv1d CUDA functions"),  # mamba-ssm >= 2.2.5
    ({"causal_conv1d_cuda": types.SimpleNamespace(causal_conv1d_fwd=_fwd_taking(8))},
     "calls causal_conv1d_fwd with 7 arguments, causal-conv1d None takes 8"),  # mamba-ssm <= 2.2.4
    ({"selective_scan_cuda": None}, "installed without its CUDA extension selective_scan_cuda"),
])
def test_a_broken_pair_is_found_from_the_modules_when_versions_are_unknown(monkeypatch, on_gpu, iface_attrs, named):
    install_kernels(monkeypatch, UNKNOWN_VERSIONS, **iface_attrs)
    with pytest.raises(MambaKernelsUnavailable, match=named):
        block_and_input(backend="cuda")[0](torch.randn(1, 3, 8))


def test_the_old_pair_with_a_seven_argument_conv_is_accepted(monkeypatch, on_gpu):
    calls = install_kernels(monkeypatch, {"mamba-ssm": "2.2.2", "causal-conv1d": "1.4.0"},
                            causal_conv1d_cuda=types.SimpleNamespace(causal_conv1d_fwd=_fwd_taking(7)))
    block, x = block_and_input(backend="cuda")
    block(x)
    assert calls[1:] == [(2, 32, 6)]  # after the probe


def test_kernels_that_import_but_fail_on_the_device_fall_back_under_auto_and_are_an_error_under_cuda(
        monkeypatch, on_gpu, caplog):
    """A build without code for this GPU imports, then fails at its first launch: the probe finds it once,
    auto warns (and logs, for the run's log file) and runs the PyTorch path, cuda names the fix."""
    calls = install_kernels(monkeypatch)
    error = RuntimeError("CUDA error: no kernel image is available for execution on the device")
    iface = sys.modules["mamba_ssm.ops.selective_scan_interface"]
    monkeypatch.setattr(iface, "mamba_inner_fn", lambda *args, **kwargs: calls.append(args[0].shape) or _raise(error))
    block, x = block_and_input()
    with pytest.warns(RuntimeWarning, match="mamba-ssm's CUDA kernels import but fail on cpu "
                                            r"\(RuntimeError: CUDA error: no kernel image") as caught:
        out = block(x)
        block(x)
        Mamba(d_model=8, d_state=4)(x)  # another block: no second probe, no second warning
    assert len(caught) == 1 and calls == [PROBE] and torch.equal(out, block._forward_torch(x))
    assert [r.getMessage() for r in caplog.records if "PyTorch path" in r.getMessage()] \
        == [str(caught[0].message)] * 2  # each block's first fallback, in the log
    with pytest.raises(MambaKernelsUnavailable, match="build them for this GPU \\(TORCH_CUDA_ARCH_LIST") as raised:
        block_and_input(backend="cuda")[0](x)
    assert raised.value.__cause__ is error and calls == [PROBE]


def _raise(error):
    raise error


def test_the_probe_leaves_the_runs_random_streams_alone(monkeypatch, on_gpu):
    install_kernels(monkeypatch)
    block, x = block_and_input()
    state = torch.get_rng_state()
    block(x)
    assert torch.equal(torch.get_rng_state(), state)


def test_the_pytorch_path_computes_a_low_precision_blocks_decay_in_float32(monkeypatch):
    """As mamba_simple: -exp(A_log.float()), D and the dt bias in float32, whatever the block's dtype."""
    seen = {}
    real = mamba_module.selective_scan
    monkeypatch.setattr(mamba_module, "selective_scan",
                        lambda *args, **kwargs: seen.update(A=args[2], D=args[5], bias=kwargs["delta_bias"])
                        or real(*args, **kwargs))
    block, x = block_and_input(torch.bfloat16)
    assert block(x).dtype == torch.bfloat16
    assert seen["A"].dtype == seen["D"].dtype == seen["bias"].dtype == torch.float32
    assert torch.equal(seen["A"], -torch.exp(block.A_log.float()))
    block64, x64 = block_and_input(torch.float64)  # float64 stays float64
    block64(x64)
    assert seen["A"].dtype == torch.float64


@pytest.mark.parametrize("settings, dtype, named", [
    ({"d_conv": 5}, torch.float32, r"d_conv=5 \(causal-conv1d takes 2-4\)"),
    ({"d_conv": 1}, torch.float32, "d_conv=1"),
    ({"d_state": 257}, torch.float32, r"d_state=257 \(the selective-scan kernel takes at most 256\)"),
    ({}, torch.float64, r"float64 \(the kernels take float32, float16 or bfloat16\)"),
])
def test_auto_falls_back_with_one_warning_where_the_kernels_cannot_serve(monkeypatch, on_gpu, fresh_kernel_state,
                                                                          settings, dtype, named):
    calls = install_kernels(monkeypatch)
    block, x = block_and_input(dtype, **settings)
    with pytest.warns(RuntimeWarning, match=named) as caught:
        out = block(x)
        block(x)
    assert len(caught) == 1 and calls == [] and fresh_kernel_state == []  # not even imported
    assert torch.equal(out, block._forward_torch(x))


@pytest.mark.parametrize("settings, named", [({"d_conv": 5}, "d_conv=5"), ({"d_state": 300}, "d_state=300")])
def test_cuda_backend_refuses_an_unservable_config_before_training(make_model, settings, named):
    with pytest.raises(ConfigError) as raised:
        make_model("Mamba4Rec", mamba_backend="cuda", **settings)
    message = str(raised.value)
    assert message.startswith(f"Mamba4Rec: {named} is invalid with mamba_backend='cuda' (") and "\n" not in message
    assert message.endswith("set mamba_backend: auto or torch")
    with pytest.raises(MambaKernelsUnavailable, match=named):  # the block itself, built directly
        Mamba(d_model=8, backend="cuda", **dict({"d_state": 4}, **settings))
    make_model("Mamba4Rec", mamba_backend="auto", **settings)  # auto accepts it (and falls back on a GPU)


def test_cuda_backend_refuses_float64_at_the_first_forward(monkeypatch, on_gpu):
    install_kernels(monkeypatch)
    block, x = block_and_input(torch.float64, backend="cuda")
    with pytest.raises(MambaKernelsUnavailable, match="mamba_backend='cuda' but the kernels cannot run float64"):
        block(x)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_cpu_tensors_never_import_the_kernels(monkeypatch, fresh_kernel_state, backend):
    calls = install_kernels(monkeypatch)
    block, x = block_and_input(backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = block(x)
    assert fresh_kernel_state == [] and calls == [] and torch.equal(out, block._forward_torch(x))


def test_cuda_backend_on_a_cpu_tensor_is_an_error_without_importing(monkeypatch, fresh_kernel_state):
    install_kernels(monkeypatch)
    block, x = block_and_input(backend="cuda")
    with pytest.raises(MambaKernelsUnavailable, match="the input is on the CPU; use a CUDA device"):
        block(x)
    assert fresh_kernel_state == []


def test_the_kernels_are_loaded_at_most_once(monkeypatch, on_gpu, fresh_kernel_state):
    calls = install_kernels(monkeypatch)
    blocks = [block_and_input()[0] for _ in range(2)]
    x = torch.randn(2, 6, 8)
    for _ in range(3):
        for block in blocks:
            block(x)
    assert fresh_kernel_state == [1] and calls == [PROBE] + [(2, 32, 6)] * 6  # and probed once


def test_torch_backend_on_gpu_stays_silent_and_never_imports(monkeypatch, on_gpu, fresh_kernel_state):
    calls = install_kernels(monkeypatch)
    block, x = block_and_input(backend="torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        block(x)
    assert fresh_kernel_state == [] and calls == []


@pytest.mark.parametrize("d_conv, d_state, dtype, ok", [
    (2, 4, torch.float32, True), (4, 256, torch.bfloat16, True), (3, 16, torch.float16, True),
    (1, 4, torch.float32, False), (5, 4, torch.float32, False), (4, 257, torch.float32, False),
    (4, 16, torch.float64, False),
])
def test_kernel_limits_bounds(d_conv, d_state, dtype, ok):
    assert (kernel_limits(d_conv, d_state, dtype) is None) == ok


def test_the_error_class_lives_in_errors_and_stays_importable_from_mamba():
    from recbole_sigma import errors

    assert MambaKernelsUnavailable is errors.MambaKernelsUnavailable
    assert issubclass(MambaKernelsUnavailable, RecBoleSigmaError) and issubclass(MambaKernelsUnavailable, RuntimeError)
