"""RecBole reads two pieces of process-wide state; a tuning trial gets a clean view of each for
the length of the trial, and the caller's comes back afterwards.

* ``sys.argv``: RecBole's ``Config`` reads ``--key=value`` from it, with the highest priority.
  A trial's config must come from its files and dict alone, not from the tuning command's flags
  (``--params_file``, ``--tool``, ...) nor from a Ray worker's own arguments: :func:`plain_argv`.
* the root logger's handlers: RecBole's ``init_logger`` is ``logging.basicConfig``, a no-op once
  the root logger has a handler (the caller's, or a test runner's), so a trial would write no log
  file: :func:`bare_root_logger`.

Both are process-wide while the block runs (a trial runs alone in its thread), restored after.

RecBole's ``Config`` also writes one: ``CUDA_VISIBLE_DEVICES``, set to ``gpu_id`` ('0' by default) for
the rest of the process. :func:`kept_env` ("CUDA_VISIBLE_DEVICES") puts the caller's value back when a run
(or the tuning driver's check of its settings) ends, so a later Ray start or subprocess sees every GPU.
"""
import contextlib
import logging
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


@contextlib.contextmanager
def bare_root_logger():
    """The root logger without handlers while the block runs, so that RecBole's ``init_logger``
    installs its own; those are closed and the caller's handlers put back when it ends."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    for handler in handlers:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
