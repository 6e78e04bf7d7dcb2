"""Micro-benchmark of the selective scan alone: forward and forward+backward time and peak memory.

Compares, at batch B, d_inner 128, d_state 32 and each length L:

* ``reference``: mamba-ssm's ``selective_scan_ref`` (exp(delta A) and delta B u materialised as
  (B, d_inner, L, d_state), a Python loop over L under autograd). It is slow (minutes for the
  backward at B=2048: its cost grows as B L^2), so it runs at ``--ref-batch`` and its time and
  memory are scaled linearly to B (``--skip-ref`` leaves it out);
* ``fallback``: the pure-PyTorch scan with a hand-written backward (``selective_scan_torch``),
  at ``--fallback-batch``, scaled likewise;
* ``fused``: the numba kernels (``selective_scan``), at B.

The forward and the forward+backward of each (method, L) run in a fresh subprocess, so that the
first full-size call sets the resident set's high-water mark: its peak memory is that growth
(VmHWM - VmRSS, Linux; inputs excluded, outputs and gradients included). Times in seconds: the
fused kernels' best of ``--repeat`` runs, one run of the others.

    python benchmarks/scan_micro.py                 # B=2048, L=50 and 200
    python benchmarks/scan_micro.py --lengths 50 --threads 2 --skip-ref
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from harness.machine import describe  # this script's folder is first on sys.path

D_INNER, D_STATE = 128, 32
GB_PER_S, EXP_PER_S = 20e9, 6e9  # this CPU's memory bandwidth and vector exp rate, roughly
METHODS = ("reference", "fallback", "fused")


# ---------------------------------------------------------------------------------------------
# The methods
# ---------------------------------------------------------------------------------------------
def mamba_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """mamba_ssm.ops.selective_scan_interface.selective_scan_ref on channel-last inputs."""
    u, delta, z = (t.transpose(1, 2) for t in (u, delta, z))  # (batch, d, L)
    B, C = B.transpose(1, 2), C.transpose(1, 2)                # (batch, n, L)
    delta = delta + delta_bias[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    delta_A = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))          # (batch, d, L, n)
    delta_B_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)           # (batch, d, L, n)
    x = A.new_zeros(batch, dim, A.shape[1])
    ys = []
    for i in range(length):
        x = delta_A[:, :, i] * x + delta_B_u[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
    out = torch.stack(ys, dim=2) + u * D[..., None]
    return (out * F.silu(z)).transpose(1, 2)


def scan_function(method):
    if method == "reference":
        return mamba_reference
    from recbole_sigma.ops.selective_scan import selective_scan, selective_scan_torch
    return selective_scan if method == "fused" else selective_scan_torch


def make_inputs(batch, length, seed=0):
    """float32 inputs with Mamba's magnitudes (A = -(1..N), dt in [1e-3, 1e-1])."""
    g = torch.Generator().manual_seed(seed)
    A = -torch.arange(1, D_STATE + 1, dtype=torch.float32).repeat(D_INNER, 1)
    dt = torch.exp(torch.empty(D_INNER).uniform_(-6.9, -2.3, generator=g))
    return dict(u=torch.randn(batch, length, D_INNER, generator=g),
                delta=0.5 * torch.randn(batch, length, D_INNER, generator=g), A=A,
                B=torch.randn(batch, length, D_STATE, generator=g),
                C=torch.randn(batch, length, D_STATE, generator=g),
                D=torch.ones(D_INNER), z=torch.randn(batch, length, D_INNER, generator=g),
                delta_bias=dt + torch.log(-torch.expm1(-dt)))


# ---------------------------------------------------------------------------------------------
# Measuring (in a worker subprocess)
# ---------------------------------------------------------------------------------------------
def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _measure(fn, repeat):
    """Best time of `repeat` calls of fn, and the peak RSS growth during the first, in MB."""
    can_reset = _reset_peak()
    base = _status_kb("VmRSS")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if len(times) == 1:
            peak_mb = (_status_kb("VmHWM") - base) / 1024 if can_reset else float("nan")
    return min(times), peak_mb


