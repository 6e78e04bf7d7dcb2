"""One command that checks the GPU path and measures it:

    python -m recbole_sigma.gpu_check [--out DIR] [--quick]

1. Versions (torch, CUDA, GPU, mamba-ssm, causal-conv1d) and the backend each model takes.
2. For Mamba4Rec, SIGMA (its default, and ``sigma_variant: public_code`` where SIGMA's YAML has
   that key) and EchoMamba4Rec: the model built on the CPU and copied to the GPU; forward scores
   and every gradient of the GPU path (mamba-ssm's kernels where they serve) against our CPU
   path on the same weights and batch, in float32, within ``TOLERANCE``; then one training step
   on the GPU, its state dict saved, loaded strictly into a fresh CPU model, and both score the
   same batch.
3. Milliseconds per training step (forward, backward, Adam) and per full-sort evaluation batch,
   and peak GPU memory, for SASRec, Mamba4Rec, SIGMA and ECHO at B = 2048, L = 50 and 200,
   length buckets on and off, next to the paper's Table 3 (SIGMA, AAAI 2025).
4. ``gpu_report.md`` and ``gpu_report.json`` in ``--out``.

Without CUDA the first line says so and the same comparisons run CPU against CPU at a small
size, with mamba-ssm's ``mamba_inner_fn`` replaced by :func:`reference_inner_fn` (its PyTorch
reference, called exactly as the kernel is) against our fused CPU path: CI runs the script.
Exit status 1 when a comparison fails. ``benchmarks/gpu_session.sh`` runs it on a borrowed GPU
machine that has no package registry.
"""
import argparse
import contextlib
import copy
import io
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
import yaml

import recbole_sigma
from recbole_sigma import mamba
from recbole_sigma.ops.selective_scan import selective_scan_ref
from recbole_sigma.config import config_files, resolve_model

# Largest |difference| over the largest |value| of each compared tensor (float32 on both sides;
# the kernels accumulate in another order, and their backward with atomics).
TOLERANCE = 1e-3
BEAUTY_MEAN_LENGTH = 8.4  # Beauty's training sequences: lengths are drawn geometric with this mean
# Paper Table 3, Beauty: inference ms per batch and GPU memory (GB) on the authors' GPU.
PAPER_TABLE3_BEAUTY = {"SASRec": (123, 7.58), "Mamba4Rec": (72, 2.58), "EchoMamba4Rec": (78, 3.01),
                       "SIGMA": (68, 2.89)}


class Size(NamedTuple):
    batch: int  # timed batches
    lengths: tuple  # MAX_ITEM_LIST_LENGTH values timed
    n_items: int
    steps: int  # timed repetitions after one warm-up
    compare_batch: int  # batch of the path comparisons
    compare_length: int
    widths: dict  # config keys over the YAML defaults


SIZES = {
    ("cuda", False): Size(2048, (50, 200), 12102, 5, 64, 50, {}),
    ("cuda", True): Size(2048, (50,), 12102, 2, 32, 50, {}),
    ("cpu", False): Size(64, (20, 50), 500, 2, 8, 20, {"hidden_size": 16, "d_state": 8, "inner_size": 32}),
    ("cpu", True): Size(16, (12,), 200, 1, 4, 12, {"hidden_size": 16, "d_state": 8, "inner_size": 32}),
}


class DictConfig(dict):
    """What a model reads from RecBole's Config: missing keys are None."""

    def __getitem__(self, key):
        return self.get(key)


class FakeDataset:
    """The sizes a model reads from a RecBole dataset; 9 interactions per user, as on Amazon."""

    def __init__(self, n_items, inter_num=900, user_num=101):
        self.n_items = n_items
        self.inter_num, self.user_num = inter_num, user_num  # user_num counts the padding id

    def num(self, field):
        return self.n_items


# -- models -------------------------------------------------------------------------------------

def yaml_defaults(name):
    """The model's YAML defaults: ours, over RecBole's for its SASRec."""
    paths = config_files(name, "none")
    if name == "SASRec":
        import recbole

        paths = [str(Path(recbole.__file__).parent / "properties" / "model" / "SASRec.yaml")] + paths
    from recbole.config.configurator import Config

    loader = Config._build_yaml_loader(None)  # RecBole's loader: reads 1e-12 as a float, as a real run does
    config = {}
    for path in paths:
        with open(path) as f:
            config.update(yaml.load(f, Loader=loader) or {})
    return config


