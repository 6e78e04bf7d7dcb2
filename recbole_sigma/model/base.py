"""What the three models share: item embedding, input dropout + LayerNorm, weight init, the
CE/BPR losses and RecBole's ``predict`` / ``full_sort_predict``. A model builds
``self.layers``, each called as ``layer(h, item_seq_len)`` on (B, L, D); the last valid position
predicts.

Length buckets: RecBole pads every sequence to MAX_ITEM_LIST_LENGTH (50 on Amazon), while a
Beauty training sequence has 8.4 items on average, so most of a padded batch is padding. When a
model's ``stack`` reads at most ``lookahead()`` positions after the last valid item, ``forward``
runs it on groups of similar length, each trimmed to its longest sequence plus that look-ahead:
the same outputs (to float rounding) for about a quarter of the work. A model whose first layers
must see the padding (ECHO's spectral filter, SIGMA's fixed flip) runs them in ``stack_padded``
on the whole batch."""
import logging

import torch
import torch.nn as nn
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss

from recbole_sigma.config_checks import check_model_config
from recbole_sigma.mamba import Mamba
from recbole_sigma.ops.dropout import Dropout


# Mamba4Rec Sec. 4.1: "To address the sparsity of the Amazon datasets, a dropout rate of 0.4 is used,
# compared to 0.2 for MovieLens-1M" (about 9 and 165 interactions per user).
SPARSE_DROPOUT, DENSE_DROPOUT, DENSE_FROM = 0.4, 0.2, 50


def domain_dropout(dropout_prob, dataset):
    """``dropout_prob`` as a number: 'auto' applies the Mamba4Rec paper's per-domain rule to the
    training data, SPARSE_DROPOUT below DENSE_FROM interactions per user, else DENSE_DROPOUT."""
    if dropout_prob != "auto":
        return dropout_prob
    per_user = dataset.inter_num / max(1, dataset.user_num - 1)  # training rows a user (user_num counts the padding id)
    chosen = SPARSE_DROPOUT if per_user < DENSE_FROM else DENSE_DROPOUT
    logging.getLogger(__name__).info(
        f"dropout_prob 'auto': {chosen} ({per_user:.1f} training interactions per user, "
        f"{'<' if per_user < DENSE_FROM else '>='} {DENSE_FROM})")
    return chosen