def worker(method, mode, batch, length, threads, repeat):
    """Seconds and peak MB of one method's forward ("fwd") or forward+backward ("fwd_bwd") at one
    shape. Run in a fresh process: the first full-size call then sets the RSS high-water mark."""
    torch.set_num_threads(threads)
    scan = scan_function(method)
    inputs = make_inputs(batch, length)
    args = [inputs[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    leaves = [a.clone().requires_grad_() for a in args]
    grad_out = torch.randn(batch, length, D_INNER)

    def forward():
        with torch.no_grad():
            scan(*args, delta_softplus=True)

    def forward_backward():
        for leaf in leaves:
            leaf.grad = None
        scan(*leaves, delta_softplus=True).backward(grad_out)

    # warm up on 2 sequences (the fused kernels compile, or load from numba's cache, here)
    small = [a[:2].detach().requires_grad_() if a.dim() == 3 else a for a in leaves]
    scan(*small, delta_softplus=True).sum().backward()
    seconds, peak_mb = _measure(forward if mode == "fwd" else forward_backward, repeat)
    return {f"{mode}_s": seconds, f"{mode}_mb": peak_mb}


def run_worker(method, batch, length, args):
    """Measure the forward, then the forward+backward, each in a fresh interpreter."""
    repeat = args.repeat if method == "fused" else 1  # the others take seconds to minutes
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    row = dict(method=method, batch=batch, length=length)
    for mode in ("fwd", "fwd_bwd"):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, mode,
               "--batch", str(batch), "--lengths", str(length), "--threads", str(args.threads),
               "--repeat", str(repeat)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{method} {mode} L={length} failed:\n{done.stderr[-2000:]}")
        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return row


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def floor_line(batch, length):
    """What the fused algorithm cannot beat: its memory traffic and its exps."""
    acts, seqs = batch * length * D_INNER * 4, batch * length * D_STATE * 4
    exps = batch * length * D_INNER * D_STATE
    fwd_bytes = 4 * acts + 2 * seqs           # u, delta, z, out; B, C
    bwd_bytes = 7 * acts + 4 * seqs           # u, delta, z, grad_out, du, ddelta, dz; B, C, dB, dC
    fwd = max(fwd_bytes / GB_PER_S, exps / EXP_PER_S)
    fwd_bwd = fwd + max(bwd_bytes / GB_PER_S, exps / EXP_PER_S)  # the backward recomputes exps
    return (f"floor L={length}: fwd {fwd:.3f} s, fwd+bwd {fwd_bwd:.3f} s "
            f"({fwd_bytes / 1e6:.0f} + {bwd_bytes / 1e6:.0f} MB at {GB_PER_S / 1e9:.0f} GB/s; "
            f"{exps / 1e6:.0f} M exps per pass at {EXP_PER_S / 1e9:.0f} G/s)")


def print_table(rows, batch):
    print(f"{'method':<10} {'L':>4} {'fwd s':>9} {'fwd+bwd s':>10} {'fwd MB':>9} "
          f"{'fwd+bwd MB':>11} {'speed-up fwd':>13} {'fwd+bwd':>8}")
    for row in rows:
        ref = next((r for r in rows if r["method"] == "reference"
                    and r["length"] == row["length"]), None)
        if ref:
            speed = (f"{ref['fwd_s'] / row['fwd_s']:>12.1f}x "
                     f"{ref['fwd_bwd_s'] / row['fwd_bwd_s']:>7.1f}x")
        else:
            speed = f"{'-':>13} {'-':>8}"
        name = row["method"] + ("*" if row["batch"] != batch else "")
        print(f"{name:<10} {row['length']:>4} {row['fwd_s']:>9.3f} {row['fwd_bwd_s']:>10.3f} "
              f"{row['fwd_mb']:>9.0f} {row['fwd_bwd_mb']:>11.0f} {speed}")


def scaled(row, batch):
    """A row measured at a smaller batch, scaled linearly to `batch`."""
    factor = batch / row["batch"]
    out = dict(row)
    for key in ("fwd_s", "fwd_bwd_s", "fwd_mb", "fwd_bwd_mb"):
        out[key] = row[key] * factor
    return out


def reference_batch(args, length):
    """The reference's backward costs O(B L^2): keep it to ~10-20 s a run."""
    batch = args.ref_batch or max(1, round(64 * min(1.0, (50 / length) ** 2)))
    return min(batch, args.batch)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ref-batch", type=int, default=None,
                        help="batch the reference runs at, its time and memory then scaled "
                             "linearly to --batch (default: 64 * min(1, (50 / L)**2))")
    parser.add_argument("--fallback-batch", type=int, default=256,
                        help="batch the PyTorch fallback runs at (scaled to --batch likewise)")
    parser.add_argument("--skip-ref", action="store_true")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        method, mode = args.worker
        print(json.dumps(worker(method, mode, args.batch, args.lengths[0], args.threads,
                                args.repeat)))
        return
    methods = [m for m in args.methods if not (m == "reference" and args.skip_ref)]
    print(describe(args.threads))
    print(f"selective scan, float32, B={args.batch}, d_inner={D_INNER}, d_state={D_STATE}; "
          f"fused: best of {args.repeat} runs, the others: 1 run")
    rows = []
    for length in args.lengths:
        for method in methods:
            batch = {"reference": reference_batch(args, length),
                     "fallback": min(args.fallback_batch, args.batch)}.get(method, args.batch)
            row = run_worker(method, batch, length, args)
            rows.append(scaled(row, args.batch) if batch != args.batch else row)
            rows[-1]["batch"] = row["batch"]
    print_table(rows, args.batch)
    for row in rows:
        if row["batch"] != args.batch:
            print(f"* {row['method']} L={row['length']} measured at B={row['batch']}, time and "
                  f"memory scaled linearly to B={args.batch}")
    print("MB: peak growth of the resident set during one call (inputs excluded)")
    for length in args.lengths:
        print(floor_line(args.batch, length))


if __name__ == "__main__":
    main()
