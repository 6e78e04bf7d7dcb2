"""Keep glibc from returning freed memory to the OS on every training step.

Training allocates and frees the same large temporaries each batch. With glibc's defaults each
one above 128 KiB is a fresh mmap whose pages fault in again and are unmapped on free: a
page-fault storm that made RecBole's SASRec 2.5x slower on a 2-core machine (4.9 -> 1.9 s per
batch). ``keep_freed_memory()`` serves them from the heap and never trims it, the same as
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<huge>``. The process keeps its peak heap: the
price is resident memory that stays at its high-water mark.

With batches of varying shapes (length buckets) the never-trimmed heap fragments and its
resident size creeps up over a long run (a 91-epoch Beauty run reached 9.5 GB). The trainer
therefore calls ``release_free_memory()`` (glibc's ``malloc_trim``) after every training epoch:
the resident set falls back to the live memory, for one epoch's worth of page faults.

This is process-wide, so a library call never makes it: the command line (``recbole_sigma.cli``),
the processes it spawns for DDP or Ray trials, and the benchmarks' training children call
``keep_freed_memory()``; ``recbole_sigma.run`` called from your own code leaves the allocator as
it is (and ``release_free_memory()`` is then a no-op). Set ``RECBOLE_SIGMA_MALLOC_TUNING=0`` to
leave the allocator alone on the command line too. A no-op off glibc.
"""
import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_libc = None  # glibc, once the settings are in force


def keep_freed_memory():
    """Apply the mallopt settings once per process; return whether they are in force."""
    global _libc
    if _libc is not None:
        return True
    if os.environ.get("RECBOLE_SIGMA_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
        return False
    if mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, 2**31 - 1):
        _libc = libc
    return _libc is not None


def release_free_memory():
    """Give the heap's free pages back to the OS (after ``keep_freed_memory``); whether it ran."""
    if _libc is None:
        return False
    _libc.malloc_trim(0)
    return True
