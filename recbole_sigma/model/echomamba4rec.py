r"""EchoMamba4Rec (ECHO)
################################################
Reference:
    Yuda Wang, Xuxin He, Shengxin Zhu. "EchoMamba4Rec: Harmonizing Bidirectional State Space
    Models with Spectral Filtering for Advanced Sequential Recommendation." arXiv 2406.02638.

Built as its authors' code (github wyd0042/EchoMamba4Rec, model.py) builds it, but for dropout_prob
'auto', the departure README.md lists ("Where the defaults come from"). Per layer, on (B, L, D):
    filter:  rfft over time -> * learnable complex weight (L/2+1, D) -> irfft -> dropout,
             residual, LayerNorm
    BiMamba: forward Mamba, and a backward Mamba on the sequence reversed, its output flipped
             back; each direction dropout + residual + its own LayerNorm; the two are summed
    GLU:     Linear D->2D, value * sigmoid(gate), Linear D->D, dropout, residual, LayerNorm

Four keys switch to the structure that was the default until 7 December 2026 (the harness's
``item_flip``; on Beauty level with the code's, README.md):
``backward_flip``: 'padded' (default), as the authors' code, reverses the whole padded tensor, so the
backward scan reads the padded positions (after the filter, mixtures of every item) before the
user's items; 'valid_items' reverses each sequence's valid items, padding staying at the end.
With 'valid_items', at the last valid position, which predicts, the backward scan has read only
that one item, so the last layer's backward A_log gets no gradient from the next-item loss.
``glu_dropout``: 'sum' (default), as the authors' code, drops the sum, residual included:
LayerNorm(dropout(Linear(g) + x)); 'branch' drops the GLU's output before the residual.
``mamba_pairs``: 'num_layers' (default), as the authors' code, nests N pairs in a row inside each of
its N layers (one filter and one GLU a layer); 'one' Mamba pair a layer. The same at one layer.
``bimamba_norm_eps``: 1e-5 (default), torch's, as the authors' code keeps for the two LayerNorms
after the directions; 1e-12, as every other LayerNorm here and in that code.

Length buckets: the spectral filter mixes every position of the padded sequence, padding
included, so every layer but the last, and the last layer's filter, run on the padded batch
(``stack_padded``); with 'valid_items' the last layer's BiMamba and GLU read only each sequence's
items (forward scan up to the item, backward scan over the items after it) and run
length-bucketed. With 'padded' the last pair's backward scan reads the padded tail, so only its
output at the last valid item is computed (``last_output``): the forward scan over the n items up to
it and the backward scan over the L - n + 1 positions from the end down to it, each in its own
length buckets, then the LayerNorms and the GLU on that one position (0.6 times the padded batch's
training time on Beauty, docs/performance.md; ``length_buckets: False`` runs everything padded).
"""
import torch
import torch.nn as nn

from recbole_sigma.model.base import MambaSequentialRecommender, in_length_buckets, last_position
from recbole_sigma.model.layers import partial_flip
from recbole_sigma.ops.dropout import Dropout


