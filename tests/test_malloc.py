"""The glibc allocator setting applies once, and can be switched off."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = "from recbole_sigma.malloc import keep_freed_memory as k; print(k(), k())"


def _probe(**env):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), **env), timeout=120)
    return out.stdout.split()


def test_applies_on_glibc_and_is_idempotent():
    if not os.path.exists("/lib/x86_64-linux-gnu/libc.so.6") and not Path("/lib64/libc.so.6").exists():
        import pytest

        pytest.skip("not a glibc system")
    assert _probe() == ["True", "True"]


def test_env_switch_leaves_the_allocator_alone():
    assert _probe(RECBOLE_SIGMA_MALLOC_TUNING="0") == ["False", "False"]
