r"""Mamba4Rec
################################################
Reference:
    Chengkai Liu et al. "Mamba4Rec: Towards Efficient Sequential Recommendation with Selective
    State Space Models." arXiv 2403.03900 (2024).

Embedding -> dropout -> LayerNorm, then ``num_layers`` layers of
Mamba block -> dropout -> LayerNorm (residual only when stacked) -> position-wise FFN;
the hidden state at the last valid position predicts the next item. Its scores are its dot products
with the item embeddings: Eq. 5's Softmax(Linear(h)) read as the paper's "we adopt the approach of
SASRec" and its authors' code do, the output layer tied to the embedding table (no bias).
"""
import torch.nn as nn

from recbole_sigma.model.base import MambaSequentialRecommender
from recbole_sigma.model.layers import MixerLayer


class MambaMixer(nn.Module):
    """Adapts a Mamba block to the ``mixer(x, item_seq_len)`` call of MixerLayer."""

    def __init__(self, mamba):
        super().__init__()
        self.mamba = mamba

    def forward(self, x, item_seq_len):  # (B, L, D) -> (B, L, D); causal, so lengths are not needed
        return self.mamba(x)


class Mamba4Rec(MambaSequentialRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.layers = nn.ModuleList(
            MixerLayer(
                MambaMixer(self.make_mamba(config)),
                self.hidden_size,
                self.dropout_prob,
                residual=self.num_layers > 1,
            )
            for _ in range(self.num_layers)
        )
        self.init_weights(config)

    def lookahead(self):
        return 0  # every part is causal or position-wise