def model_config(name, length, size, overrides):
    config = DictConfig(USER_ID_FIELD="user_id", ITEM_ID_FIELD="item_id", LIST_SUFFIX="_list",
                        ITEM_LIST_LENGTH_FIELD="item_length", NEG_PREFIX="neg_", MAX_ITEM_LIST_LENGTH=length,
                        device=torch.device("cpu"))
    config.update(yaml_defaults(name))
    config.update(loss_type="CE", train_neg_sample_args=None)
    config.update(size.widths)
    config.update(overrides)
    return config


def build(name, length, size, overrides, seed=0):
    """The model on the CPU, its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return resolve_model(name)(model_config(name, length, size, overrides), FakeDataset(size.n_items))


def mamba_variants():
    """(label, model, overrides) of the models whose Mamba path is compared."""
    sigma = yaml_defaults("SIGMA")
    variants = [("Mamba4Rec", "Mamba4Rec", {})]
    if "sigma_variant" in sigma:  # the default, then the public code's and the recommended (notebook) preset
        variants.append((f"SIGMA (sigma_variant {sigma['sigma_variant']})", "SIGMA", {}))
        variants += [(f"SIGMA (sigma_variant {preset})", "SIGMA", {"sigma_variant": preset})
                     for preset in ("public_code", "notebook") if preset != sigma["sigma_variant"]]
    else:
        variants.append(("SIGMA", "SIGMA", {}))
    return variants + [("EchoMamba4Rec", "EchoMamba4Rec", {})]


def timed_models():
    """(label, model, overrides) of the timing rows: each with length buckets off and on."""
    rows = []
    for name in ("SASRec", "Mamba4Rec", "SIGMA", "EchoMamba4Rec"):
        rows.append((f"{name} padded", name, {"length_buckets": False}))
        rows.append((f"{name} bucketed", name, {"length_buckets": True}))
    return rows


def make_batch(model, batch, length, n_items, seed=0):
    """Left-aligned item sequences, lengths geometric with Beauty's mean (capped at L), next items."""
    from recbole.data.interaction import Interaction

    g = torch.Generator().manual_seed(seed)
    u = torch.rand(batch, generator=g).clamp(min=1e-12)
    lengths = (torch.floor(u.log() / math.log(1 - 1 / BEAUTY_MEAN_LENGTH)) + 1).clamp(1, length).long()
    items = torch.randint(1, n_items, (batch, length), generator=g)
    items = items * (torch.arange(length)[None, :] < lengths[:, None])
    return Interaction({model.ITEM_SEQ: items, model.ITEM_SEQ_LEN: lengths,
                        model.POS_ITEM_ID: torch.randint(1, n_items, (batch,), generator=g)})


# -- the kernel's stand-in on a CPU ---------------------------------------------------------------

def reference_inner_fn(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, out_proj_weight,
                       out_proj_bias, A, B=None, C=None, D=None, delta_bias=None, delta_softplus=True):
    """mamba-ssm's ``mamba_inner_fn`` (input-dependent B and C) in PyTorch ops: xz (B, 2*d_inner, L)
    -> (B, L, d_model). Stands in for the kernel where there is no CUDA."""
    seqlen, rank, d_state = xz.shape[-1], delta_proj_weight.shape[1], A.shape[-1]
    x, z = xz.chunk(2, dim=1)  # (B, d_inner, L) each
    kernel = conv1d_weight.shape[-1]
    x = F.silu(F.conv1d(x, conv1d_weight, conv1d_bias, padding=kernel - 1, groups=x.shape[1])[..., :seqlen])
    x = x.transpose(1, 2)  # (B, L, d_inner)
    dt, B, C = F.linear(x, x_proj_weight).split([rank, d_state, d_state], dim=-1)
    y = selective_scan_ref(x, F.linear(dt, delta_proj_weight), A, B, C, D, z=z.transpose(1, 2),
                           delta_bias=delta_bias, delta_softplus=delta_softplus)
    return F.linear(y, out_proj_weight, out_proj_bias)


