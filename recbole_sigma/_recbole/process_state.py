"""RecBole reads process-wide state that a run must not take from, or leave to, its caller.

* ``sys.argv``: RecBole's ``Config`` reads ``--key=value`` from it, with the highest priority.
  A tuning trial's config must come from its files and dict alone, not from the tuning command's flags
  (``--params_file``, ``--tool``, ...) nor from a Ray worker's own arguments: :func:`plain_argv`,
  for the length of the trial (a trial runs alone in its thread), the caller's put back after.
* ``CUDA_VISIBLE_DEVICES``: RecBole's ``Config`` sets it to ``gpu_id`` ('0' by default) for the rest of
  the process. :func:`kept_env` ("CUDA_VISIBLE_DEVICES") puts the caller's value back when a run (or the
  tuning driver's check of its settings) ends, so a later Ray start or subprocess sees every GPU.

(The root logger, which RecBole's ``init_logger`` fills, is ``recbole_sigma.pipeline``'s to restore.)
"""
import contextlib
import os
import sys


@contextlib.contextmanager
def plain_argv():
    """``sys.argv`` without its arguments while the block runs."""
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        yield
    finally:
        sys.argv = argv


@contextlib.contextmanager
def kept_env(name):
    """The environment variable ``name`` as it was before the block (set or not), whatever the block set."""
    before = os.environ.get(name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