class SpectralFilter(nn.Module):
    def __init__(self, max_len, d_model, dropout):
        super().__init__()
        self.complex_weight = nn.Parameter(torch.randn(max_len // 2 + 1, d_model, 2) * 0.02)
        self.dropout = Dropout(dropout)
        self.LayerNorm = nn.LayerNorm(d_model, eps=1e-12)

    def forward(self, x):  # (B, L, D) -> (B, L, D)
        spectrum = torch.fft.rfft(x, dim=1, norm="ortho")  # (B, L/2+1, D) complex
        spectrum = spectrum * torch.view_as_complex(self.complex_weight)
        h = torch.fft.irfft(spectrum, n=x.shape[1], dim=1, norm="ortho")
        return self.LayerNorm(self.dropout(h) + x)


class BidirectionalMamba(nn.Module):
    def __init__(self, make_mamba, d_model, dropout, flip="padded", norm_eps=1e-5):
        super().__init__()
        self.mamba_fwd = make_mamba()
        self.mamba_bwd = make_mamba()
        self.dropout = Dropout(dropout)
        self.LayerNorm_fwd = nn.LayerNorm(d_model, eps=norm_eps)
        self.LayerNorm_bwd = nn.LayerNorm(d_model, eps=norm_eps)
        self.flip_padded = flip == "padded"

    def backward_direction(self, x, item_seq_len):
        """The backward Mamba over each sequence's valid items reversed (or, ``padded``, over the
        whole padded sequence reversed), flipped back."""
        if self.flip_padded:
            return self.mamba_bwd(x.flip(1)).flip(1)
        return partial_flip(self.mamba_bwd(partial_flip(x, item_seq_len, 0)), item_seq_len, 0)

    def forward(self, x, item_seq_len):  # (B, L, D), (B,) -> (B, L, D)
        fwd = self.LayerNorm_fwd(self.dropout(self.mamba_fwd(x)) + x)
        bwd = self.LayerNorm_bwd(self.dropout(self.backward_direction(x, item_seq_len)) + x)
        return fwd + bwd

    def last_output(self, x, item_seq_len):  # (B, L, D), (B,) -> (B, D)
        """``forward(x)`` at each row's last valid item, for the 'padded' flip, each scan in length
        buckets: the forward one over the n items, the backward one over positions L-1 .. n-1."""
        assert self.flip_padded, "with 'valid_items' the stack's own length buckets serve"
        tail = x.shape[1] - item_seq_len + 1  # (B,) positions the backward scan reads
        fwd = in_length_buckets(lambda x, n: last_position(self.mamba_fwd(x), n), x, item_seq_len, 0)
        bwd = in_length_buckets(lambda x, m: last_position(self.mamba_bwd(x), m), x.flip(1), tail, 0)
        x = last_position(x, item_seq_len)  # (B, D)
        return self.LayerNorm_fwd(self.dropout(fwd) + x) + self.LayerNorm_bwd(self.dropout(bwd) + x)


class GatedLinearUnit(nn.Module):
    def __init__(self, d_model, dropout, drop_sum=True):
        super().__init__()
        self.w_in = nn.Linear(d_model, 2 * d_model)
        self.w_out = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)
        self.LayerNorm = nn.LayerNorm(d_model, eps=1e-12)
        self.drop_sum = drop_sum  # glu_dropout 'sum': the residual dropped too, as the authors' code

    def forward(self, x):  # (B, L, D) -> (B, L, D)
        value, gate = self.w_in(x).chunk(2, dim=-1)
        h = self.w_out(value * torch.sigmoid(gate))
        return self.LayerNorm(self.dropout(h + x) if self.drop_sum else self.dropout(h) + x)


class EchoLayer(nn.Module):
    def __init__(self, make_mamba, max_len, d_model, dropout, backward_flip="padded", glu_dropout="sum",
                 pairs=1, norm_eps=1e-5):
        super().__init__()
        self.filter = SpectralFilter(max_len, d_model, dropout)

        def pair():
            return BidirectionalMamba(make_mamba, d_model, dropout, backward_flip, norm_eps)

        self.bimamba = pair()
        self.nested = nn.ModuleList(pair() for _ in range(pairs - 1))  # mamba_pairs 'num_layers': the rest
        self.glu = GatedLinearUnit(d_model, dropout, glu_dropout == "sum")

    def forward(self, x, item_seq_len):
        return self.after_filter(self.filter(x), item_seq_len)

    def after_filter(self, x, item_seq_len):
        x = self.bimamba(x, item_seq_len)
        for bimamba in self.nested:
            x = bimamba(x, item_seq_len)
        return self.glu(x)


class EchoMamba4Rec(MambaSequentialRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        pairs = self.num_layers if config["mamba_pairs"] == "num_layers" else 1
        self.layers = nn.ModuleList(
            EchoLayer(lambda: self.make_mamba(config), self.max_seq_length, self.hidden_size, self.dropout_prob,
                      config["backward_flip"], config["glu_dropout"], pairs, config["bimamba_norm_eps"])
            for _ in range(self.num_layers)
        )
        self.init_weights(config)

    def lookahead(self):
        if self.layers[-1].bimamba.flip_padded:
            return None  # its backward scan reads every padded position: last_output buckets each scan
        return 0  # stack() is the last layer's BiMamba (valid items only) and its position-wise GLU

    def last_output(self, h, item_seq_len):  # (B, L, D) after stack_padded, (B,) -> (B, D)
        last = self.layers[-1]
        if not (self.length_buckets and last.bimamba.flip_padded):
            return super().last_output(h, item_seq_len)
        pairs = [last.bimamba, *last.nested]
        for pair in pairs[:-1]:
            h = pair(h, item_seq_len)  # every position: the next pair's backward scan reads them all
        return last.glu(pairs[-1].last_output(h, item_seq_len))  # the GLU is position-wise

    def stack_padded(self, h, item_seq_len):
        for layer in self.layers[:-1]:
            h = layer(h, item_seq_len)
        return self.layers[-1].filter(h)

    def stack(self, h, item_seq_len):
        return self.layers[-1].after_filter(h, item_seq_len)
