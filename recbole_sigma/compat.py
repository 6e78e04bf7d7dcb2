"""Run RecBole 1.2.1 on today's stack without touching site-packages.

RecBole 1.2.1 (the last release) pins ``ray<=2.6.3`` and was written against
numpy 1, pandas 1/2 and torch < 2.6.  On a fresh install today (torch 2.13,
numpy 2.4, pandas 3.1; RecBole installed without its requirements and no Ray,
or a current Ray -- see setup.py) it breaks in six places; each fix below is
one small function whose docstring says what breaks, where, and why the fix
is scoped as it is.

``apply()`` is idempotent and cheap: it imports nothing heavy.  Fixes that
need a RecBole module are attached with a post-import hook, so they run when
(and only when) that module is first imported -- or at once if it already
has been.  ``recbole_sigma/__init__.py`` calls ``apply()`` before anything
imports recbole.

Only the standard library is imported at module level, so this file can also
be loaded on its own (the tests do that to apply every fix but one).
"""

import importlib.abc
import importlib.machinery
import sys
import types
import warnings

__all__ = ["apply"]

# Fixes that replace a RecBole function/method with a corrected copy of its
# body are only installed on the RecBole release those bodies were copied from.
_COPIED_FROM_RECBOLE = ("1.2.1",)


# --------------------------------------------------------------------------
# Post-import hooks
# --------------------------------------------------------------------------
_HOOKS = {}  # module name -> list of (before, after) callables


class _HookedLoader(importlib.abc.Loader):
    """Wraps a module's real loader to run hooks around ``exec_module``."""

    def __init__(self, loader, name):
        self._loader = loader
        self._name = name

    def __getattr__(self, name):  # get_source, is_package, ... of the real one
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # Hide the wrapper: the module should see its real loader.
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        hooks = list(_HOOKS.get(self._name, ()))
        states = [before(module) if before else None for before, _ in hooks]
        self._loader.exec_module(module)
        for (_, after), state in zip(hooks, states):
            _run_hook(after, module, state)


