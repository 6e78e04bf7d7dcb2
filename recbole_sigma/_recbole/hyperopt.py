"""Let RecBole's exhaustive search run on hyperopt >= 0.2.7.

Breaks: ``HyperTuning(algo="exhaustive")`` (``--algo=exhaustive``, the
default when every parameter is a ``choice``) fails on its first trial
with ``'RandomState' object has no attribute 'integers'``: RecBole's
``exhaustive_search`` samples with ``np.random.RandomState(seed)``, and
hyperopt >= 0.2.7 draws ``hp.choice`` indices with ``rng.integers``, a
``numpy.random.Generator`` method.  (RecBole's extra pins hyperopt 0.2.5,
whose ``import hyperopt`` needs ``pkg_resources``, gone from setuptools
>= 81; the ``tune`` extra takes a current hyperopt instead.)

Scope: ``recbole.trainer.hyper_tuning`` (only that module) sees a numpy
proxy whose ``random.RandomState(seed)`` returns
``np.random.default_rng(seed)``, the generator hyperopt's own
``fmin`` uses; the global numpy is untouched.  Not installed when the
installed hyperopt is older than 0.2.7.  ``RandomState`` is the module's
only ``np.random`` use; its other numpy calls reach the real numpy
(or ``numpy_aliases.AliasedNumpy``, which gives it ``np.str``).
"""
from . import hooks


class GeneratorRandom(hooks.ModuleProxy):
    """``numpy.random`` whose ``RandomState(seed)`` is ``default_rng(seed)``."""

    def RandomState(self, seed=None):  # noqa: N802 (numpy's name)
        return self.__dict__["_wrapped"].default_rng(seed)


class HyperTuningNumpy(hooks.ModuleProxy):
    """``numpy`` as seen by recbole.trainer.hyper_tuning: ``random.RandomState`` makes a
    ``Generator``; every other attribute is the wrapped numpy's."""

    def __init__(self, np):
        super().__init__(np, {"random": GeneratorRandom(np.random)})


def _hyperopt_wants_generator():
    import importlib.metadata

    try:
        version = importlib.metadata.version("hyperopt")
    except importlib.metadata.PackageNotFoundError:
        return True  # not installed now; a current one (the tune extra) would
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts) >= (0, 2, 7)


def _patch_hyper_tuning_numpy(module, _state=None):
    if not HyperTuningNumpy.wraps(module.np) and _hyperopt_wants_generator():
        module.np = HyperTuningNumpy(module.np)


def fix_hyperopt_exhaustive():
    """RecBole's exhaustive search samples with a numpy Generator (see the module docstring)."""
    hooks.when_imported("recbole.trainer.hyper_tuning", _patch_hyper_tuning_numpy)
