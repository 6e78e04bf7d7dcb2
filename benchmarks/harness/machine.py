"""Where and when a job or a benchmark ran: timestamps, CPU, cores, memory, GPU, library versions, peak RSS."""
import contextlib
import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: its git commit is recorded


def now():
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def iso(timestamp):
    return dt.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def peak_rss_mb():
    """This process's maximum resident set so far (``getrusage``), in MiB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def cpu_name():
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def module_version(name):
    """``name.__version__``, or None when it is absent or fails to import."""
    try:
        return __import__(name).__version__
    except Exception:  # noqa: BLE001 -- absent or broken: recorded as absent
        return None


def git_state():
    """(short commit, dirty) of the checkout; None for what git cannot tell."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except OSError:
        return None, None
    return commit, bool(status.stdout.strip()) if status.returncode == 0 else None


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
        found[name] = module_version(name)
    found["git"], found["git_dirty"] = git_state()
    return found


def machine():
    import torch

    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_name(), "cores": cores, "torch_threads": torch.get_num_threads(), "memory_gb": memory_gb,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "host": platform.node(),
        "os": platform.platform(),
    }


def describe(threads=None):
    """One line for a benchmark's output: CPU, cores, threads and library versions."""
    import torch

    threads = torch.get_num_threads() if threads is None else threads
    return (f"machine: {cpu_name()}, {os.cpu_count()} cores, {threads} threads; python {platform.python_version()}, "
            f"torch {torch.__version__}, numba {module_version('numba') or 'missing'}")
