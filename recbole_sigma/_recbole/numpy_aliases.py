"""numpy 2 removed aliases RecBole 1.2.1 uses: each RecBole module that uses one sees a numpy with
them; numpy itself gets no new names.

Breaks on numpy >= 2 (``np.float_``, ``np.complex_``, ``np.unicode_``) and >= 1.24 (``np.float``,
``np.int``, ``np.object``, ``np.str``, ...):

* every ``recbole.config.Config()``: its ``compatibility_settings`` reads ``np.float_`` and sets
  ``np.bool``, ``np.int``, ``np.float``, ... on numpy, for the whole process;
* the RecBole code that uses those names (:data:`MODULES`): ``recbole.data.interaction`` (every
  dataset load), ``recbole.evaluator.metrics`` (MRR, MAP, NDCG, ...), ... -- also without a
  ``Config`` built in the process (a Config unpickled from a checkpoint never runs that method).

Fix, scoped to RecBole's modules: each module of :data:`MODULES` gets, as its ``np`` global once it
has been imported, an :class:`AliasedNumpy`: numpy's own attributes plus the aliases numpy lacks,
with the values RecBole's ``compatibility_settings`` assigns. ``Config.compatibility_settings``
(only on RecBole 1.2.1) sets nothing on numpy: the modules that need the aliases have them.
Nothing changes on a numpy that still has them all (< 1.24), and a future numpy that re-adds a
name keeps its own definition. Other code in the process (a user's own RecBole model using
``np.float``) does not get the aliases: ``Config()`` adds none to numpy.
"""
from . import hooks

# RecBole 1.2.1's modules that use a removed alias (grep of its sources), and where.
MODULES = (
    "recbole.data.interaction",  # np.float: _convert_to_tensor (every dataset load)
    "recbole.data.dataset.dataset",  # np.float: Dataset._fill_nan (RecBole's, see dataset.py)
    "recbole.evaluator.metrics",  # np.float, np.bool: MRR, MAP, NDCG, ItemCoverage, ...
    "recbole.trainer.hyper_tuning",  # np.str: HyperTuning.plot_hyper
    "recbole.model.abstract_recommender",  # np.long (gone on numpy 1.24-1.26): context-aware models
    "recbole.model.layers",  # np.long: FMEmbedding, ContextSeqEmbLayer
    "recbole.model.context_aware_recommender.ffm",  # np.long
)


def aliases(np):
    """The aliases RecBole 1.2.1 uses, as its ``Config.compatibility_settings`` defines them."""
    return {
        # Removed in numpy 2.0; compatibility_settings reads them.
        "float_": np.float64,
        "complex_": np.complex128,
        "unicode_": np.str_,
        # Removed in numpy 1.24 (np.bool/np.long came back in 2.0).
        "bool": np.bool_,
        "int": np.int_,
        "float": np.float64,
        "complex": np.complex128,
        "object": np.object_,
        "str": np.str_,
        "long": np.int_,
        "unicode": np.str_,
    }


def missing_aliases(np):
    """The aliases this numpy does not define."""
    import warnings

    missing = {}
    for name, value in aliases(np).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy 2 warns on np.object / np.str lookups
            if not hasattr(np, name):
                missing[name] = value
    return missing


class AliasedNumpy(hooks.ModuleProxy):
    """``numpy`` as one RecBole module sees it: numpy's attributes plus the aliases it lacks."""


def _give_aliases(module, _state=None):
    np = module.np
    if AliasedNumpy.wraps(np):
        return
    import numpy

    missing = missing_aliases(numpy)
    if missing:
        module.np = AliasedNumpy(np, missing)


def _compatibility_settings(self):
    # RecBole's sets numpy's removed aliases on numpy for the whole process; the RecBole modules
    # that use them see them in their own ``np`` (recbole_sigma._recbole.numpy_aliases).
    return None


def _patch_config(module, _state=None):
    if hooks.recbole_version_ok("fix_numpy_aliases"):
        hooks.install(module.Config, "compatibility_settings", _compatibility_settings)


def fix_numpy_aliases():
    """Give RecBole's modules numpy's removed aliases, in their own ``np`` (see the module docstring)."""
    for name in MODULES:
        hooks.when_imported(name, _give_aliases)
    hooks.when_imported("recbole.config.configurator", _patch_config)