class _HookFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``; only answers for hooked module names, by
    asking the other finders and wrapping the loader of the spec they return."""

    def __init__(self):
        self._busy = set()  # names being looked up (guards against re-entry)

    def find_spec(self, fullname, path, target=None):
        if fullname not in _HOOKS or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = _HookedLoader(spec.loader, fullname)
                    return spec
            return None
        finally:
            self._busy.discard(fullname)


_HOOK_FINDER = _HookFinder()


def _run_hook(after, module, state):
    try:
        after(module, state)
    except Exception as exc:  # a failed fix must not break the import itself
        warnings.warn(
            f"recbole_sigma.compat: {after.__name__} failed on {module.__name__}: "
            f"{exc!r}",
            RuntimeWarning,
            stacklevel=2,
        )


def _when_imported(name, after, before=None):
    """Call ``after(module, before(module))`` once ``name`` has been executed;
    ``before`` runs on the new, still empty module right before its code does.

    If ``name`` is already imported, ``after(module, None)`` runs now (the
    state before its import is unknown then).  Registration is idempotent.
    """
    hooks = _HOOKS.setdefault(name, [])
    if (before, after) not in hooks:
        hooks.append((before, after))
    if _HOOK_FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK_FINDER)
    module = sys.modules.get(name)
    if module is not None:
        _run_hook(after, module, None)


def _recbole_version_ok(fix_name):
    version = getattr(sys.modules.get("recbole"), "__version__", None)
    if version in _COPIED_FROM_RECBOLE:
        return True
    warnings.warn(
        f"recbole_sigma.compat: {fix_name} was written for RecBole "
        f"{'/'.join(_COPIED_FROM_RECBOLE)}, found {version}; not applied.",
        RuntimeWarning,
        stacklevel=3,
    )
    return False


# --------------------------------------------------------------------------
# Fix 1: numpy 2 removed aliases
# --------------------------------------------------------------------------
def _numpy_aliases(np):
    return {
        # Removed in numpy 2.0; RecBole's Config.compatibility_settings reads them.
        "float_": np.float64,
        "complex_": np.complex128,
        "unicode_": np.str_,
        # Removed in numpy 1.24 (np.bool/np.long came back in 2.0).  RecBole's
        # Config.compatibility_settings sets exactly these values on every
        # Config(); we set them too because a Config unpickled from a
        # checkpoint (load_data_and_model in a fresh process) never runs that
        # method, yet recbole.data.interaction and evaluator.metrics (MRR,
        # MAP, ...) then use np.float.
        "bool": np.bool_,
        "int": np.int_,
        "float": np.float64,
        "complex": np.complex128,
        "object": np.object_,
        "str": np.str_,
        "long": np.int_,
        "unicode": np.str_,
    }


def fix_numpy_aliases():
    """Restore the numpy aliases RecBole 1.2.1 uses, where missing.

    Breaks: every ``recbole.config.Config()`` on numpy >= 2 -- its
    ``compatibility_settings`` reads ``np.float_``, ``np.complex_``,
    ``np.unicode_`` (removed in numpy 2.0); RecBole code run without a fresh
    ``Config`` (see ``_numpy_aliases``).  (Ray 2.6.3 also needed ``np.bool8``;
    the current Ray of the ``tune`` extra does not.)

    Scope: an alias is only set if numpy does not already define it, with the
    same value RecBole itself assigns (``Config()`` overwrites them anyway), so
    nothing changes on numpy < 1.24 and a future numpy that re-adds a name
    keeps its own definition.
    """
    import numpy as np

    for name, value in _numpy_aliases(np).items():
        with warnings.catch_warnings():
            # numpy 2 warns on np.object / np.str lookups ("in the future ...")
            warnings.simplefilter("ignore")
            try:
                getattr(np, name)
                continue
            except AttributeError:
                pass
        setattr(np, name, value)


# --------------------------------------------------------------------------
# Fix 2: torch >= 2.6 torch.load(weights_only=True) vs RecBole checkpoints
# --------------------------------------------------------------------------
class _RecBoleCheckpointTorch(types.ModuleType):
    """``torch`` as seen by recbole.trainer.trainer: ``load`` defaults to
    ``weights_only=False``; every other attribute is the real ``torch``'s."""

    def __init__(self, torch):
        super().__init__("torch", torch.__doc__)
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def load(self, *args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return self._torch.load(*args, **kwargs)

    def __repr__(self):
        return f"<recbole_sigma.compat checkpoint proxy for {self._torch!r}>"


def _needs_checkpoint_fix():
    import torch
    from torch.torch_version import TorchVersion

    return TorchVersion(torch.__version__) >= "2.6"


def _patch_trainer_torch(module, _state=None):
    if not _needs_checkpoint_fix():
        return
    torch = module.torch
    if not isinstance(torch, _RecBoleCheckpointTorch):
        module.torch = _RecBoleCheckpointTorch(torch)


def _load_data_and_model(model_file):
    """RecBole's ``load_data_and_model``, served by ``recbole_sigma.load_data_and_model``: the same
    body with the checkpoint read as ``torch.load(model_file, weights_only=False)`` (see
    fix_checkpoint_loading), which also resolves recbole-sigma's models by name."""
    from recbole_sigma.pipeline import load_data_and_model

    return load_data_and_model(model_file)


def _patch_load_data_and_model(module, _state=None):
    if not _needs_checkpoint_fix():
        return
    original = module.load_data_and_model
    if original is _load_data_and_model or not _recbole_version_ok(
        "fix_checkpoint_loading"
    ):
        return
    _load_data_and_model._recbole_original = original
    module.load_data_and_model = _load_data_and_model
    package = sys.modules.get("recbole.quick_start")
    if getattr(package, "load_data_and_model", None) is original:
        package.load_data_and_model = _load_data_and_model


def fix_checkpoint_loading():
    """Let RecBole read back the checkpoints it writes, on torch >= 2.6.

    Breaks: ``Trainer.evaluate(load_best_model=True)``,
    ``Trainer.resume_checkpoint`` and ``recbole.quick_start.load_data_and_model``
    raise ``UnpicklingError`` on torch >= 2.6, where ``torch.load`` defaults to
    ``weights_only=True``.  ``Trainer._save_checkpoint`` pickles the whole
    ``Config`` (its ``final_config_dict`` holds RecBole enums, a
    ``torch.device``, numpy values and whatever the user's YAML/config_dict
    put there) plus ``model.other_parameter()``, which models fill freely.

    Scope: that set is open-ended, so ``torch.serialization.add_safe_globals``
    cannot be made complete (and it would widen the allowlist for every
    ``torch.load`` in the process).  Instead exactly RecBole's call sites get
    ``weights_only=False`` -- the behaviour they were written for on
    torch < 2.6:

    * ``recbole.trainer.trainer`` (where ``_save_checkpoint``, ``evaluate`` and
      ``resume_checkpoint`` of all RecBole trainers live) sees a ``torch``
      proxy whose ``load`` defaults to ``weights_only=False``; everything else
      is the real torch.  The global ``torch.load`` is untouched.
    * ``load_data_and_model`` imports torch inside its body, so it is replaced
      by a copy of RecBole 1.2.1's body that passes ``weights_only=False``
      (only on RecBole 1.2.1).

    Like on torch < 2.6, these APIs unpickle the file: only load checkpoints
    you trust.  ``save_dataset``/``save_dataloaders`` files are read with plain
    ``pickle`` (``recbole.data.utils``), which torch's change does not affect.
    Not patched: model-specific pre-training loads (S3Rec, NeuMF, ConvNCF,
    NAIS, RaCT, KD_DAGFM ``torch.load(pre_model_path)``).
    """
    _when_imported("recbole.trainer.trainer", _patch_trainer_torch)
    _when_imported("recbole.quick_start.quick_start", _patch_load_data_and_model)


# --------------------------------------------------------------------------
# Fix 3: pandas 3 (copy-on-write, Series.agg) in Dataset
# --------------------------------------------------------------------------
def _dataset_fill_nan(self):
    import numpy as np
    from recbole.utils import FeatureType, set_color

    self.logger.debug(set_color("Filling nan", "green"))

    for feat_name in self.feat_name_list:
        feat = getattr(self, feat_name)
        for field in feat:
            ftype = self.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                feat[field] = feat[field].apply(
                    lambda x: (
                        np.array([], dtype=dtype) if isinstance(x, float) else x
                    )
                )


def _seq_split_points(column):
    """Where to split the concatenated sequences of ``column`` back apart
    (what ``np.cumsum(column.agg(len))[:-1]`` gave on pandas < 3)."""
    import numpy as np

    return np.cumsum([len(seq) for seq in column.values])[:-1]


def _dataset_remap(self, remap_list):
    import numpy as np
    import pandas as pd
    from recbole.utils import FeatureType

    if len(remap_list) == 0:
        return
    tokens, split_point = self._concat_remaped_tokens(remap_list)
    new_ids_list, mp = pd.factorize(tokens)
    new_ids_list = np.split(new_ids_list + 1, split_point)
    mp = np.array(["[PAD]"] + list(mp))
    token_id = {t: i for i, t in enumerate(mp)}

    for (feat, field, ftype), new_ids in zip(remap_list, new_ids_list):
        if field not in self.field2id_token:
            self.field2id_token[field] = mp
            self.field2token_id[field] = token_id
        if ftype == FeatureType.TOKEN:
            feat[field] = new_ids
        elif ftype == FeatureType.TOKEN_SEQ:
            split_point = _seq_split_points(feat[field])
            feat[field] = np.split(new_ids, split_point)


def _sequential_benchmark_presets(self):
    from recbole.utils import FeatureSource, FeatureType

    list_suffix = self.config["LIST_SUFFIX"]
    for field in self.inter_feat:
        if field + list_suffix in self.inter_feat:
            list_field = field + list_suffix
            setattr(self, f"{field}_list_field", list_field)
    self.set_field_property(
        self.item_list_length_field, FeatureType.TOKEN, FeatureSource.INTERACTION, 1
    )
    self.inter_feat[self.item_list_length_field] = [
        len(seq) for seq in self.inter_feat[self.item_id_list_field].values
    ]


def _install(cls, name, replacement):
    original = cls.__dict__[name]
    if original is replacement:
        return
    replacement.__doc__ = original.__doc__
    replacement.__name__ = name
    replacement.__qualname__ = f"{cls.__name__}.{name}"
    replacement._recbole_original = original
    setattr(cls, name, replacement)


def _patch_dataset(module, _state=None):
    if _recbole_version_ok("fix_dataset_pandas3"):
        _install(module.Dataset, "_fill_nan", _dataset_fill_nan)
        _install(module.Dataset, "_remap", _dataset_remap)


def _patch_sequential_dataset(module, _state=None):
    if _recbole_version_ok("fix_dataset_pandas3"):
        _install(
            module.SequentialDataset, "_benchmark_presets", _sequential_benchmark_presets
        )


def fix_dataset_pandas3():
    """Make RecBole's Dataset preprocessing behave on pandas 3 as on pandas 1/2.

    Breaks on pandas >= 3:

    * ``Dataset._fill_nan`` does ``feat[field].fillna(..., inplace=True)``;
      under copy-on-write that fills a temporary copy, so NaNs in float
      (and token) features silently survive into the tensors.
    * ``Series.agg(len)`` now calls ``len`` on the whole Series instead of on
      each element, so ``Dataset._remap`` computes no split points for
      ``token_seq`` fields and fails ("Length of values (1) does not match
      length of index"), and ``SequentialDataset._benchmark_presets``
      (``benchmark_filename`` datasets) sets every ``item_length`` to the
      number of rows.

    Fix: corrected copies of those methods (assignment instead of in-place
    fillna, per-element ``len``), identical to RecBole 1.2.1 otherwise,
    installed on ``Dataset`` / ``SequentialDataset`` themselves so every
    subclass (none overrides them) gets them; the originals stay reachable as
    ``<method>._recbole_original``.  Only installed on RecBole 1.2.1, whose
    bodies these are.  The corrected code is also right on pandas 1/2, so it
    is not conditional on the pandas version.

    Not fixed (same pandas-3 causes, other code paths): ``_load_feat``'s
    in-place ``fillna`` of empty ``*_seq`` cells (crashes on a missing
    token_seq/float_seq value), ``.agg(len)`` in ``_normalize`` /
    ``_discretization`` (float_seq only) and ``KnowledgeBasedDataset``.
    """
    _when_imported("recbole.data.dataset.dataset", _patch_dataset)
    _when_imported("recbole.data.dataset.sequential_dataset", _patch_sequential_dataset)


# --------------------------------------------------------------------------
# Fix 4: recbole's SINE turns on autograd anomaly detection at import
# --------------------------------------------------------------------------
def _anomaly_state(_module=None):
    import torch

    return torch.is_anomaly_enabled()


def _restore_anomaly_state(_module, was_enabled):
    import torch

    # was_enabled is None if sine was imported before apply(): unknown, keep.
    if was_enabled is False and torch.is_anomaly_enabled():
        torch.autograd.set_detect_anomaly(False)


def fix_anomaly_detection():
    """Undo the global ``set_detect_anomaly(True)`` done by importing SINE.

    Breaks: ``recbole/model/sequential_recommender/sine.py`` (RecBole 1.x)
    calls ``torch.autograd.set_detect_anomaly(True)`` at module level, and
    ``recbole.model.sequential_recommender`` imports it -- as does
    ``get_model()`` / ``Config`` for any sequential model -- so every
    sequential training run records anomaly traces (about 2x slower).

    Scope: a post-import hook records the anomaly mode right before ``sine``
    executes and switches it back off right after, only if it was off before
    (a user who enabled it keeps it).  If ``sine`` was already imported when
    ``apply()`` ran, the earlier state is unknown and nothing is changed.
    """
    _when_imported(
        "recbole.model.sequential_recommender.sine",
        _restore_anomaly_state,
        before=_anomaly_state,
    )


# --------------------------------------------------------------------------
# Fix 5: RecBole's module-level ``from ray import tune``
# --------------------------------------------------------------------------
class _DeferredRayTune(types.ModuleType):
    """``ray.tune`` as seen by recbole.quick_start.quick_start: imported on first use."""

    def __init__(self):
        super().__init__("ray.tune", "ray.tune, imported on first use (recbole_sigma.compat)")

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
        return "<recbole_sigma.compat: ray.tune, imported on first use>"


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
    _when_imported("recbole.quick_start.quick_start", _restore_builtins, before=_defer_ray_import)


# --------------------------------------------------------------------------
# Fix 6: exhaustive search on hyperopt >= 0.2.7
# --------------------------------------------------------------------------
class _GeneratorRandom(types.ModuleType):
    """``numpy.random`` whose ``RandomState(seed)`` is ``default_rng(seed)``."""

    def __init__(self, random):
        super().__init__("numpy.random", random.__doc__)
        self._random = random

    def __getattr__(self, name):
        return getattr(self._random, name)

    def RandomState(self, seed=None):  # noqa: N802 (numpy's name)
        return self._random.default_rng(seed)


class _HyperTuningNumpy(types.ModuleType):
    """``numpy`` as seen by recbole.trainer.hyper_tuning: ``random.RandomState``
    makes a ``Generator``; every other attribute is the real numpy's."""

    def __init__(self, np):
        super().__init__("numpy", np.__doc__)
        self._np = np
        self.random = _GeneratorRandom(np.random)

    def __getattr__(self, name):
        return getattr(self._np, name)

    def __repr__(self):
        return f"<recbole_sigma.compat hyperopt-rng proxy for {self._np!r}>"


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
    if not isinstance(module.np, _HyperTuningNumpy) and _hyperopt_wants_generator():
        module.np = _HyperTuningNumpy(module.np)


def fix_hyperopt_exhaustive():
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
    only ``np.random`` use; its other numpy calls reach the real numpy.
    """
    _when_imported("recbole.trainer.hyper_tuning", _patch_hyper_tuning_numpy)


# --------------------------------------------------------------------------
_FIXES = (
    fix_numpy_aliases,
    fix_checkpoint_loading,
    fix_dataset_pandas3,
    fix_anomaly_detection,
    fix_ray_import,
    fix_hyperopt_exhaustive,
)


_applied = False


def apply():
    """Apply every fix (idempotent; imports only numpy).  See module docstring."""
    global _applied
    if _applied:
        return
    for fix in _FIXES:
        fix()
    _applied = True
