"""Import Ray only when RecBole's own Ray tuning code runs.

Breaks: ``import recbole.quick_start`` (its ``quick_start`` module does
``from ray import tune`` at module level) without Ray installed.  Ray is
not a requirement of recbole-sigma: RecBole 1.2.1 pins ``ray<=2.6.3``,
which has no wheel for Python >= 3.12, so RecBole is installed without its
requirements (README) and Ray comes, current, with the ``tune`` extra.
It is the only module-level Ray import in RecBole 1.2.1; ``tune`` is used
only by ``objective_function`` (``tune.report``, RecBole's
``run_hyper.py --tool=ray``; recbole_sigma.tuning has its own trainable).

Scope: while ``recbole.quick_start.quick_start`` executes (and only that
module), ``from ray import tune`` binds a stand-in that imports the real
``ray.tune`` on first attribute access, with a one-line ImportError naming
the extra when Ray is missing.  Nothing is put in ``sys.modules``, and
``import ray`` anywhere else is untouched.  It applies whether or not Ray
is installed, which also keeps Ray's import (seconds) out of
``import recbole.quick_start``.

Not fixed: ``objective_function``'s ``tune.report(**test_result)`` is
Ray 2.6.3's call; a current Ray's is ``tune.report(metrics_dict)``
(ray 2.60: ``report(metrics, *, checkpoint=None)``), so RecBole's own
``run_hyper.py --tool=ray`` path is not expected to work on it (untested;
recbole-sigma's ``--tool=ray`` has its own trainable, docs/tuning.md).
"""
import types

from . import hooks


class _DeferredRayTune(types.ModuleType):
    """``ray.tune`` as seen by recbole.quick_start.quick_start: imported on first use."""

    def __init__(self):
        super().__init__("ray.tune", "ray.tune, imported on first use (recbole_sigma._recbole)")

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            from ray import tune
        except ImportError as exc:
            raise ImportError(
                f"RecBole's Ray tuning needs Ray ({exc}); install it with "
                "pip install 'recbole-sigma[tune]'"
            ) from None
        return getattr(tune, name)

    def __repr__(self):
        return "<recbole_sigma._recbole: ray.tune, imported on first use>"


def _defer_ray_import(module):
    """Give the module (before its code runs) an ``__import__`` that answers
    ``from ray import tune`` with ``_DeferredRayTune``; every other import is
    Python's own."""
    import builtins

    real_import = builtins.__import__
    deferred = _DeferredRayTune()

    def import_deferring_ray(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "ray" and level == 0 and tuple(fromlist or ()) == ("tune",):
            return types.SimpleNamespace(tune=deferred)
        return real_import(name, globals, locals, fromlist, level)

    scoped = dict(builtins.__dict__)
    scoped["__import__"] = import_deferring_ray
    module.__dict__["__builtins__"] = scoped
    return deferred


def _restore_builtins(module, deferred):
    import builtins

    # Functions defined by the module keep the scoped builtins: their own
    # ``import`` statements still reach Python's import for anything but ray.tune.
    module.__dict__["__builtins__"] = builtins
    if deferred is not None and getattr(module, "tune", None) is not deferred:
        raise RuntimeError("recbole.quick_start.quick_start did not import ray.tune as expected")


def fix_ray_import():
    """Defer RecBole's module-level ``from ray import tune`` (see the module docstring)."""
    hooks.when_imported("recbole.quick_start.quick_start", _restore_builtins, before=_defer_ray_import)
