r"""SIGMA
################################################
Reference:
    Ziwei Liu et al. "SIGMA: Selective Gated Mamba for Sequential Recommendation."
    AAAI 2025, arXiv 2408.11451.

One G-Mamba layer, on H0 = LayerNorm(dropout(embedding)) of shape (B, L, D):

    H0f = PartialFlip(H0)                                    partial flip, length-aware
    M0, M0f = Mamba(H0), Mamba'(H0f)                         Eq. 2 (two blocks)
    M   = G1(H0) * M0 + G1(H0f) * M0f                        Eq. 3, DS gate G1 of Eq. 4-6
    F0  = GRU(Conv1d(H0))                                    Eq. 7, FE-GRU
    Z0  = (a1 * M + a2 * F0) W + b                           Eq. 8-9, a1 a2 trainable
    then dropout -> LayerNorm (residual when stacked) -> PFFN (Eq. 10), as Mamba4Rec.

Ablations (Table 4): ``use_partial_flip``, ``use_ds_gate``, ``use_fe_gru``; a switched-off part
creates no parameters. The public code's departures from the paper are switches too
(``share_mamba``, ``flip_mode``, ``gate_mode``, ``mix_weights``, ``gru_bias``, ``mamba_init``);
README.md lists them.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_sigma.model.base import MambaSequentialRecommender
from recbole_sigma.model.layers import MixerLayer, partial_flip
from recbole_sigma.ops.dropout import Dropout

# softmax([0.1, 0.1, 0.8]) of the public code's frozen combining weights: (GRU, flipped, forward)
PUBLIC_CODE_MIX = torch.softmax(torch.tensor([0.1, 0.1, 0.8]), dim=0)


class PartialFlip(nn.Module):
    """Reverse the first max(len - remain, 0) valid items of each sequence (padding stays put).

    ``length_aware=False`` reproduces the public code: the first L - remain positions of the
    padded tensor are reversed whatever the user's length (45 of 50 for remain = 5).
    """

    def __init__(self, remain, length_aware=True):
        super().__init__()
        self.remain = remain
        self.length_aware = length_aware

    def forward(self, x, item_seq_len):  # (B, L, D), (B,) -> (B, L, D)
        if not self.length_aware:
            item_seq_len = torch.full_like(item_seq_len, x.shape[1])
        return partial_flip(x, item_seq_len, self.remain)


class DenseSelectiveGate(nn.Module):
    """Eq. 4-6: G0 = Conv1d(X W1 + b1); d = G0 Wd + bd; G1(X) = SiLU(d) + sigmoid(d)."""

    def __init__(self, d_model, kernel_size):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.conv1d = nn.Conv1d(d_model, d_model, kernel_size, padding="same")
        self.delta = nn.Linear(d_model, d_model)

    def forward(self, x):  # (B, L, D) -> (B, L, D)
        g0 = self.conv1d(self.dense(x).transpose(1, 2)).transpose(1, 2)
        d = self.delta(g0)
        return F.silu(d) + torch.sigmoid(d)


class PublicCodeGate(nn.Module):
    """The gate of the public SIGMA code (``gate_mode: public_code``), which is not Eq. 4-6.

    u = dense(X) + X;  G = dropout(Linear(SiLU(u)) + Linear(sigmoid(v))), applied as M * G + M.
    For the forward branch v = u; for the flipped branch that code passes the forward branch's
    finished gate as v, so both branches share one pair of Linear maps and one sigmoid input.
    """

    def __init__(self, d_model, dropout):
        super().__init__()
        self.dense_fwd = nn.Linear(d_model, d_model)
        self.dense_flip = nn.Linear(d_model, d_model)
        self.silu_proj = nn.Linear(d_model, d_model)
        self.sigmoid_proj = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)

    def forward(self, h0, h0f, m0, m0f):
        u_fwd = self.dense_fwd(h0) + h0
        u_flip = self.dense_flip(h0f) + h0f
        g_fwd = self.dropout(self.silu_proj(F.silu(u_fwd)) + self.sigmoid_proj(torch.sigmoid(u_fwd)))
        g_flip = self.dropout(self.silu_proj(F.silu(u_flip)) + self.sigmoid_proj(torch.sigmoid(g_fwd)))
        return m0 * g_fwd + m0, m0f * g_flip + m0f


class FeatureExtractGRU(nn.Module):
    """Eq. 7: C = Conv1d(H0) (length-preserving), F0 = GRU(C)."""

    def __init__(self, d_model, kernel_size, bias=True):
        super().__init__()
        self.conv1d = nn.Conv1d(d_model, d_model, kernel_size, padding="same")
        self.gru = nn.GRU(d_model, d_model, num_layers=1, bias=bias, batch_first=True)

    def forward(self, x):  # (B, L, D) -> (B, L, D)
        c = self.conv1d(x.transpose(1, 2)).transpose(1, 2)
        return self.gru(c)[0]


class GMambaBlock(nn.Module):
    """PF-Mamba with its DS gate, FE-GRU and the mixing layer (Eq. 2-9)."""

    def __init__(self, config, d_model, make_mamba):
        super().__init__()
        self.use_ds_gate = config["use_ds_gate"]
        self.gate_mode = config["gate_mode"]
        self.mix_mode = config["mix_weights"]
        self.flip = (
            PartialFlip(config["flip_remain"], config["flip_mode"] == "length_aware")
            if config["use_partial_flip"]
            else None
        )
        self.mamba = make_mamba()
        self.mamba_flip = None if config["share_mamba"] else make_mamba()
        if self.use_ds_gate:
            if self.gate_mode == "paper":
                self.gate = DenseSelectiveGate(d_model, config["gate_conv_kernel"])
            else:
                self.gate = PublicCodeGate(d_model, config["dropout_prob"])
        self.fe_gru = (
            FeatureExtractGRU(d_model, config["gru_conv_kernel"], config["gru_bias"])
            if config["use_fe_gru"]
            else None
        )
        if self.mix_mode == "trainable":  # Eq. 8
            self.a1 = nn.Parameter(torch.tensor(0.5))
            self.a2 = nn.Parameter(torch.tensor(0.5)) if self.fe_gru is not None else None
        else:
            self.register_buffer("public_code_mix", PUBLIC_CODE_MIX.clone(), persistent=False)
        self.projection = nn.Linear(d_model, d_model)  # Eq. 9

    def lookahead(self):
        """Positions after an item that its output reads: the 'same' convs read k // 2 ahead;
        None when the flip ignores lengths (then padding moves into the sequence)."""
        if self.flip is not None and not self.flip.length_aware:
            return None
        reach = 0
        if self.use_ds_gate and self.gate_mode == "paper":
            reach = max(reach, self.gate.conv1d.kernel_size[0] // 2)
        if self.fe_gru is not None:
            reach = max(reach, self.fe_gru.conv1d.kernel_size[0] // 2)
        return reach

    def pf_mamba(self, h0, item_seq_len):
        """The two gated directions of Eq. 3, position-wise (no flip back); M is their sum."""
        h0f = self.flip(h0, item_seq_len) if self.flip is not None else h0
        m0 = self.mamba(h0)
        m0f = (self.mamba if self.mamba_flip is None else self.mamba_flip)(h0f)
        if not self.use_ds_gate:
            return m0, m0f
        if self.gate_mode == "paper":
            return self.gate(h0) * m0, self.gate(h0f) * m0f
        return self.gate(h0, h0f, m0, m0f)

    def forward(self, h0, item_seq_len):  # (B, L, D), (B,) -> (B, L, D)
        m_fwd, m_flip = self.pf_mamba(h0, item_seq_len)
        f0 = self.fe_gru(h0) if self.fe_gru is not None else None
        if self.mix_mode == "trainable":
            z0 = self.a1 * (m_fwd + m_flip)
            if f0 is not None:
                z0 = z0 + self.a2 * f0
        else:
            w_gru, w_flip, w_fwd = self.public_code_mix
            z0 = w_fwd * m_fwd + w_flip * m_flip
            if f0 is not None:
                z0 = z0 + w_gru * f0
        return self.projection(z0)  # Eq. 9


class SIGMA(MambaSequentialRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.layers = nn.ModuleList(
            MixerLayer(
                GMambaBlock(config, self.hidden_size, lambda: self.make_mamba(config)),
                self.hidden_size,
                self.dropout_prob,
                residual=self.num_layers > 1,
            )
            for _ in range(self.num_layers)
        )
        self.init_weights(config)

    def lookahead(self):
        reaches = [layer.mixer.lookahead() for layer in self.layers]
        return None if None in reaches else sum(reaches)
