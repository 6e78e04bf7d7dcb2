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
    then dropout -> LayerNorm (residual when stacked) -> PFFN (Eq. 10), as Mamba4Rec and the
    authors' code (Eq. 10 applies the PFFN to Z0 and names a LayerNorm and a residual, not where).

Where the paper is silent (README.md, "Where the defaults come from"): a1 and a2 start at 0.5, as the
two weights HEAD keeps commented out, and are not normalised; the DS gate's Conv1d has kernel 3, its
padding 'same', as HEAD's FE-GRU Conv1d (HEAD's gate has none); one G1 gates both directions, as
Eq. 3 writes it (HEAD has a dense per direction: gate_flip 'own'). Eq. 7's GRU is the paper's, Cho et
al.'s (:class:`PaperGRU`); ``gru_cell: torch`` is torch's nn.GRU, as in HEAD (its reset gate acts after
the hidden state's matrix product).

Ablations (Table 4): ``use_partial_flip``, ``use_ds_gate``, ``use_fe_gru``; a switched-off part
creates no parameters. The public code's departures from the paper are switches too
(``share_mamba``, ``flip_mode``, ``gate_mode``, ``mix_weights``, ``gru_bias``, ``gru_cell``, ``mamba_init``);
README.md lists them. ``sigma_variant: public_code`` sets all seven to the public code's values
(and the five notebook switches below, and flip_back, to HEAD's) where the config leaves them at the
paper's values (:data:`PAPER`, SIGMA.yaml's defaults); a key set to another value keeps it, so
``sigma_variant: public_code`` with ``gate_dropout: 0.3`` is HEAD's SIGMA with that gate dropout
(one set to the paper's value cannot be told from the default here, so the model logs what the preset set;
recbole_sigma.config refuses it).
It builds the SIGMA of the authors' repository at HEAD (github ziwliu8/SIGMA, model/gated_mamba.py),
one G-Mamba layer on H0 of shape (B, L, D):

    H0f = H0 with its first L - r positions reversed (padding included; HEAD hard-codes 45)
    M0, M0f = Mamba(H0), Mamba(H0f)                          one shared block
    G  = drop(Ws SiLU(u) + Wg sigmoid(u)),  u = H0 W1 + b1 + H0
    Gf = drop(Ws SiLU(uf) + Wg sigmoid(G)), uf = H0f W2 + b2 + H0f
    Z0 = w0 GRU(Conv1d(H0)) + w1 (M0f Gf + M0f) + w2 (M0 G + M0)   w = [0.1, 0.1, 0.8] trainable
    then Z0 W + b, dropout -> LayerNorm -> PFFN as above; GRU without biases, drop = dropout 0.2.

Three switches (a fourth below) follow what the authors' notebook (RecMamba.ipynb) prints of the SIGMA it ran
that HEAD does not show: ``gate_activations`` (the two activations of that gate, SiLU and sigmoid
above), ``gate_dropout`` (its drop) and ``output_projection`` (False: no W, b after Z0). Its cell 26
("modulize SIGMA") prints HEAD's modules less the projection, the activations (sigmoid, GELU) and
gate dropout 0.3; what it computes with them is not printed (README.md lists what stays unknown).
``gate_dense_act`` tries one guess at the parameter-free SiLU that cell 26 also prints: on the
forward gate's dense(X), u = SiLU(H0 W1 + b1) + H0, where the first commit of that code keeps the
line commented out. The FLOPs the notebook prints (benchmarks/notebook_flops.py) say its SIGMA runs
compute one gate (two Linear calls, one dense) and run the GRU on 50 positions with no Conv1d:
``gate_flip: shared`` (G serves both directions, no second dense) and ``gru_conv_kernel: 0``.
``sigma_variant: notebook`` sets the public code's switches with these two, no projection,
cell 66's gate activations and dropout, and ``mix_weights: frozen_softmax``: the softmaxed copy of
the mixing weights that HEAD computes and never uses, which reproduces the notebook's runs where
HEAD's trainable raw weights fall short (README.md; ``mix_weights: public_code`` switches back).
That SIGMA, one G-Mamba layer on H0 (B, L, D):

    M0, M0f = Mamba(H0), Mamba(H0f)                          one shared block, HEAD's fixed flip
    G  = drop(Ws sigmoid(u) + Wg SiLU(u)),  u = H0 W1 + b1 + H0       drop = dropout 0.3
    Z0 = w0 GRU(H0) + w1 (M0f G + M0f) + w2 (M0 G + M0)       w = softmax([0.1, 0.1, 0.8]), fixed
    then dropout -> LayerNorm -> PFFN; GRU without biases.

``flip_back`` (in neither the paper nor HEAD; a guess at the notebook's unshown forward) flips M0f
back before the gate, as the bidirectional Mambas the paper cites (Vision Mamba, Dual-path Mamba)
do. With HEAD's fixed flip a user of n <= 45 items then predicts from a flipped branch that scanned
the padding and then its last item, where without it the branch read only padding for n <= 22.
With the paper's flip, r >= 1 and one layer it changes nothing at the predicting position (the last r
items stay put); r = 0 moves the last item's flipped output to position 0, and a second layer reads them all.

The 'same'-padded Conv1d of the DS gate and of the FE-GRU reads, at the last item, the next position:
padding, whose H0 is the LayerNorm of the padding item's embedding (frozen at its init, as in HEAD, whose
FE-GRU Conv1d reads it the same way); a user of L items reads the Conv1d's zeros there.
"""
import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_sigma.errors import ConfigError
from recbole_sigma.model.base import MambaSequentialRecommender
from recbole_sigma.model.layers import MixerLayer, partial_flip
from recbole_sigma.ops.dropout import Dropout

# The public code's combining weights (GRU, flipped, forward): trainable, used as they are.
PUBLIC_CODE_MIX = (0.1, 0.1, 0.8)
# The public-code gate's activations by name (gate_activations, gate_dense_act; the names are
# config_checks.GATE_ACTIVATIONS).
ACTIVATIONS = {"silu": F.silu, "sigmoid": torch.sigmoid, "gelu": F.gelu}
# sigma_variant: public_code -- the switches that turn the paper's SIGMA into the public code's.
PUBLIC_CODE = {
    "share_mamba": True,
    "flip_mode": "fixed",
    "gate_mode": "public_code",
    "mix_weights": "public_code",
    "gru_bias": False,
    "gru_cell": "torch",
    "mamba_init": "public_code",
    # HEAD's gate: its two activations, its dropout (a constant there, whatever dropout_prob says),
    # and Eq. 9's projection after the mix.
    "gate_activations": ("silu", "sigmoid"),
    "gate_dropout": 0.2,
    "output_projection": True,
    "gate_dense_act": "none",
    "gate_flip": "own",
    "flip_back": False,
}
# sigma_variant: notebook -- the SIGMA the authors' notebook ran for the paper's Beauty row (cell 66)
# and its flip-range sweep, as far as its printouts and FLOPs pin it down (README.md): the public code
# with one gate (that it gates both directions is our guess), no Conv1d before the GRU and no
# projection, with cell 66's gate activations and gate dropout, mixing with HEAD's unused softmaxed
# weights (on Beauty above HEAD's trainable ones on each of seven paired seeds, and level with the
# notebook's runs where those fall short: docs/results/amazon-beauty-mix.md).
NOTEBOOK = {**PUBLIC_CODE, "gate_activations": ("sigmoid", "silu"), "gate_dropout": 0.3,
            "output_projection": False, "gate_flip": "shared", "gru_conv_kernel": 0,
            "mix_weights": "frozen_softmax"}
PRESETS = {"public_code": PUBLIC_CODE, "notebook": NOTEBOOK}
# The paper's values of the keys a preset sets (SIGMA.yaml's defaults; a test checks they agree): a
# preset sets only the keys that hold them.
PAPER = {"share_mamba": False, "flip_mode": "length_aware", "gate_mode": "paper", "mix_weights": "trainable",
         "gru_bias": True, "gru_cell": "paper", "mamba_init": "public_code", "gate_activations": ("silu", "sigmoid"),
         "gate_dropout": 0.2, "output_projection": True, "gate_dense_act": "none", "gate_flip": "own",
         "flip_back": False, "gru_conv_kernel": 3}
# What the G-Mamba blocks (and the init of their Mamba blocks) read from the config.
BLOCK_KEYS = (
    "use_partial_flip", "use_ds_gate", "use_fe_gru", "flip_remain", "gate_conv_kernel", "gru_conv_kernel",
    *PUBLIC_CODE,
)


def block_settings(config):
    """The G-Mamba block's keys from ``config``, with its ``sigma_variant`` preset applied to the
    keys that hold the paper's value (:data:`PAPER`): a key set to another value keeps it."""
    settings = {key: config[key] for key in BLOCK_KEYS}
    preset, kept = PRESETS.get(config["sigma_variant"], {}), []
    for key, value in preset.items():
        if _plain(settings[key]) == _plain(PAPER[key]):
            settings[key] = value
        elif _plain(settings[key]) != _plain(value):
            kept.append(key)
    if preset:  # what the preset did, said once: a model built outside recbole_sigma.config sees no check
        logging.getLogger(__name__).info(
            f"sigma_variant {config['sigma_variant']!r} sets "
            + ", ".join(f"{key}={value!r}" for key, value in preset.items()
                        if key not in kept and _plain(value) != _plain(PAPER[key]))
            + "".join(f"; keeps {key}={settings[key]!r} (set away from the paper's {PAPER[key]!r})" for key in kept))
    return settings