class MambaSequentialRecommender(SequentialRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        check_model_config(type(self).__name__, config, self.max_seq_length)
        self.hidden_size = config["hidden_size"]
        self.num_layers = config["num_layers"]
        self.dropout_prob = domain_dropout(config["dropout_prob"], dataset)
        self.loss_type = config["loss_type"]

        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.LayerNorm = nn.LayerNorm(self.hidden_size, eps=1e-12)
        self.dropout = Dropout(self.dropout_prob)
        self.loss_fct = BPRLoss() if self.loss_type == "BPR" else nn.CrossEntropyLoss()
        self.length_buckets = config["length_buckets"]

    def lookahead(self):
        """How many positions after the last valid item its output reads (through the whole
        stack), or None when padding changes the outputs, which turns length buckets off."""
        return None

    def make_mamba(self, config):
        """One Mamba block with the model's d_state / d_conv / expand / backend."""
        return Mamba(
            d_model=self.hidden_size,
            d_state=config["d_state"],
            d_conv=config["d_conv"],
            expand=config["expand"],
            backend=config["mamba_backend"] or "auto",
        )

    def init_weights(self, config):
        """RecBole's init (normal(0, 0.02) for Linear and Embedding, LayerNorm to identity).

        Mamba blocks keep mamba-ssm's own initialisation unless ``mamba_init: public_code``,
        where, as in the Mamba4Rec and SIGMA repositories, the blanket init also overwrites
        in_proj / x_proj / dt_proj / out_proj (which zeroes the dt bias).
        """
        reinit_mamba = config["mamba_init"] == "public_code"
        skip = set()
        if not reinit_mamba:
            for module in self.modules():
                if isinstance(module, Mamba):
                    skip.update(id(m) for m in module.modules())
        for module in self.modules():
            if id(module) in skip:
                continue
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.data.normal_(mean=0.0, std=0.02)
            elif isinstance(module, nn.LayerNorm):
                module.bias.data.zero_()
                module.weight.data.fill_(1.0)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()

    def forward(self, item_seq, item_seq_len):
        """(B, L) item ids, (B,) lengths -> (B, D) representation at the last valid position."""
        h = self.LayerNorm(self.dropout(self.item_embedding(item_seq)))  # (B, L, D)
        return self.last_output(self.stack_padded(h, item_seq_len), item_seq_len)

    def last_output(self, h, item_seq_len):
        """``stack``'s output at each row's last valid item, (B, L, D) -> (B, D): in length buckets
        when ``lookahead()`` allows it, else on the whole batch."""
        lookahead = self.lookahead() if self.length_buckets else None

        def last(h, lengths):
            return last_position(self.stack(h, lengths), lengths)

        if lookahead is None:
            return last(h, item_seq_len)
        return in_length_buckets(last, h, item_seq_len, lookahead)

    def stack_padded(self, h, item_seq_len):
        """The part of the layer stack that must see the whole padded batch: none by default."""
        return h

    def stack(self, h, item_seq_len):
        """The rest of the stack, (B, L, D) -> (B, L, D); with length buckets its output at an item
        may read at most ``lookahead()`` positions after it."""
        for layer in self.layers:
            h = layer(h, item_seq_len)
        return h

    def calculate_loss(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        pos_items = interaction[self.POS_ITEM_ID]
        if self.loss_type == "BPR":
            neg_items = interaction[self.NEG_ITEM_ID]
            pos_score = (seq_output * self.item_embedding(pos_items)).sum(-1)  # (B,)
            neg_score = (seq_output * self.item_embedding(neg_items)).sum(-1)  # (B,)
            return self.loss_fct(pos_score, neg_score)
        logits = seq_output @ self.item_embedding.weight.t()  # (B, n_items)
        return self.loss_fct(logits, pos_items)

    def predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return (seq_output * self.item_embedding(interaction[self.ITEM_ID])).sum(-1)  # (B,)

    def full_sort_predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return seq_output @ self.item_embedding.weight.t()  # (B, n_items)


def last_position(x, lengths):  # (B, L, D), (B,) -> (B, D): each row at position lengths - 1
    """RecBole's ``gather_indexes(x, lengths - 1)`` (the same gather, so a length of 0 is an error, not
    the last position), callable from a layer as well as a model."""
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, x.shape[-1])
    return x.gather(dim=1, index=index).squeeze(1)


def in_length_buckets(fn, x, item_seq_len, lookahead):
    """``fn(x, item_seq_len) -> (B, ...)`` run on each of :func:`length_buckets`' groups of rows,
    each trimmed to its width; the rows come back in the batch's order."""
    rows, outputs = [], []
    for index, width in length_buckets(item_seq_len, x.shape[1], lookahead):
        outputs.append(fn(x[index, :width], item_seq_len[index]))
        rows.append(index)
    return torch.cat(outputs)[torch.argsort(torch.cat(rows))]


def length_buckets(item_seq_len, max_len, lookahead):
    """Split a batch by length into groups 1, 2, 3-4, 5-8, 9-16, ...: yields (row index, width).

    Each group keeps its longest sequence plus ``lookahead`` positions (at most ``max_len``),
    so every row keeps the positions its last valid item's output depends on.
    """
    group = torch.ceil(torch.log2(item_seq_len.clamp(min=1).double())).long()  # (B,)
    for g in torch.unique(group).tolist():
        index = torch.nonzero(group == g).squeeze(1)
        width = min(max_len, int(item_seq_len[index].max()) + lookahead)
        yield index, width
