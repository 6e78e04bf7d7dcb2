"""Run RecBole 1.2.1 on today's stack without touching site-packages.

RecBole 1.2.1 (the last release) pins ``ray<=2.6.3`` and was written against
numpy 1, pandas 1/2 and torch < 2.6.  On a fresh install today (torch 2.13,
numpy 2.4, pandas 3.1, ray 2.6.3, setuptools 84) it breaks in five places;
each fix below is one small function whose docstring says what breaks, where,
and why the fix is scoped as it is.

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
        states = [before() if before else None for before, _ in hooks]
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
    """Call ``after(module, before())`` once ``name`` has been executed.

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
# Fix 1: pkg_resources (ray 2.6.3 on setuptools >= 81)
# --------------------------------------------------------------------------
def _build_pkg_resources_shim():
    import importlib.metadata
    import packaging.requirements
    import packaging.version

    mod = types.ModuleType("pkg_resources")
    mod.__doc__ = (
        "Minimal pkg_resources stand-in installed by recbole_sigma.compat "
        "because setuptools >= 81 no longer ships pkg_resources."
    )
    mod.__path__ = []  # a package, so pkg_resources._vendor... resolves

    class ResolutionError(Exception):
        pass

    class DistributionNotFound(ResolutionError):
        pass

    class VersionConflict(ResolutionError):
        pass

    class Distribution:
        def __init__(self, dist):
            self.project_name = dist.metadata["Name"]
            self.key = self.project_name.lower()
            self.version = dist.version
            self.parsed_version = packaging.version.parse(dist.version)

        def __str__(self):
            return f"{self.project_name} {self.version}"

        __repr__ = __str__

    def require(*requirements):
        dists = []
        for req in requirements:
            for line in [req] if isinstance(req, str) else req:
                parsed = packaging.requirements.Requirement(line)
                try:
                    dist = Distribution(importlib.metadata.distribution(parsed.name))
                except importlib.metadata.PackageNotFoundError:
                    raise DistributionNotFound(line) from None
                if parsed.specifier and dist.version not in parsed.specifier:
                    raise VersionConflict(dist, line)
                dists.append(dist)
        return dists

    def get_distribution(dist):
        return dist if isinstance(dist, Distribution) else require(str(dist))[0]

    def fixup_namespace_packages(path_item, parent=None):
        """No-op: the shim never registers legacy namespace packages.

        pytest's ``monkeypatch.syspath_prepend`` imports this whenever any
        ``pkg_resources`` is in ``sys.modules``.
        """

    def __getattr__(name):
        raise AttributeError(
            f"pkg_resources.{name}: this is recbole_sigma's minimal pkg_resources "
            "shim (setuptools >= 81 removed pkg_resources); it only provides "
            "what ray 2.6.3 uses"
        )

    for obj in (ResolutionError, DistributionNotFound, VersionConflict, Distribution):
        obj.__module__ = "pkg_resources"
    mod.__dict__.update(
        ResolutionError=ResolutionError,
        DistributionNotFound=DistributionNotFound,
        VersionConflict=VersionConflict,
        Distribution=Distribution,
        require=require,
        get_distribution=get_distribution,
        parse_version=packaging.version.parse,
        packaging=packaging,
        fixup_namespace_packages=fixup_namespace_packages,
        __getattr__=__getattr__,
    )
    vendor = types.ModuleType("pkg_resources._vendor")
    vendor.__path__ = []
    vendor.packaging = packaging
    mod._vendor = vendor
    return mod, {
        "pkg_resources._vendor": vendor,
        "pkg_resources._vendor.packaging": packaging,
        "pkg_resources._vendor.packaging.version": packaging.version,
    }


class _PkgResourcesShimLoader(importlib.abc.Loader):
    def create_module(self, spec):
        module, submodules = _build_pkg_resources_shim()
        sys.modules.update(submodules)
        return module

    def exec_module(self, module):
        pass