@contextlib.contextmanager
def kernel_path(device):
    """On a CUDA device: nothing (the blocks pick the kernels themselves). On a CPU: every Mamba
    block takes its kernel branch, with :func:`reference_inner_fn` as the kernel."""
    if device.type == "cuda":
        yield
        return
    saved = mamba._kernels, mamba._on_cuda
    mamba._kernels = mamba.KernelState(reference_inner_fn, None)
    mamba._on_cuda = lambda tensor: True
    try:
        yield
    finally:
        mamba._kernels, mamba._on_cuda = saved


# -- environment and backends ---------------------------------------------------------------------

def environment(device):
    versions = mamba.kernel_versions()
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(), "mamba-ssm": versions["mamba-ssm"],
           "causal-conv1d": versions["causal-conv1d"], "recbole_sigma": recbole_sigma.__version__}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
        error = mamba.kernel_error()
        if error is None:  # imported: do they hold code for this GPU?
            error = mamba.probe_kernels(mamba.load_cuda_kernels(), device)
            env["kernels"] = "import and run ok" if error is None else f"import ok, fail here: {mamba.describe_error(error)}"
        else:
            env["kernels"] = mamba.describe_error(error)
    else:
        env["kernels"] = "not tried (no CUDA device)"
    return env


def backends(device):
    """{label: the path the model's Mamba blocks take on ``device`` in float32, and why}."""
    out = {}
    for label, name, overrides in mamba_variants():
        config = dict(yaml_defaults(name), **overrides)
        choice = mamba.choose_backend(config["mamba_backend"], config["d_conv"], config["d_state"],
                                      torch.float32, device.type == "cuda", device)
        out[label] = "mamba-ssm kernels" if choice.kernels else f"PyTorch path ({choice.reason})"
    return out


# -- path comparison and checkpoint ---------------------------------------------------------------

def relative_error(got, expected):
    """max |got - expected| / max |expected| (0 for two zero tensors)."""
    scale = expected.abs().max().item()
    diff = (got - expected).abs().max().item()
    return diff / scale if scale else diff


def scores_and_grads(model, batch):
    """Full-sort scores and the CE loss's gradients, dropout off; all on the CPU."""
    model.eval()
    model.zero_grad()
    with torch.no_grad():
        scores = model.full_sort_predict(batch).cpu()
    model.calculate_loss(batch).backward()
    grads = {n: p.grad.cpu() for n, p in model.named_parameters() if p.grad is not None}
    return scores, grads


def compare_paths(label, name, overrides, device, size):
    """The GPU (or stand-in) path against our CPU path on the same weights and batch."""
    cpu_model = build(name, size.compare_length, size, overrides)
    dev_model = copy.deepcopy(cpu_model).to(device)
    batch = make_batch(cpu_model, size.compare_batch, size.compare_length, size.n_items)
    with kernel_path(device):
        dev_scores, dev_grads = scores_and_grads(dev_model, batch.to(device))
    cpu_scores, cpu_grads = scores_and_grads(cpu_model, batch)
    grad_errors = {n: relative_error(dev_grads[n], g) for n, g in cpu_grads.items() if n in dev_grads}
    worst = max(grad_errors, key=grad_errors.get)
    result = {"model": label, "forward_rel_err": relative_error(dev_scores, cpu_scores),
              "grads_compared": len(grad_errors), "grads_missing": sorted(set(cpu_grads) ^ set(dev_grads)),
              "worst_grad": worst, "worst_grad_rel_err": grad_errors[worst]}
    result.update(checkpoint_round_trip(name, overrides, dev_model, batch, device, size))
    result["pass"] = (result["forward_rel_err"] <= TOLERANCE and result["worst_grad_rel_err"] <= TOLERANCE
                      and not result["grads_missing"] and result["strict_load"] == "ok"
                      and result["checkpoint_rel_err"] <= TOLERANCE)
    return result


