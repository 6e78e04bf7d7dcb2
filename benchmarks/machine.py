"""One line describing where a benchmark ran: CPU, cores, threads and library versions."""
import os
import platform


def describe(threads=None):
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import numba

        numba_version = numba.__version__
    except ImportError:
        numba_version = "missing"
    threads = torch.get_num_threads() if threads is None else threads
    return (f"machine: {cpu}, {os.cpu_count()} cores, {threads} threads; python {platform.python_version()}, "
            f"torch {torch.__version__}, numba {numba_version}")
