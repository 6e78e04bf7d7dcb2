"""Ray's side of tuning: joining or starting a cluster, and sizing trials to its nodes.

A local cluster started from a source checkout that is not installed gets the checkout on its
workers' PYTHONPATH (trials import ``recbole_sigma`` by name in Ray's workers; Ray itself only adds
the driver's script folder and working directory). ray is imported only inside the functions that
use it.
"""
import contextlib
import math
import os
import site
import socket
from pathlib import Path

from recbole_sigma._recbole.process_state import kept_env
from recbole_sigma.errors import ConfigError

# A sequential recommender on one batch stream rarely uses more than a few cores well: on a
# bigger machine more trials run at once instead of one trial getting every core.
CPUS_PER_TRIAL = 4

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def machine_resources():
    """(CPUs, CUDA GPUs) of this machine; GPUs are 0 unless torch can use CUDA."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return cpus, gpus


def trial_resources(n_trials, num_cpus=None, num_gpus=None):
    """What one Ray trial asks for, on a machine with ``num_cpus`` CPUs and ``num_gpus`` GPUs.

    Up to ``num_cpus // CPUS_PER_TRIAL`` trials (at least 1, at most ``n_trials``) share the
    machine: each gets its share of the CPUs and, only where CUDA is available, the same share
    of the GPUs (a fraction when several trials share one GPU; at most one GPU, which is all a
    RecBole trial uses). ``None`` means this machine (``machine_resources``).
    """
    if num_cpus is None or num_gpus is None:
        cpus, gpus = machine_resources()
        num_cpus = cpus if num_cpus is None else num_cpus
        num_gpus = gpus if num_gpus is None else num_gpus
    at_once = max(1, min(int(n_trials), int(num_cpus) // CPUS_PER_TRIAL))
    gpu = 0.0
    if num_gpus > 0:
        gpu = min(1.0, math.floor(num_gpus / at_once * 10_000) / 10_000)  # Ray's precision
    return {"cpu": max(1, int(num_cpus) // at_once), "gpu": gpu}


def node_resources():
    """(CPUs, GPUs) of the node trials are sized for: the biggest GPU node if any has GPUs,
    else the node with most CPUs (a trial runs on one node)."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    gpu_nodes = [n for n in nodes if n.get("GPU", 0) > 0]
    node = max(gpu_nodes or nodes, key=lambda n: n.get("CPU", 0))
    return int(node.get("CPU", 1)), float(node.get("GPU", 0))


def ray_env(environ=None):
    """``environ`` (default: ours) for Ray's processes: for a source checkout that is not
    installed, the folder that holds ``recbole_sigma`` first on PYTHONPATH. An installed package
    needs nothing: then PYTHONPATH is left as it is."""
    env = dict(os.environ if environ is None else environ)
    site_dirs = {os.path.realpath(p) for p in site.getsitepackages() + [site.getusersitepackages()]}
    if os.path.realpath(_PACKAGE_ROOT) in site_dirs:
        return env
    entries = [str(_PACKAGE_ROOT)]
    for entry in (env.get("PYTHONPATH") or "").split(os.pathsep):
        if entry and entry not in entries:
            entries.append(entry)
    env["PYTHONPATH"] = os.pathsep.join(entries)
    return env


@contextlib.contextmanager
def _ray_pythonpath():
    """os.environ's PYTHONPATH set for Ray (``ray_env``) while ``ray.init`` starts a local cluster
    (its processes inherit the driver's environment), and put back after."""
    after = ray_env().get("PYTHONPATH")
    with kept_env("PYTHONPATH"):
        if after is not None:
            os.environ["PYTHONPATH"] = after
        yield


def _check_reachable(address):
    """HOST:PORT that accepts no connection: a one-line ConfigError in seconds, not minutes."""
    host, sep, port = address.rpartition(":")
    if sep and port.isdigit() and "://" not in address:
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as e:
            raise ConfigError(f"cannot join the Ray cluster at {address!r}: {e}") from None


def connect_ray(address):
    """Join ``address`` or start a local Ray; True if this call started (and must stop) it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=True)
        except ConnectionError as e:
            raise ConfigError(f"cannot join the Ray cluster at {address!r}: {e}") from None
        return True
    cpus, gpus = machine_resources()
    with _ray_pythonpath():
        ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=True)
    return True
