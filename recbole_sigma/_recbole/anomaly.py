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
from . import hooks


def _anomaly_state(_module=None):
    import torch

    return torch.is_anomaly_enabled()


def _restore_anomaly_state(_module, was_enabled):
    import torch

    # was_enabled is None if sine was imported before apply(): unknown, keep.
    if was_enabled is False and torch.is_anomaly_enabled():
        torch.autograd.set_detect_anomaly(False)


def fix_anomaly_detection():
    """Keep autograd anomaly detection as it was across SINE's import (see the module docstring)."""
    hooks.when_imported(
        "recbole.model.sequential_recommender.sine",
        _restore_anomaly_state,
        before=_anomaly_state,
    )
