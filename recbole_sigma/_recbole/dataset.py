"""RecBole's Dataset preprocessing behaves on pandas 3 as on pandas 1/2.

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
from . import hooks


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


def _patch_dataset(module, _state=None):
    if hooks.recbole_version_ok("fix_dataset_pandas3"):
        hooks.install(module.Dataset, "_fill_nan", _dataset_fill_nan)
        hooks.install(module.Dataset, "_remap", _dataset_remap)


def _patch_sequential_dataset(module, _state=None):
    if hooks.recbole_version_ok("fix_dataset_pandas3"):
        hooks.install(
            module.SequentialDataset, "_benchmark_presets", _sequential_benchmark_presets
        )


def fix_dataset_pandas3():
    """Corrected copies of three Dataset methods for pandas 3 (see the module docstring)."""
    hooks.when_imported("recbole.data.dataset.dataset", _patch_dataset)
    hooks.when_imported("recbole.data.dataset.sequential_dataset", _patch_sequential_dataset)
