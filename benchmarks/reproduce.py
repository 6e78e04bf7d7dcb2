#!/usr/bin/env python
"""Reproduce the SIGMA paper's comparisons on one dataset, one job at a time, resumably.

    # Table 2 + Fig. 3 (all models, 3 seeds), in the background:
    nohup python benchmarks/reproduce.py --dataset amazon-beauty --data_path /work/shared/datasets \\
        --models SIGMA Mamba4Rec EchoMamba4Rec SASRec GRU4Rec BERT4Rec FEARec --seeds 2020 2021 2022 \\
        > runs/beauty.out 2>&1 &
    # Table 4 ablations and the r sweep (SIGMA only; r = 5 is the default, no_flip is r >= L):
    python benchmarks/reproduce.py --dataset amazon-beauty --data_path /work/shared/datasets \\
        --models SIGMA --variants default no_flip no_gate no_gru r0 --seeds 2020 2021 2022
    # anything else: --set key=value (every job, highest priority), --dry-run, --report-only

Every (model, variant, seed) is one job, trained in its own child process (this script with
``--child``, which calls ``recbole_sigma.run``), one at a time. A job lives in
``<runs-dir>/<job>/`` (default ``runs/<dataset>/``): ``job.json`` (its config and the YAML
defaults it ran with; a started job whose effective settings differ from this invocation's is refused),
``train.log`` (the child's output; RecBole's own log is under ``log/`` there),
``checkpoints/``, ``epochs.jsonl`` (per-epoch train time, loss, valid score), ``attempts.jsonl``
and, once finished, ``result.json``. A job with a ``result.json`` is skipped (``--rerun`` redoes
it); an unfinished one is resumed from its checkpoint (see ``train``). After every job the report
(``--output``, default ``docs/results/<dataset>.md``) is rewritten from the ``result.json`` files:
the overall table (mean +- std over seeds), the seeds table (best valid and test metrics beside the
paper's, which are validation numbers), one-sided Welch p-values of SIGMA against each multi-seed
model, measured / paper percentages, the training curves (with the authors' own curves, quoted, where
``AUTHORS_CURVES`` has the dataset) and the grouped-user table, with their figures (PNGs next to it),
and ``<report>.reading.md`` if present.

Identical data and evaluation settings for every model (``COMMON``): leave-one-out, time order,
full-sort ranking over all items, the dataset YAML's MAX_ITEM_LIST_LENGTH, HR/NDCG/MRR@10,
NDCG@10 for early stopping (patience 10), batch 2048, Adam lr 1e-3, hidden size 64. Each model
keeps its own YAML defaults (``recbole_sigma.config_files``); RecBole's built-ins (SASRec,
GRU4Rec, BERT4Rec, FEARec) keep RecBole's, with CE loss and no negative sampling (``BUILTIN``);
SASRec runs as ``recbole_sigma.model.SASRec`` (RecBole's, length-bucketed: same outputs, faster).
"""
import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # recbole_sigma from this checkout, in the driver and in each job's child

