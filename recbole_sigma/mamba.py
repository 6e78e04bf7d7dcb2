"""The Mamba block (Gu & Dao, arXiv 2312.00752) with two interchangeable backends.

``Mamba`` has the constructor, parameter names, shapes and initialisation of
``mamba_ssm.Mamba`` (mamba-ssm 2.3.x, ``mamba_ssm/modules/mamba_simple.py``), so a state dict
written on one backend loads on the other with ``load_state_dict(strict=True)``:

* ``cuda``: mamba-ssm's fused ``mamba_inner_fn`` (with causal-conv1d). Imported lazily, on the
  first CUDA forward: mamba-ssm cannot even be imported without its CUDA build.
* ``torch``: a pure-PyTorch path for CPUs, Macs and CI. The selective scan runs in
  :func:`recbole_sigma.ops.selective_scan.selective_scan` (a fused CPU kernel where available).
* ``auto`` (default): ``cuda`` when the kernels import and the input lives on a CUDA device,
  ``torch`` otherwise.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_sigma.ops.selective_scan import selective_scan

BACKENDS = ("auto", "cuda", "torch")
CUDA_INSTALL_HINT = (
    "pip install 'recbole-sigma[cuda]' (builds mamba-ssm and causal-conv1d; needs a CUDA "
    "toolkit matching your torch build)"
)


class MambaKernelsUnavailable(RuntimeError):
    """``mamba_backend: cuda`` was asked for where mamba-ssm's CUDA kernels cannot run."""


_cuda_kernels = None  # cached (mamba_inner_fn,) once imported; False once known missing


def load_cuda_kernels():
    """Import mamba-ssm's fused kernels; return ``mamba_inner_fn`` or ``None`` when missing."""
    global _cuda_kernels
    if _cuda_kernels is None:
        try:
            import causal_conv1d  # noqa: F401  (mamba_inner_fn needs it)
            from mamba_ssm.ops.selective_scan_interface import mamba_inner_fn

            _cuda_kernels = mamba_inner_fn
        except Exception:  # ImportError, or an OSError/RuntimeError from a broken CUDA build
            _cuda_kernels = False
    return _cuda_kernels or None


def _on_cuda(tensor):
    return tensor.is_cuda