def checkpoint_round_trip(name, overrides, dev_model, batch, device, size):
    """One training step on ``device``, the state dict saved and loaded strictly on the CPU."""
    optimizer = torch.optim.Adam(dev_model.parameters(), lr=1e-2)
    with kernel_path(device):
        dev_model.train()
        optimizer.zero_grad()
        dev_model.calculate_loss(batch.to(device)).backward()
        optimizer.step()
        dev_model.eval()
        with torch.no_grad():
            dev_scores = dev_model.full_sort_predict(batch.to(device)).cpu()
    buffer = io.BytesIO()
    torch.save(dev_model.state_dict(), buffer)
    buffer.seek(0)
    cpu_model = build(name, size.compare_length, size, overrides, seed=1).eval()
    try:
        cpu_model.load_state_dict(torch.load(buffer, map_location="cpu"), strict=True)
    except RuntimeError as e:
        return {"strict_load": mamba.describe_error(e), "checkpoint_rel_err": math.inf}
    with torch.no_grad():
        cpu_scores = cpu_model.full_sort_predict(batch)
    return {"strict_load": "ok", "checkpoint_rel_err": relative_error(dev_scores, cpu_scores)}


def run_guarded(fn, *args):
    """``fn(*args)``, or a row naming the error (an OOM on one row must not stop the report)."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001  (reported, not hidden)
        return {"error": mamba.describe_error(e), "pass": False}


# -- timing ---------------------------------------------------------------------------------------

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mean_ms(fn, device, steps):
    """Mean wall milliseconds of ``fn()`` over ``steps`` calls, after one warm-up call."""
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) * 1000 / steps


def peak_gib(device, fn):
    """Run ``fn``; peak GPU memory allocated meanwhile, in GiB (None on a CPU) and its result."""
    if device.type != "cuda":
        return None, fn()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    result = fn()
    return torch.cuda.max_memory_allocated(device) / 2**30, result


def time_model(label, name, overrides, length, device, size):
    model = build(name, length, size, overrides).to(device)
    batch = make_batch(model, size.batch, length, size.n_items).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step():
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()

    def eval_batch():
        with torch.no_grad():
            model.full_sort_predict(batch)

    model.train()
    train_gib, train_ms = peak_gib(device, lambda: mean_ms(train_step, device, size.steps))
    model.eval()
    eval_gib, eval_ms = peak_gib(device, lambda: mean_ms(eval_batch, device, size.steps))
    return {"model": label, "L": length, "length_buckets": overrides["length_buckets"], "train_ms": train_ms,
            "eval_ms": eval_ms, "train_peak_gib": train_gib, "eval_peak_gib": eval_gib}


# -- reports --------------------------------------------------------------------------------------

def first_line(device, env):
    if device.type == "cuda":
        return (f"gpu_check: CUDA device {env['gpu']} (torch {env['torch']}, CUDA {env['cuda']}); "
                f"mamba-ssm kernels: {env['kernels']}")
    return ("gpu_check: no CUDA device: CPU against CPU at a small size (mamba_inner_fn replaced by its "
            "PyTorch reference); nothing here measures a GPU")


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def comparison_table(rows):
    lines = [f"Tolerance: max |difference| <= {TOLERANCE:g} x max |value| of each tensor, float32.", "",
             "| model | forward | worst gradient | grads | checkpoint strict load | checkpoint scores | pass |",
             "| --- | ---: | --- | ---: | --- | ---: | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error']} | | | | | no |")
            continue
        lines.append(f"| {r['model']} | {r['forward_rel_err']:.2e} | {r['worst_grad_rel_err']:.2e} "
                     f"({r['worst_grad']}) | {r['grads_compared']} | {r['strict_load']} | "
                     f"{r['checkpoint_rel_err']:.2e} | {'yes' if r['pass'] else 'NO'} |")
    return lines


def timing_table(rows):
    base = {r["L"]: r for r in rows if r.get("model") == "SASRec padded" and "error" not in r}
    lines = ["| model | L | train ms/step | eval ms/batch | eval x SASRec padded | peak GiB train | "
             "peak GiB eval |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['L']} | error: {r['error']} | | | | |")
            continue
        ratio = r["eval_ms"] / base[r["L"]]["eval_ms"] if r["L"] in base else None
        lines.append(f"| {r['model']} | {r['L']} | {r['train_ms']:.1f} | {r['eval_ms']:.1f} | {_fmt(ratio, '.2f')} "
                     f"| {_fmt(r['train_peak_gib'], '.2f')} | {_fmt(r['eval_peak_gib'], '.2f')} |")
    return lines


def paper_table3():
    base_ms, base_gb = PAPER_TABLE3_BEAUTY["SASRec"]
    lines = ["Paper Table 3 (Beauty, the authors' GPU and batch): inference ms/batch and GPU GB, and their "
             "ratio to SASRec:", "", "| model | ms/batch | x SASRec | GB | x SASRec |", "| --- | ---: | ---: | ---: | ---: |"]
    for model, (ms, gb) in PAPER_TABLE3_BEAUTY.items():
        lines.append(f"| {model} | {ms} | {ms / base_ms:.2f} | {gb} | {gb / base_gb:.2f} |")
    return lines


def speed_caveat(report):
    if report["device"] != "cuda":
        return "No GPU: these CPU numbers only show that the timing code runs (tiny size, few steps); they measure nothing."
    if report["environment"]["kernels"] != "import ok":
        return ("The mamba-ssm kernels were not measured (" + report["environment"]["kernels"] + "): every Mamba "
                "row is the PyTorch path on the GPU.")
    return "Mamba rows: mamba-ssm's kernels (see the backends above)."


def markdown(report):
    size = report["size"]
    lines = ["# gpu_check", "", report["first_line"], "", f"Run {report['date']}: `{report['command']}`", "",
             "## Environment", "", "| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in report["environment"].items()]
    lines += ["", "## Backend of each model (float32, on this device)", "", "| model | path |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in report["backends"].items()]
    lines += ["", f"## GPU path against the CPU path (B = {size['compare_batch']}, L = {size['compare_length']}; "
              "checkpoint: one GPU training step, state dict loaded strictly on the CPU)", ""]
    lines += comparison_table(report["comparisons"])
    lines += ["", f"## Speed (B = {size['batch']}, {size['n_items']} items, mean of {size['steps']} after a "
              f"warm-up; lengths geometric with mean {BEAUTY_MEAN_LENGTH}, capped at L)", ""]
    lines += [speed_caveat(report), ""] + timing_table(report["timings"]) + [""] + paper_table3()
    return "\n".join(lines) + "\n"


def write_reports(report, out):
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / "gpu_report.md").write_text(markdown(report))


# -- command line ---------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m recbole_sigma.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="folder for gpu_report.md and gpu_report.json (default: .)")
    parser.add_argument("--quick", action="store_true", help="fewer lengths and steps (seconds on a CPU)")
    return parser.parse_args(argv)


def run_check(device, quick, command=""):
    """The whole check on ``device``: the report as a dict (printed as it goes)."""
    size = SIZES[(device.type, quick)]
    env = environment(device)
    report = {"first_line": first_line(device, env), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": command, "device": device.type, "quick": quick, "tolerance": TOLERANCE,
              "size": size._asdict(), "environment": env, "backends": backends(device)}
    print(report["first_line"], flush=True)
    for key, value in list(env.items()) + list(report["backends"].items()):
        print(f"  {key}: {value}", flush=True)
    report["comparisons"] = [dict({"model": label}, **run_guarded(compare_paths, label, name, overrides, device, size))
                             for label, name, overrides in mamba_variants()]
    for r in report["comparisons"]:
        print(f"  compare {r['model']}: {'pass' if r['pass'] else 'FAIL'} {r.get('error', '')}", flush=True)
    report["timings"] = []
    for length in size.lengths:
        for label, name, overrides in timed_models():
            row = dict({"model": label, "L": length}, **run_guarded(time_model, label, name, overrides, length, device, size))
            report["timings"].append(row)
            print(f"  time {label} L={length}: " + (row.get("error") or
                  f"train {row['train_ms']:.1f} ms/step, eval {row['eval_ms']:.1f} ms/batch"), flush=True)
    return report


def main(argv=None):
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = run_check(device, args.quick, "python -m recbole_sigma.gpu_check " + " ".join(argv or sys.argv[1:]))
    write_reports(report, Path(args.out))
    print(f"wrote {Path(args.out) / 'gpu_report.md'} and gpu_report.json", flush=True)
    return 0 if all(r["pass"] for r in report["comparisons"]) else 1


if __name__ == "__main__":
    sys.exit(main())
