"""Building blocks shared by the models: the position-wise FFN, the layer shell around a
sequence mixer, and the length-aware partial flip."""
import torch
import torch.nn as nn

from recbole_sigma.ops.dropout import Dropout


class PointWiseFeedForward(nn.Module):
    """D -> inner -> D with GELU, dropout, residual and LayerNorm (Mamba4Rec Sec. 3.3, SIGMA Eq. 10)."""

    def __init__(self, d_model, inner_size, dropout):
        super().__init__()
        self.w_1 = nn.Linear(d_model, inner_size)
        self.w_2 = nn.Linear(inner_size, d_model)
        self.activation = nn.GELU()
        self.dropout = Dropout(dropout)
        self.LayerNorm = nn.LayerNorm(d_model, eps=1e-12)

    def forward(self, x):  # (B, L, D) -> (B, L, D)
        h = self.dropout(self.activation(self.w_1(x)))
        h = self.dropout(self.w_2(h))
        return self.LayerNorm(h + x)


class MixerLayer(nn.Module):
    """mixer -> dropout -> LayerNorm (with a residual only when layers are stacked) -> FFN.

    The layer of Mamba4Rec (mixer = one Mamba block) and of SIGMA (mixer = one G-Mamba block).
    The mixer is called as ``mixer(x, item_seq_len, *mixer_args)``.
    """

    def __init__(self, mixer, d_model, dropout, residual):
        super().__init__()
        self.mixer = mixer
        self.residual = residual
        self.dropout = Dropout(dropout)
        self.LayerNorm = nn.LayerNorm(d_model, eps=1e-12)
        self.ffn = PointWiseFeedForward(d_model, 4 * d_model, dropout)

    def forward(self, x, item_seq_len, *mixer_args):  # (B, L, D), (B,) -> (B, L, D)
        h = self.dropout(self.mixer(x, item_seq_len, *mixer_args))
        h = self.LayerNorm(h + x if self.residual else h)
        return self.ffn(h)


def partial_flip_index(item_seq_len, max_len, remain):
    """Gather index (B, L) that reverses the first ``max(len - remain, 0)`` items of each sequence.

    RecBole left-aligns items and pads at the end, so for a user with ``len`` items
    [h1 .. hn, hn+1 .. hlen, pad ..] becomes [hn .. h1, hn+1 .. hlen, pad ..] with
    n = max(len - remain, 0): padding stays where it is, ``remain = 0`` reverses the whole
    valid part, ``remain >= len`` changes nothing. The permutation is its own inverse.
    """
    t = torch.arange(max_len, device=item_seq_len.device)  # (L,)
    n = (item_seq_len - remain).clamp(min=0).unsqueeze(1)  # (B, 1)
    return torch.where(t < n, n - 1 - t, t)  # (B, L)


def partial_flip(x, item_seq_len, remain):
    """Apply :func:`partial_flip_index` to x (B, L, D) along the time axis."""
    index = partial_flip_index(item_seq_len, x.shape[1], remain)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))
