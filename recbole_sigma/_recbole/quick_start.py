"""``recbole.quick_start.load_data_and_model`` served by recbole-sigma's.

Breaks: RecBole's ``load_data_and_model`` raises ``UnpicklingError`` on torch >= 2.6 (it reads
the checkpoint with ``torch.load``'s default ``weights_only=True``; see ``checkpoints.py``), and it
finds the model with ``recbole.utils.get_model``, which cannot see recbole-sigma's models.

Fix: on torch >= 2.6 and RecBole 1.2.1, ``recbole.quick_start.load_data_and_model`` (in its module
and its package) is ``recbole_sigma.pipeline.load_data_and_model``: RecBole's body, the checkpoint
read with ``checkpoints.load_checkpoint``, the model resolved by name among ours first. RecBole's
own stays reachable as ``load_data_and_model._recbole_original``. ``torch`` is imported inside
RecBole's function, so a module-scoped proxy (as for the trainer) cannot reach it.
"""
import sys

from . import checkpoints, hooks


def _load_data_and_model(model_file):
    """RecBole's ``load_data_and_model``, served by ``recbole_sigma.load_data_and_model``."""
    from recbole_sigma.pipeline import load_data_and_model

    return load_data_and_model(model_file)


def _patch_load_data_and_model(module, _state=None):
    if not checkpoints.needs_checkpoint_fix():
        return
    original = module.load_data_and_model
    if original is _load_data_and_model or not hooks.recbole_version_ok("fix_load_data_and_model"):
        return
    _load_data_and_model._recbole_original = original
    module.load_data_and_model = _load_data_and_model
    package = sys.modules.get("recbole.quick_start")
    if getattr(package, "load_data_and_model", None) is original:
        package.load_data_and_model = _load_data_and_model


def fix_load_data_and_model():
    """RecBole's ``load_data_and_model`` reads its checkpoints and knows our models (see above)."""
    hooks.when_imported("recbole.quick_start.quick_start", _patch_load_data_and_model)
