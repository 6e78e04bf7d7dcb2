"""The glibc allocator setting applies once, can be switched off, and its kept heap can be released."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = "from recbole_sigma.malloc import keep_freed_memory as k; print(k(), k())"


def _probe(script=PROBE, **env):
    """Run ``script`` in a fresh interpreter (the settings are per process); its printed words."""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), **env), timeout=120)
    return out.stdout.split() or [out.stderr]


def test_applies_on_glibc_and_is_idempotent():
    if not os.path.exists("/lib/x86_64-linux-gnu/libc.so.6") and not Path("/lib64/libc.so.6").exists():
        import pytest

        pytest.skip("not a glibc system")
    assert _probe() == ["True", "True"]


def test_env_switch_leaves_the_allocator_alone():
    assert _probe(RECBOLE_SIGMA_MALLOC_TUNING="0") == ["False", "False"]


RELEASE = """
import torch
from recbole_sigma.malloc import keep_freed_memory, release_free_memory
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 // 2**20
keep_freed_memory()
x = torch.ones(64 * 2**20)  # 256 MiB from the heap
del x
kept = rss()
print(release_free_memory(), kept - rss())
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="no /proc")
def test_release_gives_freed_heap_pages_back():
    out = _probe(RELEASE)
    assert len(out) == 2, out
    ran, released_mib = out
    assert ran == "True" and int(released_mib) >= 200, out
