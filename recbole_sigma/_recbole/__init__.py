"""Every patch of RecBole 1.2.1 (and of numpy, torch, Ray and hyperopt as RecBole runs them), and
every other effect recbole-sigma has beyond its own objects, in one list.

RecBole 1.2.1 (the last release) pins ``ray<=2.6.3`` and was written against numpy 1, pandas 1/2
and torch < 2.6. On today's stack (torch 2.13, numpy 2.4, pandas 3.1; RecBole installed without
its requirements, Ray current or absent: setup.py) it breaks in the places below. Each module here
fixes one thing, and its docstring says what breaks, where, and why the fix is scoped as it is.
``apply()`` (``import recbole_sigma`` calls it) installs :data:`FIXES`; it imports nothing but the
standard library: a fix that needs a RecBole module runs when that module is first imported
(``hooks.when_imported``).

Installed on import (:data:`FIXES`), one entry a fix (its module), what it patches, why, and scope:

fix_numpy_aliases (numpy_aliases.py)
    what:  the ``np`` global of 7 RecBole modules (``numpy_aliases.MODULES``), a numpy with the
           aliases it lacks; ``Config.compatibility_settings`` sets nothing
    why:   numpy >= 1.24 / 2 removed ``np.float``, ``np.float_``, ... that RecBole uses
    scope: those modules; numpy itself gets no new names
fix_checkpoint_loading (checkpoints.py)
    what:  the ``torch`` global of ``recbole.trainer.trainer``, whose ``load`` is ``load_checkpoint``
    why:   torch >= 2.6 ``torch.load`` defaults to ``weights_only=True``; RecBole pickles its Config
    scope: that module; ``torch.load`` itself is untouched
fix_load_data_and_model (quick_start.py)
    what:  ``recbole.quick_start.load_data_and_model`` is ``recbole_sigma.load_data_and_model``
    why:   the same, and RecBole's cannot find our models by name
    scope: that name, in its module and its package
fix_dataset_pandas3 (dataset.py)
    what:  ``Dataset._fill_nan``, ``Dataset._remap``, ``SequentialDataset._benchmark_presets``
    why:   pandas 3: copy-on-write (in-place fillna fills a copy), ``Series.agg(len)``
    scope: RecBole's classes: every RecBole dataset in the process
fix_collector_data_struct (collector.py)
    what:  ``Collector.get_data_struct``
    why:   RecBole 1.2.1 calls ``.cpu()`` on the training data's item count and counter: the item
           metrics (ItemCoverage, GiniIndex, AveragePopularity, TailPercentage) fail at the first evaluation
    scope: RecBole's class: every evaluation in the process
fix_anomaly_detection (anomaly.py)
    what:  torch's autograd anomaly mode, around the import of RecBole's SINE
    why:   ``sine.py`` turns it on for the whole process at import (training 2x slower)
    scope: put back to what it was before that import
fix_ray_import (ray.py)
    what:  the ``__builtins__`` of ``recbole.quick_start.quick_start`` while it executes
    why:   its module-level ``from ray import tune`` fails without Ray (Ray is an extra)
    scope: that module's ``tune``, a stand-in importing Ray on first use
fix_hyperopt_exhaustive (hyperopt.py)
    what:  the ``np`` global of ``recbole.trainer.hyper_tuning`` (``RandomState`` makes a Generator)
    why:   hyperopt >= 0.2.7 samples ``hp.choice`` with ``rng.integers``
    scope: that module
all of the above (hooks.py)
    what:  ``sys.meta_path[0]``: ``hooks.HookFinder``
    why:   runs each fix when its RecBole module is imported (RecBole is imported lazily)
    scope: process-wide; it answers only for the hooked module names

For the length of a block, put back when it ends:

device.cpu_ddp() (device.py)
    what:  ``Config._init_device``, ``recbole.trainer.trainer.DistributedDataParallel``,
           ``CUDA_VISIBLE_DEVICES``
    why:   RecBole's DDP path is CUDA-only (nccl, ``device_ids``)
    scope: a DDP worker's run (``recbole_sigma.distributed``, a process of its own)
process_state.plain_argv() (process_state.py)
    what:  ``sys.argv``, without arguments
    why:   RecBole's Config reads ``--key=value`` from it, over every other setting
    scope: a tuning trial, and the tuning driver's check of the fixed settings
process_state.kept_env("CUDA_VISIBLE_DEVICES") (process_state.py)
    what:  ``CUDA_VISIBLE_DEVICES``, put back as it was
    why:   RecBole's Config sets it to ``gpu_id`` ('0' by default) for the rest of the process, so a
           later Ray start on that machine counted one GPU
    scope: ``run()`` (single process), the tuning driver's check of its settings
recbole_sigma.pipeline.restored_root_logger(), _init_logger()
    what:  the root logger's handlers and level; a caller's handlers set aside while ``init_logger``
           runs, then back in place of RecBole's console, each with a filter that passes what the
           caller's levels passed (the root's level may drop to RecBole's, for its file)
    why:   RecBole's ``init_logger`` adds a file and a console handler and sets the level; it is
           ``basicConfig``, a no-op (no log file) once the root logger has handlers
    scope: ``run()``, ``load_data_and_model()``
recbole_sigma.ray_cluster.connect_ray()
    what:  ``os.environ["PYTHONPATH"]``
    why:   Ray's workers import recbole_sigma by name, also from a source checkout
    scope: while ``ray.init`` starts a local cluster
recbole_sigma.tuning.ray_trial()
    what:  the working directory
    why:   RecBole writes ``log/`` there, beside Ray's progress files
    scope: a Ray trial, in Ray's worker process

Not patches of RecBole; process-wide, listed here as the package's other global effects:

* ``ops._numba.configure_numba_cache``: ``os.environ["NUMBA_CACHE_DIR"]`` (and numba's
  ``config.CACHE_DIR``) is a per-user folder when the package folder is not writable and the user
  set none, from the first fused kernel on, so that an installed copy still caches its compiled
  kernels; child processes (DDP workers, Ray trials) inherit it.
* ``ops._numba.set_threads``: numba's thread count follows torch's, before every fused kernel.
* ``malloc.keep_freed_memory`` (glibc ``mallopt``): the command line, the benchmarks, DDP workers
  and Ray trials opt in, in their own processes; ``run()`` as a library never does. DDP workers and
  Ray trials also set torch's thread count, to their share of the cores.
* ``recbole_sigma.trainer`` subclasses RecBole's trainers (``reliable_trainer``); RecBole's
  classes are not changed.
"""
from . import anomaly, checkpoints, collector, dataset, hyperopt, numpy_aliases, quick_start, ray

__all__ = ["FIXES", "apply"]

FIXES = (
    numpy_aliases.fix_numpy_aliases,
    checkpoints.fix_checkpoint_loading,
    quick_start.fix_load_data_and_model,
    dataset.fix_dataset_pandas3,
    collector.fix_collector_data_struct,
    anomaly.fix_anomaly_detection,
    ray.fix_ray_import,
    hyperopt.fix_hyperopt_exhaustive,
)

_applied = False


def apply():
    """Install every fix of :data:`FIXES` (idempotent; imports only the standard library)."""
    global _applied
    if _applied:
        return
    for fix in FIXES:
        fix()
    _applied = True