def preset_clashes(config, keys):
    """Of ``keys`` (those the user set), the ones the ``sigma_variant`` preset replaces although the user
    asked for them: set to the paper's value, they cannot be told from the default (block_settings)."""
    preset = PRESETS.get(config["sigma_variant"], {})
    return [key for key in sorted(set(keys) & set(preset))
            if _plain(config[key]) == _plain(PAPER[key]) != _plain(preset[key])]


def _plain(value):
    """A config value as a comparable one (YAML gives lists where the presets hold tuples)."""
    return tuple(value) if isinstance(value, list) else value


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

    u = dense(X) + X;  G = dropout(Linear(act_a(u)) + Linear(act_b(v))), applied as M * G + M.
    ``dense_act`` (``gate_dense_act``, a guess for the notebook): u = dense_act(dense(X)) + X on the
    forward branch.
    For the forward branch v = u; for the flipped branch that code passes the forward branch's
    finished gate (after its dropout) as v, so both branches share one pair of Linear maps.
    ``flip`` (``gate_flip``): 'own' is that; 'shared' applies the forward branch's G to the flipped
    branch too (no second dense), what the notebook's FLOPs allow.
    HEAD: act_a = SiLU, act_b = sigmoid, dropout 0.2 (``gate_activations``, ``gate_dropout``).
    ``silu_proj`` and ``sigmoid_proj`` name HEAD's two slots (its ``selective_gate_si`` and
    ``selective_gate_sig``), whichever activations fill them.
    """

    def __init__(self, d_model, activations, dropout, dense_act, flip):
        super().__init__()
        self.dense_fwd = nn.Linear(d_model, d_model)
        self.dense_flip = nn.Linear(d_model, d_model) if flip == "own" else None
        self.silu_proj = nn.Linear(d_model, d_model)
        self.sigmoid_proj = nn.Linear(d_model, d_model)
        self.act_a, self.act_b = (ACTIVATIONS[name] for name in activations)
        self.dropout = Dropout(dropout)
        self.dense_act = nn.Identity() if dense_act == "none" else ACTIVATIONS[dense_act]

    def forward(self, h0, h0f, m0, m0f):  # 4 x (B, L, D) -> 2 x (B, L, D)
        u_fwd = self.dense_act(self.dense_fwd(h0)) + h0
        g_fwd = self.dropout(self.silu_proj(self.act_a(u_fwd)) + self.sigmoid_proj(self.act_b(u_fwd)))
        if self.dense_flip is None:  # 'shared'
            return m0 * g_fwd + m0, m0f * g_fwd + m0f
        u_flip = self.dense_flip(h0f) + h0f
        g_flip = self.dropout(self.silu_proj(self.act_a(u_flip)) + self.sigmoid_proj(self.act_b(g_fwd)))
        return m0 * g_fwd + m0, m0f * g_flip + m0f


class PaperGRU(nn.Module):
    """Eq. 7's GRU as the paper writes it (Cho et al. 2014), ``gru_cell: paper``:

        z_t = sigmoid(W_z [f_{t-1}, c_t] + b_z),  r_t = sigmoid(W_r [f_{t-1}, c_t] + b_r)
        f~_t = tanh(W [r_t * f_{t-1}, c_t] + b),  f_t = z_t * f_{t-1} + (1 - z_t) * f~_t,  f_0 = 0

    The reset gate scales f_{t-1} before W's product, one bias a gate; torch's nn.GRU (``gru_cell:
    torch``, HEAD's) applies it after, r_t * (W_hn f_{t-1} + b_hn), with two biases a gate. Each W is
    kept as its input and hidden halves (``weight_ih``, ``weight_hh``: rows r, z, candidate, nn.GRU's
    order), initialised as nn.GRU's: uniform(-1/sqrt(D), 1/sqrt(D))."""

    def __init__(self, d_model, bias=True):
        super().__init__()
        bound = d_model ** -0.5
        self.weight_ih = nn.Parameter(torch.empty(3 * d_model, d_model).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(3 * d_model, d_model).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(3 * d_model).uniform_(-bound, bound)) if bias else None

    def forward(self, c):  # (B, L, D) -> (B, L, D)
        d = c.shape[-1]
        x_rz, x_n = F.linear(c, self.weight_ih, self.bias).split([2 * d, d], dim=-1)  # every step's input part
        w_rz, w_n = self.weight_hh.split([2 * d, d])
        f, out = c.new_zeros(c.shape[0], d), []
        # unbind, not x[:, t]: its backward stacks the steps' gradients once, where each slice's would
        # write a zero tensor of the whole sequence (quadratic in L)
        for x_rz_t, x_n_t in zip(x_rz.unbind(1), x_n.unbind(1)):
            r, z = torch.sigmoid(x_rz_t + f @ w_rz.T).chunk(2, dim=-1)  # (B, D) each
            f = z * f + (1 - z) * torch.tanh(x_n_t + (r * f) @ w_n.T)
            out.append(f)
        return torch.stack(out, dim=1)


class FeatureExtractGRU(nn.Module):
    """Eq. 7: C = Conv1d(H0) (length-preserving), F0 = GRU(C); ``kernel_size`` 0: F0 = GRU(H0).
    ``cell``: 'torch' (nn.GRU, as HEAD) or 'paper' (:class:`PaperGRU`)."""

    def __init__(self, d_model, kernel_size, bias=True, cell="paper"):
        super().__init__()
        self.conv1d = nn.Conv1d(d_model, d_model, kernel_size, padding="same") if kernel_size else None
        if cell == "paper":
            self.gru = PaperGRU(d_model, bias)
        else:
            self.gru = nn.GRU(d_model, d_model, num_layers=1, bias=bias, batch_first=True)

    def forward(self, x):  # (B, L, D) -> (B, L, D)
        c = x if self.conv1d is None else self.conv1d(x.transpose(1, 2)).transpose(1, 2)
        out = self.gru(c)
        return out if isinstance(self.gru, PaperGRU) else out[0]


class GMambaBlock(nn.Module):
    """PF-Mamba with its DS gate, FE-GRU and the mixing layer (Eq. 2-9).

    ``settings``: the block's keys (:data:`BLOCK_KEYS`, see :func:`block_settings`).
    """

    def __init__(self, settings, d_model, make_mamba):
        super().__init__()
        self.use_ds_gate = settings["use_ds_gate"]
        self.gate_mode = settings["gate_mode"]
        self.mix_mode = settings["mix_weights"]
        self.flip = (
            PartialFlip(settings["flip_remain"], settings["flip_mode"] == "length_aware")
            if settings["use_partial_flip"]
            else None
        )
        self.mamba = make_mamba()
        self.mamba_flip = None if settings["share_mamba"] else make_mamba()
        self.flip_back = settings["flip_back"] and self.flip is not None
        if self.flip_back and self.use_ds_gate and (self.gate_mode == "paper" or settings["gate_flip"] == "own"):
            raise ConfigError("SIGMA: flip_back needs a gate that does not read the flipped input: "
                              "set gate_mode: public_code with gate_flip: shared, or use_ds_gate: False")
        if self.use_ds_gate:
            if self.gate_mode == "paper":
                self.gate = DenseSelectiveGate(d_model, settings["gate_conv_kernel"])
            else:
                self.gate = PublicCodeGate(d_model, settings["gate_activations"], settings["gate_dropout"],
                                           settings["gate_dense_act"], settings["gate_flip"])
        self.fe_gru = (
            FeatureExtractGRU(d_model, settings["gru_conv_kernel"], settings["gru_bias"], settings["gru_cell"])
            if settings["use_fe_gru"]
            else None
        )
        if self.mix_mode == "trainable":  # Eq. 8
            self.a1 = nn.Parameter(torch.tensor(0.5))
            self.a2 = nn.Parameter(torch.tensor(0.5)) if self.fe_gru is not None else None
        else:  # weights over (GRU, flipped, forward); (flipped, forward) without the FE-GRU
            n = 3 if self.fe_gru is not None else 2
            if self.mix_mode == "public_code":  # trainable, from the raw values
                self.mix = nn.Parameter(torch.tensor(PUBLIC_CODE_MIX[-n:]))
            else:  # 'frozen_softmax': fixed, the softmaxed copy that code computes and leaves unused
                self.register_buffer("mix", torch.softmax(torch.tensor(PUBLIC_CODE_MIX), 0)[-n:], persistent=False)
        # Eq. 9; none in the notebook's cell 26 (output_projection: False)
        self.projection = nn.Linear(d_model, d_model) if settings["output_projection"] else nn.Identity()

    @property
    def fixed_flip(self):
        """True when the flip ignores lengths (then it reads padding far past a short user's items)."""
        return self.flip is not None and not self.flip.length_aware

    def lookahead(self):
        """Positions after an item that its output reads, the flip aside: the 'same' convs read
        k // 2 ahead."""
        reach = 0
        if self.use_ds_gate and self.gate_mode == "paper":
            reach = max(reach, self.gate.conv1d.kernel_size[0] // 2)
        if self.fe_gru is not None and self.fe_gru.conv1d is not None:
            reach = max(reach, self.fe_gru.conv1d.kernel_size[0] // 2)
        return reach

    def flipped_branch(self, h0f, item_seq_len):
        """The flipped branch's Mamba on H0f; with ``flip_back`` its output flipped back, so that
        position t holds what the reversed scan read from t onwards (B, L, D) -> (B, L, D)."""
        m0f = (self.mamba if self.mamba_flip is None else self.mamba_flip)(h0f)
        return self.flip(m0f, item_seq_len) if self.flip_back else m0f

    def padded_part(self, h0, item_seq_len):
        """What must see the padded batch with a fixed flip (see SIGMA.stack_padded): H0f, or with
        ``flip_back`` the flipped branch's output itself, which reads padding wherever it lands."""
        h0f = self.flip(h0, item_seq_len) if self.flip is not None else h0
        return self.flipped_branch(h0f, item_seq_len) if self.flip_back else h0f

    def pf_mamba(self, h0, item_seq_len, padded=None):
        """The two gated directions of Eq. 3, position-wise; M is their sum. No flip back unless
        ``flip_back`` (then the gate must not read H0f, which no longer lines up with M0f).
        ``padded``: :meth:`padded_part`, when the caller ran it on the padded batch already."""
        if padded is None:
            padded = self.padded_part(h0, item_seq_len)
        h0f, m0f = (None, padded) if self.flip_back else (padded, self.flipped_branch(padded, item_seq_len))
        m0 = self.mamba(h0)
        if not self.use_ds_gate:
            return m0, m0f
        if self.gate_mode == "paper":
            return self.gate(h0) * m0, self.gate(h0f) * m0f
        return self.gate(h0, h0f, m0, m0f)

    def forward(self, h0, item_seq_len, padded=None):  # (B, L, D), (B,)[, (B, L, D)] -> (B, L, D)
        m_fwd, m_flip = self.pf_mamba(h0, item_seq_len, padded)
        f0 = self.fe_gru(h0) if self.fe_gru is not None else None
        if self.mix_mode == "trainable":
            z0 = self.a1 * (m_fwd + m_flip)
            if f0 is not None:
                z0 = z0 + self.a2 * f0
        else:
            z0 = self.mix[-1] * m_fwd + self.mix[-2] * m_flip
            if f0 is not None:
                z0 = z0 + self.mix[0] * f0
        return self.projection(z0)  # Eq. 9


class SIGMA(MambaSequentialRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        settings = block_settings(config)
        self.layers = nn.ModuleList(
            MixerLayer(
                GMambaBlock(settings, self.hidden_size, lambda: self.make_mamba(config)),
                self.hidden_size,
                self.dropout_prob,
                residual=self.num_layers > 1,
            )
            for _ in range(self.num_layers)
        )
        # A fixed flip reads padded positions far past a short user's last item. In a single layer
        # that input is the padded batch itself: flip it whole in stack_padded, before any length
        # bucket trims it. Deeper layers would need the earlier layers' outputs on all padding.
        self.flip_padded = self.num_layers == 1 and self.layers[0].mixer.fixed_flip
        self.init_weights(settings)

    def lookahead(self):
        if any(layer.mixer.fixed_flip for layer in self.layers) and not self.flip_padded:
            return None
        return sum(layer.mixer.lookahead() for layer in self.layers)

    def stack_padded(self, h, item_seq_len):
        """With a fixed flip (one layer): [H0, P] of shape (B, L, 2D), P the block's padded_part
        (H0f, or with flip_back the flipped branch's output) computed on the padded batch."""
        if not self.flip_padded:
            return h
        return torch.cat([h, self.layers[0].mixer.padded_part(h, item_seq_len)], dim=-1)

    def stack(self, h, item_seq_len):
        if not self.flip_padded:
            return super().stack(h, item_seq_len)
        h0, padded = h.chunk(2, dim=-1)  # each (B, W, D)
        return self.layers[0](h0, item_seq_len, padded)