# The same for every job (over each model's YAML, under variants and --set).
COMMON = {
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
    "metrics": ["Hit", "NDCG", "MRR"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "stopping_step": 10,
    "train_batch_size": 2048,
    "eval_batch_size": 4096,
    "learning_rate": 0.001,
    "hidden_size": 64,
    "show_progress": False,
}
# RecBole's own models: its YAML defaults, trained like ours (full-softmax CE, no sampled negatives).
BUILTIN = {"loss_type": "CE", "train_neg_sample_args": None}
# Named variants: (models they apply to, config overrides). r<N> is SIGMA with flip_remain = N.
VARIANTS = {
    "default": (None, {}),
    "no_flip": (("SIGMA",), {"use_partial_flip": False}),  # Table 4 "w/o partial flipping"
    "no_gate": (("SIGMA",), {"use_ds_gate": False}),  # Table 4 "w/o DS gate"
    "no_gru": (("SIGMA",), {"use_fe_gru": False}),  # Table 4 "w/o FE-GRU"
    # SIGMA gives no dropout and defers other details to the baselines' papers; Mamba4Rec uses 0.4 on Amazon.
    "dropout04": (("SIGMA",), {"dropout_prob": 0.4}),
    # Diagnostics beyond Table 4 (why SIGMA trails Mamba4Rec): all three parts off, leaving two Mamba
    # blocks on the same sequence, a1 (M0 + M0') W + b; and the public code's gate with mixing weights
    # frozen at softmax([0.1, 0.1, 0.8]) (0.50 forward / 0.25 flipped / 0.25 GRU; an earlier reading of
    # that code, which trains them from the raw values) on the paper's flip, two Mambas and GRU.
    "two_mamba": (("SIGMA",), {"use_partial_flip": False, "use_ds_gate": False, "use_fe_gru": False}),
    "public_gate_mix": (("SIGMA",), {"gate_mode": "public_code", "mix_weights": "frozen_softmax"}),
    # The authors' SIGMA as their repository computes it at HEAD (recbole_sigma/model/sigma.py).
    "public_code": (("SIGMA",), {"sigma_variant": "public_code"}),
}
DEFAULT_MODELS = ["SIGMA", "Mamba4Rec", "EchoMamba4Rec", "SASRec", "GRU4Rec", "BERT4Rec", "FEARec"]
OURS = ("SIGMA", "Mamba4Rec", "EchoMamba4Rec")
METRICS = ("hit@10", "ndcg@10", "mrr@10")
# Quoted from the paper (arXiv 2408.11451): Table 2 (Beauty column) and Table 4 (ablations on Beauty).
# These are validation numbers (its Beauty Mamba4Rec row is the best-valid line of the authors' notebook,
# AUTHORS_CURVES below): the report sets them beside our best-valid metrics.
PAPER = {
    "amazon-beauty": {
        ("GRU4Rec", "default"): (0.0612, 0.0334, 0.0242),
        ("BERT4Rec", "default"): (0.0764, 0.0395, 0.0285),
        ("SASRec", "default"): (0.0852, 0.0532, 0.0392),
        ("FEARec", "default"): (0.0967, 0.0530, 0.0410),
        ("Mamba4Rec", "default"): (0.0880, 0.0540, 0.0436),
        ("EchoMamba4Rec", "default"): (0.0903, 0.0567, 0.0447),
        ("SIGMA", "default"): (0.0986, 0.0604, 0.0488),
        ("SIGMA", "no_flip"): (0.0953, 0.0586, 0.0473),
        ("SIGMA", "no_gate"): (0.0954, 0.0571, 0.0455),
        ("SIGMA", "no_gru"): (0.0750, 0.0470, 0.0382),
    }
}
# Valid NDCG@10 after each epoch of the authors' own Beauty runs (dropout 0.2, L 50, seed 2020, batch
# 2048), quoted from RecMamba.ipynb in github ziwliu8/SIGMA (its cells' printed "valid result" lines).
AUTHORS_CURVES = {
    "amazon-beauty": {
        "SIGMA, authors' notebook, cell 66 (quoted)": (
            0.0088, 0.0121, 0.0189, 0.0253, 0.0306, 0.0355, 0.0396, 0.0440, 0.0474, 0.0494, 0.0527, 0.0540,
            0.0562, 0.0569, 0.0571, 0.0584, 0.0588, 0.0594, 0.0594, 0.0597, 0.0593, 0.0591, 0.0590, 0.0587,
            0.0587, 0.0587, 0.0588, 0.0582, 0.0582, 0.0574, 0.0576),
        "Mamba4Rec, authors' notebook, cell 68 (quoted)": (
            0.0081, 0.0111, 0.0186, 0.0252, 0.0289, 0.0326, 0.0356, 0.0380, 0.0403, 0.0433, 0.0452, 0.0467,
            0.0479, 0.0490, 0.0499, 0.0506, 0.0509, 0.0518, 0.0517, 0.0528, 0.0531, 0.0535, 0.0532, 0.0532,
            0.0540, 0.0540, 0.0528, 0.0533, 0.0533, 0.0523, 0.0524, 0.0529, 0.0531, 0.0529, 0.0526, 0.0527,
            0.0524),
    }
}
# Keys that name where a job lives, not what it computes: ignored when checking a finished job's config.
PATH_KEYS = ("checkpoint_dir", "data_path")


# --------------------------------------------------------------------------------------------
# The one call into recbole_sigma that trains a job
# --------------------------------------------------------------------------------------------
def train(model, dataset, config_dict, resume, config_file_list=None, epochs_file=None):
    """Train one job with ``recbole_sigma.run``; ``resume``: continue from
    ``<checkpoint_dir>/<model>-<dataset>-last.pth`` (written after every epoch; a run that had
    finished is not trained again). Each epoch's train time/loss and valid time/score are
    appended to ``epochs_file`` (JSON lines)."""
    import recbole_sigma

    def record(event):
        event = {k: v for k, v in event.items() if k != "valid_result"}
        with open(epochs_file, "a") as f:
            f.write(json.dumps(event) + "\n")

    return recbole_sigma.run(model, dataset, config_file_list or None, config_dict, resume=resume,
                             on_epoch=record if epochs_file else None)


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------
def variant_overrides(model, variant):
    """Config overrides of ``variant`` for ``model``, or None when it does not apply to it."""
    match = re.fullmatch(r"r(\d+)", variant)
    if match:
        return {"flip_remain": int(match.group(1))} if model == "SIGMA" else None
    if variant not in VARIANTS:
        raise SystemExit(f"error: unknown variant {variant!r}: {', '.join(VARIANTS)} or r<N> (SIGMA's flip_remain = N)")
    models, overrides = VARIANTS[variant]
    return dict(overrides) if models is None or model in models else None


def job_name(model, variant, seed):
    return f"{model}-s{seed}" if variant == "default" else f"{model}-{variant}-s{seed}"


def yaml_defaults(model, dataset, extra_files=()):
    """What our YAML files (model, dataset, model-dataset) and ``--config_files`` set for a job,
    merged in RecBole's order: recorded in job.json, so that a finished job whose YAML defaults
    changed since is not taken for a run of today's defaults."""
    import yaml

    import recbole_sigma

    merged = {}
    for path in recbole_sigma.config_files(model, dataset) + list(extra_files):
        with open(path) as f:
            merged.update(yaml.safe_load(f) or {})
    return json.loads(json.dumps(merged))


def job_config(model, variant, seed, args, job_dir):
    config = json.loads(json.dumps(COMMON))
    if model not in OURS:
        config.update(BUILTIN)
    config.update(variant_overrides(model, variant))
    config["seed"] = seed
    config["data_path"] = str(Path(args.data_path).resolve())
    config["checkpoint_dir"] = str(job_dir / "checkpoints")
    config.update(args.overrides)
    return config


def plan_jobs(args):
    """[(key=(model, variant), seed, name, dir, config)], seeds outermost (a complete table sooner)."""
    from recbole.model.abstract_recommender import SequentialRecommender

    from recbole_sigma.errors import UnknownModelError
    from recbole_sigma.config import resolve_model

    for model in args.models:
        try:
            model_class = resolve_model(model)
        except UnknownModelError as e:
            raise SystemExit(f"error: {e}") from None
        if not issubclass(model_class, SequentialRecommender):
            raise SystemExit(f"error: {model} is not a sequential recommender; the harness compares sequential "
                             "models (leave-one-out next-item prediction, grouped by history length)")
    pairs = []
    for model in args.models:
        for variant in args.variants:
            if variant_overrides(model, variant) is not None:
                pairs.append((model, variant))
    for model in args.models:
        if not any(m == model for m, _ in pairs):
            raise SystemExit(f"error: none of the variants {args.variants} applies to {model}")
    jobs = []
    for seed in args.seeds:
        for model, variant in pairs:
            name = job_name(model, variant, seed)
            job_dir = args.runs_dir / name
            jobs.append({
                "key": (model, variant), "model": model, "variant": variant, "seed": seed, "name": name,
                "dir": job_dir, "config": job_config(model, variant, seed, args, job_dir),
                "yaml_defaults": yaml_defaults(model, args.dataset, args.config_files),
            })
    return jobs


def _comparable(config):
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k not in PATH_KEYS}


