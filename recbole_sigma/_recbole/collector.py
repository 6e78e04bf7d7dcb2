"""RecBole's item metrics (ItemCoverage, GiniIndex, AveragePopularity, TailPercentage) run at all.

Breaks on RecBole 1.2.1 itself, whatever the stack: ``Collector.data_collect`` stores the training
data's item count (``data.num_items``, an int) and item counter (``data.count_items``, a Counter) in
its ``DataStruct``, and ``Collector.get_data_struct`` then calls ``.cpu()`` on every entry, so the
first evaluation with one of those metrics fails with ``'int' object has no attribute 'cpu'``.

Fix: a copy of ``get_data_struct`` that moves only tensors to the CPU, identical to RecBole 1.2.1's
otherwise, installed on ``Collector`` (only on 1.2.1, whose body it is); the original stays reachable
as ``get_data_struct._recbole_original``.
"""
from . import hooks


def _get_data_struct(self):
    import copy

    import torch

    for key, value in self.data_struct._data_dict.items():
        if isinstance(value, torch.Tensor):
            self.data_struct._data_dict[key] = value.cpu()
    returned_struct = copy.deepcopy(self.data_struct)
    for key in ["rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label"]:
        if key in self.data_struct:
            del self.data_struct[key]
    return returned_struct


def _patch_collector(module, _state=None):
    if hooks.recbole_version_ok("fix_collector_data_struct"):
        hooks.install(module.Collector, "get_data_struct", _get_data_struct)


def fix_collector_data_struct():
    """``Collector.get_data_struct`` that leaves non-tensor entries alone (see the module docstring)."""
    hooks.when_imported("recbole.evaluator.collector", _patch_collector)
