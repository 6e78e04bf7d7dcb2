r"""SASRec, as RecBole ships it, run on length buckets
################################################
Reference:
    Wang-Cheng Kang and Julian McAuley. "Self-Attentive Sequential Recommendation." ICDM 2018.

RecBole's class, unchanged (same parameters, YAML defaults and checkpoints), except that
``forward`` runs each batch as groups of similar length, each trimmed to its longest sequence
(``length_buckets`` in ``base.py``). Its attention is causal and masks padding, and its position
ids count from the left, so the output at the last valid item is the same to float rounding; on
Beauty (8.4 items a training sequence, padded to 50) a training step is several times cheaper.
``length_buckets: False`` runs RecBole's padded forward.
"""
from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec

from recbole_sigma.config_checks import MODEL_KEYS, check_keys
from recbole_sigma.model.base import in_length_buckets


class SASRec(RecBoleSASRec):
    def __init__(self, config, dataset):
        check_keys("SASRec", config, MODEL_KEYS["SASRec"])
        super().__init__(config, dataset)
        self.length_buckets = config["length_buckets"]

    def forward(self, item_seq, item_seq_len):  # (B, L), (B,) -> (B, D)
        if not self.length_buckets:
            return super().forward(item_seq, item_seq_len)
        return in_length_buckets(super().forward, item_seq, item_seq_len, lookahead=0)