class _PkgResourcesShimFinder(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``: consulted only if no real pkg_resources exists."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "pkg_resources":
            return None
        return importlib.machinery.ModuleSpec(
            fullname, _PkgResourcesShimLoader(), is_package=True
        )


def fix_pkg_resources():
    """Provide a minimal ``pkg_resources`` when setuptools no longer has one.

    Breaks: ``import recbole.quick_start`` (and ``from ray import tune``,
    ``ray.init``) with ray 2.6.3 on setuptools >= 81, which removed
    ``pkg_resources``: ``ray._private.parameter`` does ``import pkg_resources``
    at import time.

    What ray 2.6.3 uses, and all the shim provides:
    ``get_distribution(name).version`` (ray/_private/parameter.py, rllib),
    ``require(name)[0].version`` and ``DistributionNotFound`` (ray/__init__.py,
    only with pickle5 installed), ``pkg_resources.packaging``
    (ray.air remote_storage, dashboard SDKs) and
    ``pkg_resources._vendor.packaging.version.parse`` (ray.data, ray.air
    tensor extensions, ray._private.utils).  These are backed by
    ``importlib.metadata`` and the real ``packaging`` (a ray dependency).
    ``fixup_namespace_packages`` is a no-op because pytest calls it whenever
    any ``pkg_resources`` module is loaded.  The only other user on RecBole's
    paths is hyperopt 0.2.5 (``recbole_sigma[tune]``): ``import hyperopt``
    imports ``hyperopt.atpe``, which imports pkg_resources and calls
    ``resource_string`` only for the ATPE algorithm, which RecBole does not
    offer; with the shim, ``HyperTuning`` (exhaustive/random/bayes) runs.

    Scope: the shim is served by a finder appended to the *end* of
    ``sys.meta_path``, so a real ``pkg_resources`` (setuptools < 81) always
    wins, and nothing is created until something imports ``pkg_resources``.
    Any other attribute raises an ``AttributeError`` naming this shim.

    Limit: it only exists in processes that import recbole_sigma.  The
    processes ``ray.init()`` spawns (raylet's dashboard agent, workers) are
    fresh interpreters that ``import ray`` first, so Ray Tune still needs a
    ``pkg_resources`` there: ``recbole_sigma/_ray_boot/sitecustomize.py``
    applies this fix and the numpy aliases at their start-up
    (recbole_sigma.tuning puts it on Ray's ``PYTHONPATH``).

    Chosen over pinning ``setuptools<81``: a runtime pin on a build tool would
    downgrade users' setuptools and only postpones the problem (setuptools 80
    already warns that pkg_resources is going away).
    """
    if not any(isinstance(f, _PkgResourcesShimFinder) for f in sys.meta_path):
        sys.meta_path.append(_PkgResourcesShimFinder())


# --------------------------------------------------------------------------
# Fix 2: numpy 2 removed aliases
# --------------------------------------------------------------------------
def _numpy_aliases(np):
    return {
        # Removed in numpy 2.0; RecBole's Config.compatibility_settings reads
        # the first three, ray.tune's loggers read bool8 at import.
        "float_": np.float64,
        "complex_": np.complex128,
        "unicode_": np.str_,
        "bool8": np.bool_,
        # Removed in numpy 1.24 (np.bool/np.long came back in 2.0).  RecBole's
        # Config.compatibility_settings sets exactly these values on every
        # Config(); we set them too because a Config unpickled from a
        # checkpoint (load_data_and_model in a fresh process) never runs that
        # method, yet recbole.data.interaction and evaluator.metrics (MRR,
        # MAP, ...) then use np.float (and hyperopt 0.2.5 np.float/np.int).
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
    """Restore the numpy aliases RecBole 1.2.1 and ray 2.6.3 use, where missing.

    Breaks: every ``recbole.config.Config()`` on numpy >= 2 -- its
    ``compatibility_settings`` reads ``np.float_``, ``np.complex_``,
    ``np.unicode_`` (removed in numpy 2.0); ``from ray import tune`` (ray
    2.6.3's tensorboardx/aim loggers read ``np.bool8`` in class bodies);
    RecBole code run without a fresh ``Config`` (see ``_numpy_aliases``).

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
# Fix 3: torch >= 2.6 torch.load(weights_only=True) vs RecBole checkpoints
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
    from recbole_sigma.quick_start import load_data_and_model

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
# Fix 4: pandas 3 (copy-on-write, Series.agg) in Dataset
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
# Fix 5: recbole's SINE turns on autograd anomaly detection at import
# --------------------------------------------------------------------------
def _anomaly_state():
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
_FIXES = (
    fix_pkg_resources,
    fix_numpy_aliases,
    fix_checkpoint_loading,
    fix_dataset_pandas3,
    fix_anomaly_detection,
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