def job_state(job):
    """'done' (result.json), 'partial' (started, unfinished), or 'new'."""
    if (job["dir"] / "result.json").is_file():
        return "done"
    return "partial" if (job["dir"] / "job.json").is_file() else "new"


def has_checkpoint(job):
    return any((job["dir"] / "checkpoints").glob("*.pth"))


def effective_config(config, yaml_values):
    """The settings a job runs with: its YAML defaults under its config (variant, --set, COMMON)."""
    return _comparable({**(yaml_values or {}), **config})


def config_mismatch(job):
    """Keys whose effective value differs between the stored job.json and this invocation.

    Compared are the effective settings, not how they were given: a job run with
    ``dropout_prob: 0.4`` as a variant override matches one where the YAML now says 0.4. A
    job.json from before YAML defaults were recorded is compared on its config alone. A key added
    since the job ran matches when it has the default that stands for what older configs computed
    (``recbole_sigma.config_checks.OPTIONAL_KEYS``, e.g. ``sigma_variant: paper``)."""
    from recbole_sigma.config_checks import OPTIONAL_KEYS

    try:
        stored = json.loads((job["dir"] / "job.json").read_text())
    except (OSError, ValueError):
        return []
    if "yaml_defaults" in stored:
        old = effective_config(stored.get("config", {}), stored["yaml_defaults"])
        new = effective_config(job["config"], job.get("yaml_defaults"))
    else:
        old, new = _comparable(stored.get("config", {})), _comparable(job["config"])
    for key, default in OPTIONAL_KEYS.items():
        old.setdefault(key, default)
        new.setdefault(key, default)
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


@contextlib.contextmanager
def job_lock(job_dir):
    """An exclusive lock on the job's folder while its child runs; yields False if another harness holds it."""
    import fcntl

    job_dir.mkdir(parents=True, exist_ok=True)
    with open(job_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_CHILD = {"proc": None, "stop": None}


def _on_sigterm(signum, frame):
    """Pass SIGTERM to the running child and stop after it exits (the job resumes next time)."""
    _CHILD["stop"] = signum
    proc = _CHILD["proc"]
    if proc is None:
        sys.exit(128 + signum)
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signum)  # not proc.terminate(): the main thread's proc.wait() holds its lock


