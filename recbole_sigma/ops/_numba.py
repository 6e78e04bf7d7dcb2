"""numba plumbing shared by the fused CPU operators (:mod:`.selective_scan`, :mod:`.dropout`).

Importing this module does not import numba. It holds what the operators must agree on: the
environment switch that turns every fused kernel off, where numba caches compiled kernels,
loading a kernel module once (:class:`KernelModule`: import, compile per dtype, one warning on
failure), and the thread count.
"""
import importlib
import logging
import os
import sys
import time
import warnings

import torch

logger = logging.getLogger(__name__)

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


class KernelModule:
    """One kernel module (e.g. ``recbole_sigma.ops._scan_numba``), imported on first use.

    ``load()`` gives the module, or None once it failed to import or a kernel failed to compile:
    that failure is warned about once, in one line, and the operator runs its PyTorch fallback
    from then on. ``compile(key, run_tiny, kernel)`` runs a kernel once on a tiny input (numba
    compiles it, or loads it from its disk cache) and logs how long that took.
    """

    def __init__(self, module_name, what, fallback):
        self.module_name = module_name
        self.what = what  # "fused selective scan"
        self.fallback = fallback  # "using the slower PyTorch fallback"
        self.module = None
        self.failure = None  # "ImportError: ...", once known
        self.compiled = set()

    def load(self):
        if self.module is None and self.failure is None:
            try:
                self.module = import_kernels(self.module_name)
            except Exception as exc:  # ImportError, or numba failing to initialise
                self.disable(exc)
        return self.module if self.failure is None else None

    def disable(self, exc):
        self.failure = describe_failure(exc)
        warnings.warn(f"recbole_sigma: {self.what} unavailable ({self.failure}); {self.fallback}",
                      RuntimeWarning, stacklevel=5)

    def compile(self, key, run_tiny, kernel_name):
        """True once ``run_tiny()`` has run the kernel for ``key`` (a dtype, or (name, dtype));
        False, after one warning, if it fails to compile."""
        if key in self.compiled:
            return True
        start = time.perf_counter()
        try:
            run_tiny()
        except Exception as exc:  # a numba typing/lowering error, or LLVM failing
            self.disable(exc)
            return False
        logger.info("compiled %s in %.1f s (cached: %s; %s)", self.what, time.perf_counter() - start,
                    self.from_cache(kernel_name), key)
        self.compiled.add(key)
        return True

    def from_cache(self, kernel_name):
        """True once numba has loaded kernel ``kernel_name`` from its disk cache in this process."""
        return sum(getattr(self.module, kernel_name).stats.cache_hits.values()) > 0
