"""numba plumbing shared by the fused CPU operators (:mod:`.selective_scan`, :mod:`.dropout`).

Importing this module does not import numba. It holds what the operators must agree on: the
environment switch that turns every fused kernel off, where numba caches compiled kernels,
importing a kernel module, the one-line reason for a failure, and the thread count.
"""
import importlib
import os
import sys

import torch

# ``RECBOLE_SIGMA_FUSED_SCAN=0``: no numba kernel at all (the PyTorch fallbacks run instead).
ENV_SWITCH = "RECBOLE_SIGMA_FUSED_SCAN"


def switched_on():
    """False when the environment turns the fused kernels off (read at every call)."""
    return os.environ.get(ENV_SWITCH, "1").strip() != "0"


def user_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "recbole_sigma", "numba")


def configure_numba_cache():
    """numba caches next to the kernel modules when it can write there; otherwise (and unless
    the user chose NUMBA_CACHE_DIR) point it at a per-user cache directory."""
    here = os.path.dirname(os.path.abspath(__file__))
    pycache = os.path.join(here, "__pycache__")
    writable = os.access(pycache if os.path.isdir(pycache) else here, os.W_OK)
    if writable or os.environ.get("NUMBA_CACHE_DIR"):
        return
    os.environ["NUMBA_CACHE_DIR"] = user_cache_dir()
    if "numba" in sys.modules:  # numba read its config already
        sys.modules["numba"].config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]


def import_kernels(module_name):
    """Import a kernel module (and so numba) with the cache configured. Raises what the import
    raises (ImportError, or numba failing to initialise)."""
    configure_numba_cache()
    return importlib.import_module(module_name)


def describe_failure(exc):
    """``"TypeName: first line of the message"``, for a one-line warning."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def set_threads():
    """numba (already imported) uses as many threads as torch, within its own maximum; returns
    that count."""
    numba = sys.modules["numba"]
    wanted = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != wanted:
        numba.set_num_threads(wanted)
    return wanted