def run_job(job, command):
    """Write job.json, run the child (this script --child <dir>) with its output in train.log; its exit code."""
    job_dir = job["dir"]
    spec = {
        "name": job["name"], "model": job["model"], "variant": job["variant"], "seed": job["seed"],
        "dataset": command["dataset"], "config": job["config"], "config_files": command["config_files"],
        "yaml_defaults": job.get("yaml_defaults"), "command": command["line"],
    }
    (job_dir / "job.json").write_text(json.dumps(spec, indent=2))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    record_lost_attempt(job_dir)
    started = time.time()
    with open(job_dir / "train.log", "a") as log:
        log.write(f"\n===== {now()} {ATTEMPT_MARK} {' '.join(map(shlex.quote, child_command(job_dir)))}\n")
        log.flush()
        proc = subprocess.Popen(child_command(job_dir), cwd=job_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        _CHILD["proc"] = proc
        try:
            rc = wait_with_heartbeat(proc, job_dir / HEARTBEAT_FILE, started)
        finally:
            _CHILD["proc"] = None
    record_attempt(job_dir, started, time.time(), rc)
    (job_dir / HEARTBEAT_FILE).unlink(missing_ok=True)
    return rc


# A running attempt rewrites HEARTBEAT_FILE every HEARTBEAT_S seconds. When the whole process tree
# dies (a session ends, the machine stops) nothing else records the attempt: the next run finds the
# file and records that attempt up to its last heartbeat, so wall times lose at most HEARTBEAT_S.
ATTEMPT_MARK = "attempt:"
HEARTBEAT_FILE = "attempt.json"
HEARTBEAT_S = 60


def wait_with_heartbeat(proc, heartbeat, started, every=None):
    """proc.wait(), rewriting ``heartbeat`` with {started, alive} meanwhile; the exit code."""
    while True:
        heartbeat.write_text(json.dumps({"started": started, "alive": time.time()}))
        try:
            return proc.wait(timeout=every or HEARTBEAT_S)
        except subprocess.TimeoutExpired:
            pass


def record_attempt(job_dir, started, finished, rc):
    with open(job_dir / "attempts.jsonl", "a") as f:
        attempt = {"started": iso(started), "finished": iso(finished), "wall_s": finished - started, "rc": rc}
        f.write(json.dumps(attempt) + "\n")


def record_lost_attempt(job_dir):
    """An attempt killed with this process left its heartbeat: record it up to its last sign of life."""
    heartbeat = job_dir / HEARTBEAT_FILE
    if heartbeat.is_file():
        beat = json.loads(heartbeat.read_text())
        record_attempt(job_dir, beat["started"], beat["alive"], "lost")
        heartbeat.unlink()


def child_command(job_dir):
    return [sys.executable, str(Path(__file__).resolve()), "--child", str(job_dir)]


# --------------------------------------------------------------------------------------------
# The child: train, then grouped evaluation and timing of the best checkpoint
# --------------------------------------------------------------------------------------------
def now():
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def iso(timestamp):
    return dt.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def peak_rss_mb():
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def versions():
    import numpy
    import recbole
    import torch

    import recbole_sigma

    found = {
        "python": platform.python_version(), "torch": torch.__version__, "recbole": recbole.__version__,
        "numpy": numpy.__version__, "recbole_sigma": recbole_sigma.__version__,
    }
    for name in ("numba", "mamba_ssm", "causal_conv1d"):
        try:
            found[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 -- absent or broken: recorded as absent
            found[name] = None
    try:
        found["git"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                      text=True, timeout=10).stdout.strip() or None
        status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
        found["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except OSError:
        found["git"] = found["git_dirty"] = None
    return found


def machine():
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu, "cores": cores, "torch_threads": torch.get_num_threads(), "memory_gb": memory_gb,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "host": platform.node(),
        "os": platform.platform(),
    }


def read_epochs(epochs_file):
    """{epoch: merged record}; a later record of the same epoch (a resumed re-run) wins."""
    epochs = {}
    if epochs_file.is_file():
        for line in epochs_file.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("epoch") is not None:
                    epochs.setdefault(entry["epoch"], {}).update(entry)
    return epochs


def epoch_summary(epochs):
    trained = sorted(e for e, r in epochs.items() if "train_s" in r)
    validated = [(e, r["valid_score"]) for e, r in sorted(epochs.items()) if "valid_score" in r]
    best = max((s for _, s in validated), default=None)
    best_epoch = min((e for e, s in validated if s == best), default=None)  # RecBole keeps the first best
    median = lambda xs: float(statistics.median(xs)) if xs else None  # noqa: E731 -- robust to a busy spell
    return {
        "epochs_trained": len(trained),
        "epochs_to_best": None if best_epoch is None else best_epoch + 1,
        "train_s_per_epoch": median([epochs[e]["train_s"] for e in trained]),
        "valid_s_per_epoch": median([r["valid_s"] for r in epochs.values() if "valid_s" in r]),
    }


def child_main(job_dir):
    job_dir = Path(job_dir).resolve()
    spec = json.loads((job_dir / "job.json").read_text())
    started = time.time()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    import numpy as np

    import recbole_sigma
    from recbole_sigma import grouped_eval
    from recbole_sigma.malloc import keep_freed_memory

    keep_freed_memory()  # the child is a training process: the allocator as the command line sets it
    config = dict(spec["config"])
    config_file_list = list(spec.get("config_files") or [])
    checkpoint_dir = Path(config["checkpoint_dir"])
    epochs_file = job_dir / "epochs.jsonl"
    resumed = any(checkpoint_dir.glob("*.pth"))
    if not resumed:  # a fresh start: forget the earlier attempt's epochs
        epochs_file.unlink(missing_ok=True)
    result = train(spec["model"], spec["dataset"], config, resumed, config_file_list, epochs_file)
    train_wall = time.time() - started
    rss_train = peak_rss_mb()

    checkpoint = result.get("checkpoint")
    loaded = recbole_sigma.load_data_and_model(checkpoint)
    cfg, model, dataset, train_data, valid_data, test_data = loaded
    grouped = grouped_eval.evaluate(model, cfg, train_data, valid_data, test_data, time_batches=True)
    overall_diff = max(abs(grouped["overall"][m] - float(result["test_result"][m])) for m in METRICS)
    summary = epoch_summary(read_epochs(epochs_file))
    record = {
        "name": spec["name"], "model": spec["model"], "variant": spec["variant"], "seed": spec["seed"],
        "dataset": spec["dataset"],
        "test": {k: float(v) for k, v in result["test_result"].items()},
        "best_valid": {k: float(v) for k, v in (result["best_valid_result"] or {}).items()},
        **summary,
        "eval_ms_per_batch": grouped["eval"]["ms_per_batch"],
        "eval_batch_size": grouped["eval"]["batch_size"],
        "eval_batch_users": grouped["eval"]["batch_users"],
        "peak_rss_mb_train": rss_train,
        "peak_rss_mb": peak_rss_mb(),
        "train_wall_s": train_wall,
        "wall_s": time.time() - started,
        "started": iso(started),
        "finished": now(),
        "resumed": resumed,
        # 1-min load average at the start and the end: timings from a busy machine are not comparable
        "loadavg": [load_start, os.getloadavg()[0] if hasattr(os, "getloadavg") else None],
        "grouped": grouped,
        "grouped_minus_recbole_max_abs": overall_diff,  # RecBole rounds to metric_decimal_place
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": {
            "users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1),
            # one row per interaction but each user's first (which is no target)
            "interactions": int(len(dataset) + len(np.unique(dataset.inter_feat[dataset.uid_field].numpy()))),
            "max_item_list_length": int(cfg["MAX_ITEM_LIST_LENGTH"]),
            "eval_args": json.loads(json.dumps(cfg["eval_args"], default=str)),
        },
        "checkpoint": checkpoint,
        "config_files": recbole_sigma.config_files(spec["model"], spec["dataset"]) + (config_file_list or []),
        "config": spec["config"],
        "yaml_defaults": spec.get("yaml_defaults"),
        "versions": versions(),
        "machine": machine(),
        "device": str(cfg["device"]),
    }
    tmp = job_dir / "result.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(job_dir / "result.json")
    print(f"done: {spec['name']} test {record['test']}", flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------
def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std


def _fmt(values, digits=4):
    mean, std = _mean_std(values)
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


# What a variant's row is also known as (tests/test_models.py shows the equivalence).
ALSO_KNOWN_AS = {"no_flip": "= r >= L"}


def label_of(model, variant):
    if variant == "default":
        return model
    alias = ALSO_KNOWN_AS.get(variant)
    return f"{model} ({variant}, {alias})" if alias else f"{model} ({variant})"


def load_results(jobs):
    """{(model, variant): [result, ...]} in plan order; the pending jobs' names."""
    results, pending = {}, []
    for job in jobs:
        results.setdefault(job["key"], [])
        path = job["dir"] / "result.json"
        if path.is_file():
            result = json.loads(path.read_text())
            epochs = read_epochs(job["dir"] / "epochs.jsonl")
            if epochs:  # the summary as this version computes it
                result.update(epoch_summary(epochs))
            attempts = job["dir"] / "attempts.jsonl"
            if attempts.is_file():
                walls = [json.loads(x)["wall_s"] for x in attempts.read_text().splitlines() if x.strip()]
                result["total_wall_s"] = sum(walls)
                result["unrecorded_attempts"] = max(0, count_attempts(job["dir"] / "train.log") - len(walls))
            results[job["key"]].append(result)
        else:
            pending.append(job["name"])
    return results, pending


def count_attempts(train_log):
    """Attempts started, from the marker line run_job writes at the head of each in train.log."""
    if not train_log.is_file():
        return 0
    with open(train_log) as f:
        return sum(line.startswith("===== ") and f" {ATTEMPT_MARK} " in line for line in f)


def grouped_means(rows):
    """The mean over seeds of each group's metrics, as a grouped_eval report (for its table and plot)."""
    from recbole_sigma.grouped_eval import GROUP_NAMES

    first = rows[0]["grouped"]
    report = {"model": first["model"], "dataset": first["dataset"], "groups": {}, "overall": {}}
    for group in GROUP_NAMES + ("overall",):
        entries = [r["grouped"]["groups"][group] if group != "overall" else r["grouped"]["overall"] for r in rows]
        merged = {"label": entries[0].get("label"), "users": entries[0]["users"]}
        for metric in METRICS:
            merged[metric] = _mean_std([e.get(metric) for e in entries])[0]
        if group == "overall":
            report["overall"] = merged
        else:
            report["groups"][group] = merged
    return report


def build_report(args, command, jobs, results, pending):
    from recbole_sigma.grouped_eval import format_table, plot_groups
    from recbole_sigma.config import resolve_model

    done = [r for rows in results.values() for r in rows]
    lines = [f"# {args.dataset}: SIGMA paper reproduction", ""]
    paper = PAPER.get(args.dataset, {})
    lines += [
        "Generated by `benchmarks/reproduce.py`; every number below comes from its runs (`result.json` of each job)"
        + (", except the column quoted from the paper." if paper else "."), "",
        f"- command: `{command['line']}`",
        f"- report written: {now()}",
        f"- jobs: {len(done)} finished, {len(pending)} pending" + (f" ({', '.join(pending)})" if pending else ""),
    ]
    if done:
        first_start = min(r["started"] for r in done)
        last_end = max(r["finished"] for r in done)
        total = sum(r.get("total_wall_s", r["wall_s"]) for r in done)
        lines.append(f"- runs: {first_start} to {last_end}; total wall time {total / 3600:.2f} h")
        machines = {json.dumps(r["machine"], sort_keys=True) for r in done}
        vers = {json.dumps(r["versions"], sort_keys=True) for r in done}
        for m in sorted(machines):
            m = json.loads(m)
            lines.append(f"- machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
                         f"{m['memory_gb']} GB RAM, GPU {m['gpu'] or 'none'}; {m['os']}")
        for v in sorted(vers):
            v = json.loads(v)
            lines.append("- versions: " + ", ".join(f"{k} {v[k]}" for k in
                                                    ("python", "torch", "recbole", "numba", "numpy", "recbole_sigma",
                                                     "mamba_ssm", "git", "git_dirty") if k in v))
        d = done[0]["data"]
        lines.append(f"- data: {d['users']} users, {d['items']} items, {d['interactions']} interactions; "
                     f"MAX_ITEM_LIST_LENGTH {d['max_item_list_length']}; eval_args {d['eval_args']}")
    lines.append(f"- settings for every model: `{json.dumps(COMMON)}`; RecBole's built-ins also "
                 f"`{json.dumps(BUILTIN)}`; `--set` {json.dumps(args.overrides) if args.overrides else 'none'}")
    modules = {m: resolve_model(m).__module__ for m, _ in results}
    lines.append("- model classes: " + ", ".join(f"{m} `{module}`" for m, module in modules.items())
                 + ("; `recbole_sigma.model.sasrec` is RecBole's SASRec with a length-bucketed forward "
                    "(same outputs)" if "recbole_sigma.model.sasrec" in modules.values() else ""))
    used = sorted({v for _, v in results})
    for variant in used:
        if variant != "default":
            over = variant_overrides("SIGMA", variant)
            lines.append(f"- variant `{variant}`: `{json.dumps(over)}`")
    lines.append("")

    header = ["model", "seeds", "HR@10", "NDCG@10", "MRR@10", "best valid NDCG@10", "epochs to best",
              "epochs trained", "train s/epoch", "eval ms/batch", "peak RSS MB", "wall min"]
    if paper:
        header.append("paper HR / NDCG / MRR @10 (its validation numbers)")
    lines += ["## Test metrics (mean ± std over seeds)", "", "| " + " | ".join(header) + " |",
              "|" + " --- |" * len(header)]
    for key, rows in results.items():
        cells = [label_of(*key), f"{len(rows)}/{len(args.seeds)}"]
        cells += [_fmt([r["test"].get(m) for r in rows]) for m in METRICS]
        cells.append(_fmt([r["best_valid"].get("ndcg@10") for r in rows]))
        cells.append(_fmt([r["epochs_to_best"] for r in rows], 1))
        cells.append(_fmt([r["epochs_trained"] for r in rows], 1))
        cells.append(_fmt([r["train_s_per_epoch"] for r in rows], 1))
        cells.append(_fmt([r["eval_ms_per_batch"] for r in rows], 1))
        cells.append(f"{max(r['peak_rss_mb_train'] for r in rows):.0f}" if rows else "-")
        cells.append(_fmt([r.get("total_wall_s", r["wall_s"]) / 60 for r in rows], 1))
        if paper:
            quoted = paper.get(key)
            cells.append(" / ".join(f"{x:.4f}" for x in quoted) if quoted else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Train s/epoch: the median over the run's epochs of RecBole's training pass (no validation). "
              "Eval ms/batch: the model's "
              "full-sort scoring of one test batch of `eval_batch_size` users (or all test users if fewer; "
              "mean over full batches, after a "
              "warm-up batch) on the best checkpoint. Peak RSS: the child process's maximum resident set "
              "(`getrusage`) up to the end of training and the test evaluation. Wall: the job's processes, "
              "all attempts (data loading and the grouped evaluation included)."]
    if done:
        worst = max(r["grouped_minus_recbole_max_abs"] for r in done)
        lines.append(f"Check: the grouped evaluation's overall metrics equal RecBole's test metrics to "
                     f"{worst:.1e} (RecBole rounds to 4 decimals) over all jobs"
                     + ("." if worst <= 5.1e-5 else " -- MORE THAN ROUNDING: investigate."))
    if paper:
        lines.append("Paper column: quoted from the SIGMA paper (Table 2; Table 4 for the ablation variants), "
                     "not measured here; those are validation numbers, to compare with the best valid metrics "
                     "of the seeds table below.")
    lines.append("")
    lines += seeds_table(results, paper, len(args.seeds))
    lines += significance(results)
    lines += against_the_paper(results, paper)
    reading = args.output.with_name(args.output.stem + ".reading.md")
    if reading.is_file():  # hand-written prose about the tables above (kept beside the report)
        lines += ["## Reading", "", f"Written by hand, from `{reading.name}`.", "", reading.read_text().strip(), ""]

    curves = {}
    for job in jobs:
        if (job["dir"] / "result.json").is_file():
            scores = {e: r["valid_score"] for e, r in read_epochs(job["dir"] / "epochs.jsonl").items()
                      if "valid_score" in r}
            if scores:
                curves[job["name"]] = scores
    if curves:
        png = args.output.with_name(args.output.stem + "-curves.png")
        references = AUTHORS_CURVES.get(args.dataset)
        plot_curves(curves, png, title=f"{args.dataset}: validation during training", references=references)
        lines += ["## Training curves", "", "Valid NDCG@10 after each epoch (dot: the best epoch, whose "
                  "checkpoint is tested); training stops 10 validations after it."
                  + (" Dashed: the authors' own runs (" + "; ".join(references) + "): valid NDCG@10 per "
                     "epoch quoted from RecMamba.ipynb in their repository (github ziwliu8/SIGMA; dropout 0.2, "
                     "seed 2020, batch 2048), not measured here." if references else ""), "",
                  f"![valid NDCG@10 per epoch]({png.name})", ""]

    finished = {label_of(*k): grouped_means(rows) for k, rows in results.items() if rows}
    if finished:
        png = args.output.with_name(args.output.stem + "-groups.png")
        plot_groups(finished, png, metric="hit@10", title=f"{args.dataset}: HR@10 by history length")
        lines += ["## Users grouped by history length (test split, mean over seeds)", "",
                  "History length = the user's interactions before the test item (not truncated by "
                  "MAX_ITEM_LIST_LENGTH). Size-weighted group means equal the overall test metric.", "",
                  format_table(finished), "", f"![HR@10 by user group]({png.name})", ""]

    lines += ["## Jobs", "", "Load: the machine's 1-minute load average when the job started and ended "
              f"({done[0]['machine']['cores'] if done else '?'} cores); timings from a busy machine are not "
              "comparable.",
              "", "| job | seed | started | finished | wall min | epochs | resumed | load | checkpoint |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    unrecorded = 0
    for job in jobs:
        path = job["dir"] / "result.json"
        if path.is_file():
            r = next(x for x in results[job["key"]] if x["name"] == job["name"])
            lost = r.get("unrecorded_attempts", 0)
            unrecorded += lost
            lines.append(f"| {job['name']} | {job['seed']} | {r['started']} | {r['finished']} | "
                         f"{r.get('total_wall_s', r['wall_s']) / 60:.1f}{f' (+{lost} unrecorded)' if lost else ''} | "
                         f"{r['epochs_trained']} | "
                         f"{'yes' if r['resumed'] else 'no'} | {_load(r)} | `{Path(r['checkpoint']).name}` |")
        else:
            lines.append(f"| {job['name']} | {job['seed']} | - | - | - | - | - | - | pending ({job_state(job)}) |")
    if unrecorded:
        lines += ["", f"Unrecorded: {unrecorded} attempt(s) killed with the harness before it kept a heartbeat "
                  "(train.log shows where each began); their wall time is missing from the wall times above."]
    return "\n".join(lines) + "\n"


def plot_curves(curves, path, title=None, references=None):
    """Valid NDCG@10 per epoch, one line per job, its best epoch marked: {label: {epoch: score}};
    ``references`` ({label: scores from epoch 0}) are drawn dashed, unmarked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, scores in curves.items():
        epochs = sorted(scores)
        line, = ax.plot([e + 1 for e in epochs], [scores[e] for e in epochs], linewidth=1.6, label=label)
        best = min(epochs, key=lambda e: (-scores[e], e))  # RecBole keeps the first best
        ax.plot([best + 1], [scores[best]], marker="o", color=line.get_color())
    for (label, scores), color in zip((references or {}).items(), ("black", "dimgray", "darkgray")):
        ax.plot(range(1, len(scores) + 1), scores, linestyle="--", linewidth=1.2, color=color, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("valid NDCG@10")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    return str(path)


def seeds_table(results, paper, n_seeds):
    """Best valid and test HR/NDCG/MRR@10, mean ± std over seeds, beside the paper's (validation) numbers."""
    rows = {key: rows for key, rows in results.items() if rows}
    if not rows:
        return []
    header = ["model", "seeds"] + [f"{split} {m.replace('hit', 'HR').replace('ndcg', 'NDCG').replace('mrr', 'MRR')}"
                                   for split in ("valid", "test") for m in METRICS]
    if paper:
        header.append("paper HR / NDCG / MRR @10 (validation numbers)")
    lines = ["## Seeds: best valid and test metrics (mean ± std over seeds)", "",
             "Valid: the best epoch's validation metrics (its checkpoint is the one tested)."
             + (" The paper's Table 2 reports validation numbers (its Beauty Mamba4Rec row is the best-valid "
                "line of the authors' notebook), so its column compares with the valid columns, not the test "
                "ones." if paper else ""), "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for key, runs in rows.items():
        cells = [label_of(*key), f"{len(runs)}/{n_seeds}"]
        cells += [_fmt([r[split].get(m) for r in runs]) for split in ("best_valid", "test") for m in METRICS]
        if paper:
            quoted = paper.get(key)
            cells.append(" / ".join(f"{x:.4f}" for x in quoted) if quoted else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def welch_p(a, b):
    """One-sided Welch t-test p-value for mean(a) > mean(b); None with fewer than 2 values in either."""
    from scipy import stats

    a, b = [x for x in a if x is not None], [x for x in b if x is not None]
    if len(a) < 2 or len(b) < 2:
        return None
    with warnings.catch_warnings():  # scipy warns on (near-)constant samples; their p is nan or extreme
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
    return None if math.isnan(p) else p


def significance(results):
    """p-values of SIGMA (each of its rows) against each other multi-seed model, on test NDCG@10."""
    ndcg = lambda rows: [r["test"].get("ndcg@10") for r in rows]  # noqa: E731
    multi = {key: ndcg(rows) for key, rows in results.items() if len(rows) >= 2}
    sigmas = [key for key in multi if key[0] == "SIGMA"]
    others = [key for key in multi if key[0] != "SIGMA"]
    if not sigmas or not others:
        return []
    lines = ["## Significance", "", "One-sided Welch t-test over seeds on test NDCG@10: the p-value of "
             "\"SIGMA's mean is higher\" (`scipy.stats.ttest_ind(equal_var=False, alternative='greater')`); "
             "models with fewer than 2 seeds are left out. The paper claims p < 0.05 over five runs.", "",
             "| model | " + " | ".join(f"vs {label_of(*key)}" for key in others) + " |",
             "| --- |" + " ---: |" * len(others)]
    for key in sigmas:
        cells = []
        for other in others:
            p = welch_p(multi[key], multi[other])
            cells.append("-" if p is None else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")
        lines.append(f"| {label_of(*key)} | " + " | ".join(cells) + " |")
    return lines + [""]


def against_the_paper(results, paper):
    """Measured / paper for each metric, best valid (like with like) and test, and whether SIGMA
    leads the baselines on test NDCG@10 here."""
    means = {key: [_mean_std([r["test"].get(m) for r in rows])[0] for m in METRICS]
             for key, rows in results.items() if rows}
    valid = {key: [_mean_std([r.get("best_valid", {}).get(m) for r in rows])[0] for m in METRICS]
             for key, rows in results.items() if rows}
    compared = [key for key in means if key in paper]
    if not compared:
        return []

    def percent(ours, theirs):
        return "-" if ours is None else f"{100 * ours / theirs:.0f} %"

    lines = ["## Against the paper", "", "Measured metric as a percentage of the paper's (100 % = the "
             "paper's number). The paper's numbers are validation numbers: the valid columns compare like "
             "with like.", "", "| model | valid HR@10 | valid NDCG@10 | valid MRR@10 | test HR@10 | test NDCG@10 "
             "| test MRR@10 |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key in compared:
        lines.append(f"| {label_of(*key)} | " + " | ".join(
            percent(ours, theirs) for split in (valid, means) for ours, theirs in zip(split[key], paper[key])) + " |")
    sigma = means.get(("SIGMA", "default"))
    if sigma is not None:
        ndcg = METRICS.index("ndcg@10")
        for model in ("Mamba4Rec", "SASRec", "EchoMamba4Rec", "GRU4Rec"):
            other = means.get((model, "default"))
            if other is not None:
                verdict = "ahead of" if sigma[ndcg] > other[ndcg] else "not ahead of"
                lines.append(f"\nSIGMA is {verdict} {model} on NDCG@10 in this run "
                             f"({sigma[ndcg]:.4f} vs {other[ndcg]:.4f}, {100 * (sigma[ndcg] / other[ndcg] - 1):+.1f} %).")
        lines += ablation_effects(means, paper)
    return lines + [""]


def ablation_effects(means, paper):
    """Table 4 read the paper's way: each SIGMA variant's NDCG@10 relative to SIGMA's default,
    in this run and in the paper (where it has the variant)."""
    ndcg = METRICS.index("ndcg@10")
    base, paper_base = means[("SIGMA", "default")][ndcg], paper.get(("SIGMA", "default"))
    variants = [key for key in means if key[0] == "SIGMA" and key[1] != "default"]
    if not variants:
        return []
    lines = ["", "Each SIGMA variant's NDCG@10 relative to SIGMA's default (Table 4 read the paper's way):", "",
             "| variant | NDCG@10 vs default, this run | the same in the paper |", "| --- | ---: | ---: |"]
    for key in variants:
        theirs = paper.get(key)
        in_paper = (f"{100 * (theirs[ndcg] / paper_base[ndcg] - 1):+.1f} %" if theirs and paper_base else "-")
        lines.append(f"| {label_of(*key)} | {100 * (means[key][ndcg] / base - 1):+.1f} % | {in_paper} |")
    return lines


def _load(result):
    load = [x for x in result.get("loadavg") or [] if x is not None]
    return " / ".join(f"{x:.1f}" for x in load) if load else "-"


def write_report(args, command, jobs):
    results, pending = load_results(jobs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    text = build_report(args, command, jobs, results, pending)
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.output)
    return text


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def parse_args(argv=None):
    from recbole_sigma.cli import parse_cli_value

    parser = argparse.ArgumentParser(
        description="Train models on one dataset with identical settings, one job at a time, resumably; "
                    "write the Markdown report (overall table, grouped users, figure).",
    )
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--data_path", "--data-path", default=str(ROOT / "dataset"),
                        help="folder that holds <dataset>/ (default: dataset/)")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020])
    parser.add_argument("--variants", nargs="+", default=["default"],
                        help=f"{', '.join(VARIANTS)} or r<N> (SIGMA flip_remain = N); non-default ones apply to SIGMA")
    parser.add_argument("--set", nargs="+", action="append", default=[], metavar="KEY=VALUE",
                        help="config key for every job (highest priority), e.g. --set epochs=1 hidden_size=16")
    parser.add_argument("--config_files", "--config-files", nargs="+", default=[], help="extra YAML for every job")
    parser.add_argument("--runs-dir", type=Path, help="job folders (default: runs/<dataset>)")
    parser.add_argument("--output", type=Path, help="the Markdown report (default: docs/results/<dataset>[...].md)")
    parser.add_argument("--rerun", action="store_true", help="re-run finished jobs too")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from finished jobs; train nothing")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    args.overrides = {}
    for item in (x for group in args.set for x in group):
        key, sep, value = item.partition("=")
        if not key or not sep:
            parser.error(f"--set takes key=value, not {item!r}")
        args.overrides[key] = parse_cli_value(value)
    args.runs_dir = (args.runs_dir or ROOT / "runs" / args.dataset).resolve()
    if args.output is None:
        suffix = "" if args.variants == ["default"] else "-variants-" + "-".join(args.variants)
        args.output = ROOT / "docs" / "results" / f"{args.dataset}{suffix}.md"
    args.output = args.output.resolve()
    args.config_files = [str(Path(p).resolve()) for p in args.config_files]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)
    line = " ".join(shlex.quote(a) for a in ["python", "benchmarks/reproduce.py"] + list(sys.argv[1:] if argv is None
                                                                                      else argv))
    command = {"line": line, "dataset": args.dataset, "config_files": args.config_files}
    jobs = plan_jobs(args)

    for job in jobs:
        state = job_state(job)
        if args.rerun or state == "new" or (state == "partial" and not has_checkpoint(job)):
            continue
        mismatch = config_mismatch(job)
        if mismatch:
            what = "finished" if state == "done" else "was started (and has a checkpoint)"
            raise SystemExit(
                f"error: {job['name']} {what} with a different config ({', '.join(mismatch)}) in {job['dir']}; "
                "use another --runs-dir, or --rerun to redo it"
            )
    if args.dry_run:
        for job in jobs:
            state = job_state(job)
            action = {"done": "skip (finished)", "new": "run"}.get(
                state, "resume" if has_checkpoint(job) else "restart")
            if state != "new" and args.rerun:
                action = "rerun from scratch"
            print(f"{job['name']:<32} {action:<16} {job['dir']}")
        return 0

    failed = []
    if not args.report_only:
        signal.signal(signal.SIGTERM, _on_sigterm)
        print(f"{len(jobs)} jobs in {args.runs_dir}; report: {args.output}", flush=True)
        for job in jobs:
            state = job_state(job)
            if state == "done" and not args.rerun:
                print(f"[{now()}] {job['name']}: finished earlier, skipped", flush=True)
                continue
            with job_lock(job["dir"]) as locked:
                if not locked:
                    print(f"[{now()}] {job['name']}: running in another harness, skipped", flush=True)
                    continue
                state = job_state(job)  # another harness may have finished it meanwhile
                if state == "done" and not args.rerun:
                    print(f"[{now()}] {job['name']}: finished earlier, skipped", flush=True)
                    continue
                if args.rerun and state != "new":  # from scratch
                    for stale in ("result.json", "epochs.jsonl", "attempts.jsonl"):
                        (job["dir"] / stale).unlink(missing_ok=True)
                    for old in (job["dir"] / "checkpoints").glob("*.pth"):
                        old.unlink()
                how = "resuming" if state == "partial" and has_checkpoint(job) and not args.rerun else "starting"
                print(f"[{now()}] {job['name']}: {how} (log: {job['dir'] / 'train.log'})", flush=True)
                start = time.time()
                rc = run_job(job, command)
            if _CHILD["stop"]:
                print(f"[{now()}] {job['name']}: stopped by signal {_CHILD['stop']}; run the same command to resume",
                      flush=True)
                write_report(args, command, jobs)
                return 128 + _CHILD["stop"]
            if rc != 0 or job_state(job) != "done":
                failed.append(job["name"])
                print(f"[{now()}] {job['name']}: FAILED (exit {rc}); see {job['dir'] / 'train.log'}", flush=True)
            else:
                result = json.loads((job["dir"] / "result.json").read_text())
                print(f"[{now()}] {job['name']}: done in {(time.time() - start) / 60:.1f} min, test "
                      + ", ".join(f"{m} {result['test'][m]:.4f}" for m in METRICS), flush=True)
            write_report(args, command, jobs)
    text = write_report(args, command, jobs)
    print(text)
    if failed:
        print(f"failed: {', '.join(failed)} (run the same command again to resume them)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