class Mamba(nn.Module):
    def __init__(
        self,
        d_model,
        d_state=16,
        d_conv=4,
        expand=2,
        dt_rank="auto",
        dt_min=0.001,
        dt_max=0.1,
        dt_init="random",
        dt_scale=1.0,
        dt_init_floor=1e-4,
        conv_bias=True,
        bias=False,
        backend="auto",
        device=None,
        dtype=None,
    ):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"mamba_backend={backend!r}: expected one of {', '.join(BACKENDS)}")
        factory_kwargs = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        self.backend = backend

        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=bias, **factory_kwargs)
        self.conv1d = nn.Conv1d(
            self.d_inner,
            self.d_inner,
            kernel_size=d_conv,
            groups=self.d_inner,
            padding=d_conv - 1,
            bias=conv_bias,
            **factory_kwargs,
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **factory_kwargs)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **factory_kwargs)
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state, device=device, dtype=torch.float32))
        self.D = nn.Parameter(torch.empty(self.d_inner, device=device, dtype=torch.float32))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **factory_kwargs)
        self.reset_ssm_parameters(dt_min, dt_max, dt_init, dt_scale, dt_init_floor)

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min=0.001, dt_max=0.1, dt_init="random", dt_scale=1.0, dt_init_floor=1e-4):
        """mamba-ssm's initialisation of dt_proj, A_log and D."""
        dt_init_std = self.dt_rank**-0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, dt_init_std)
        elif dt_init == "random":
            nn.init.uniform_(self.dt_proj.weight, -dt_init_std, dt_init_std)
        else:
            raise ValueError(f"dt_init={dt_init!r}: expected 'random' or 'constant'")
        # dt log-uniform in [dt_min, dt_max]; the bias is its inverse softplus
        dt = torch.exp(
            torch.rand(self.d_inner, device=self.dt_proj.bias.device) * (math.log(dt_max) - math.log(dt_min))
            + math.log(dt_min)
        ).clamp(min=dt_init_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.dt_proj.bias._no_reinit = True
        # S4D-real: A = -(1..d_state) per channel
        self.A_log.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32)).expand(self.d_inner, -1))
        self.A_log._no_weight_decay = True
        self.D.fill_(1.0)
        self.D._no_weight_decay = True

    def uses_cuda_kernels(self, hidden_states):
        """Which backend this input takes; raises MambaKernelsUnavailable for an impossible 'cuda'."""
        if self.backend == "torch":
            return False
        kernels = load_cuda_kernels()
        if self.backend == "cuda":
            if kernels is None:
                raise MambaKernelsUnavailable(
                    "mamba_backend='cuda' but mamba-ssm / causal-conv1d cannot be imported. "
                    f"Install them with: {CUDA_INSTALL_HINT}; or set mamba_backend: torch."
                )
            if not _on_cuda(hidden_states):
                raise MambaKernelsUnavailable(
                    "mamba_backend='cuda' but the input is on the CPU; set device to a CUDA GPU, "
                    "or mamba_backend: auto / torch."
                )
            return True
        return kernels is not None and _on_cuda(hidden_states)

    def forward(self, hidden_states):
        """hidden_states: (B, L, d_model) -> (B, L, d_model)."""
        if self.uses_cuda_kernels(hidden_states):
            return self._forward_cuda(hidden_states)
        return self._forward_torch(hidden_states)

    def _forward_cuda(self, hidden_states):
        """mamba-ssm's fast path, exactly as mamba_simple.Mamba.forward calls it."""
        mamba_inner_fn = load_cuda_kernels()
        seqlen = hidden_states.shape[1]
        xz = self.in_proj.weight @ hidden_states.reshape(-1, self.d_model).t()  # (2*d_inner, B*L)
        xz = xz.reshape(2 * self.d_inner, -1, seqlen).transpose(0, 1)  # (B, 2*d_inner, L)
        if self.in_proj.bias is not None:
            xz = xz + self.in_proj.bias.to(dtype=xz.dtype)[:, None]
        return mamba_inner_fn(
            xz,
            self.conv1d.weight,
            self.conv1d.bias,
            self.x_proj.weight,
            self.dt_proj.weight,
            self.out_proj.weight,
            self.out_proj.bias,
            -torch.exp(self.A_log.float()),
            None,  # input-dependent B
            None,  # input-dependent C
            self.D.float(),
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
        )

    def _forward_torch(self, hidden_states):
        """The same computation in PyTorch ops, channel-last throughout."""
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)  # (B, L, d_inner) each
        x = F.silu(causal_depthwise_conv(x, self.conv1d.weight, self.conv1d.bias))  # (B, L, d_inner)
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)  # (B, L, d_inner); its bias enters the scan
        y = selective_scan(
            x,
            dt,
            -torch.exp(self.A_log),
            B,
            C,
            self.D,
            z=z,
            delta_bias=self.dt_proj.bias,
            delta_softplus=True,
        )  # (B, L, d_inner)
        return self.out_proj(y)


def causal_depthwise_conv(x, weight, bias=None):
    """``self.conv1d`` (depthwise, padded by K - 1, cut to L) on channel-last x: (B, L, C) -> (B, L, C).

    y[t] = bias + sum_k weight[:, 0, k] * x[t - (K - 1) + k], x = 0 before the start. As K
    shifted multiply-adds it runs 2x faster on a CPU, backward included, than nn.Conv1d with the
    two transposes around it.
    """
    seqlen, kernel = x.shape[1], weight.shape[-1]
    padded = F.pad(x, (0, 0, kernel - 1, 0))  # (B, K - 1 + L, C)
    w = weight[:, 0, :]  # (C, K)
    y = padded[:, :seqlen] * w[:, 0]
    for k in range(1, kernel):
        y = y + padded[:, k : k + seqlen] * w[:, k]
    return y if bias is None else y + bias
