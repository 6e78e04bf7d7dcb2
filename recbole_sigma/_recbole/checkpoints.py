"""RecBole's checkpoints on torch >= 2.6: :func:`load_checkpoint` reads one, and RecBole's own
trainer reads them the same way.

Breaks: ``Trainer.evaluate(load_best_model=True)`` and ``Trainer.resume_checkpoint`` raise
``UnpicklingError`` on torch >= 2.6, where ``torch.load`` defaults to ``weights_only=True``.
``Trainer._save_checkpoint`` pickles the whole ``Config`` (its ``final_config_dict`` holds RecBole
enums, a ``torch.device``, numpy values and whatever the user's YAML/config_dict put there) plus
``model.other_parameter()``, which models fill freely.

Scope: that set is open-ended, so ``torch.serialization.add_safe_globals`` cannot be made complete
(and it would widen the allowlist for every ``torch.load`` in the process). Instead exactly the
call sites that read RecBole-written files pass ``weights_only=False``, the behaviour they were
written for on torch < 2.6: :func:`load_checkpoint` (recbole-sigma's readers:
``pipeline.load_data_and_model``, ``trainer.load_checkpoint``), and ``recbole.trainer.trainer``
(where ``_save_checkpoint``, ``evaluate`` and ``resume_checkpoint`` of all RecBole trainers live),
which sees a ``torch`` proxy whose ``load`` is :func:`load_checkpoint`; everything else is the real
torch. The global ``torch.load`` is untouched. (``recbole.quick_start.load_data_and_model``:
``quick_start.py``.)

Like on torch < 2.6, these unpickle the file: only load checkpoints you trust.
``save_dataset``/``save_dataloaders`` files are read with plain ``pickle`` (``recbole.data.utils``),
which torch's change does not affect. Not patched: model-specific pre-training loads (S3Rec,
NeuMF, ConvNCF, NAIS, RaCT, KD_DAGFM ``torch.load(pre_model_path)``).
"""
from . import hooks


def load_checkpoint(f, map_location=None, **kwargs):
    """``torch.load`` of a file RecBole wrote (it pickles its Config): ``weights_only=False``
    unless given. Only load files you trust."""
    import torch

    kwargs.setdefault("weights_only", False)
    return torch.load(f, map_location=map_location, **kwargs)


class CheckpointTorch(hooks.ModuleProxy):
    """``torch`` as seen by recbole.trainer.trainer: ``load`` is :func:`load_checkpoint`."""

    def load(self, f, map_location=None, **kwargs):
        return load_checkpoint(f, map_location, **kwargs)


def needs_checkpoint_fix():
    """torch >= 2.6, where ``torch.load`` defaults to ``weights_only=True``."""
    import torch
    from torch.torch_version import TorchVersion

    return TorchVersion(torch.__version__) >= "2.6"


def _patch_trainer_torch(module, _state=None):
    if needs_checkpoint_fix() and not CheckpointTorch.wraps(module.torch):
        module.torch = CheckpointTorch(module.torch)


def fix_checkpoint_loading():
    """RecBole's trainers read back the checkpoints they write (see the module docstring)."""
    hooks.when_imported("recbole.trainer.trainer", _patch_trainer_torch)
