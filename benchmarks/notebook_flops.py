#!/usr/bin/env python
"""Which SIGMA did the authors' notebook run? Compare the FLOPs it prints with ours.

    python benchmarks/notebook_flops.py

RecBole logs ``FLOPs: <n>`` for every model it trains (``recbole.utils.get_flops``): thop's forward
hooks count each call of a Linear (in_features x outputs), Conv1d, GRU (per step), and RecBole's own
rules count Embedding and LayerNorm, over one interaction of the dataset (L = 50 positions, batch 1).
The notebook (github ziwliu8/SIGMA, RecMamba.ipynb) prints that line for each of its runs. Its
Mamba4Rec (cell 68) counts 1,660,864: the embedding, the LayerNorms and the FFN, nothing inside the
Mamba block (mamba-ssm's fast path multiplies its weights without calling its submodules). So the
rest of a SIGMA run's count says which of its printed modules its forward called, and on what.

This script counts our SIGMA's layer the same way for each named variant (the harness's variants,
benchmarks/harness/jobs.py, over SIGMA.yaml), with the Mamba block stubbed out as in the
notebook's count, and prints it beside the notebook's. One unit = one 64 x 64 Linear on 50
positions (204,800); the Conv1d (kernel 3) costs 3 units; the GRU (no bias) over 50 steps 1,251,200.

What the notebook's counts say, with its own labels (the markdown cell above each run):
- Every SIGMA run has one bias-free GRU over 50 steps (no other split of the counts is whole).
- 'SIGMA' (cell 66, the paper's row) counts 3 units, 'without gate' (cell 64) 1: its gate is two
  Linear calls, and the GRU reads no Conv1d (3 units, more than cell 64 has).
- 'without reverse' (cell 62) counts the same 3 units and trains an epoch in 6.7 s against 11.0 s:
  one Mamba call fewer, the same gate, so the gate is computed once, not once per direction.
- 'modulize SIGMA' (cell 26, three weeks later) counts 6: HEAD's gate per direction (dense and two
  Linear calls each) without the Conv1d, or one gate with it; the count cannot tell which.
Our nb_no_gate counts 3 units too, but with its Conv1d and no gate: cell 64 rules that reading out.
HEAD's file (model/gated_mamba.py) calls its dense2 twice, the first result unused: 11 units where
our public_code, which leaves that call out, counts 10. No notebook run counts either.
"""
import argparse
import sys

import torch
import torch.nn as nn

L, D = 50, 64  # the notebook's MAX_ITEM_LIST_LENGTH and hidden_size
UNIT = L * D * D  # one D x D Linear on L positions
GRU_50 = 1_251_200  # thop's count of GRU(64, 64, bias=False) over 50 steps
# What the notebook prints for its Beauty runs (cell and its label: trainable parameters, FLOPs,
# median seconds a training epoch on its GPU)
NOTEBOOK = {
    "68 'raw' (Mamba4Rec)": (846_784, 1_660_864, 5.5),
    "66 'SIGMA' (the paper's row)": (904_517, 3_526_464, 11.0),
    "64 'without gate'": (904_517, 3_116_864, 10.4),
    "62 'without reverse'": (904_516, 3_526_464, 6.7),
    "34-58 flip ranges (13 runs)": (900_355, 3_526_464, 11.0),
    "26 'modulize SIGMA'": (900_355, 4_140_864, 10.9),
}
# Our variants (benchmarks/harness/jobs.py); the paper's SIGMA as gru_cell_torch, with nn.GRU, which thop counts
# (the default's Eq. 7 GRU is a step loop it cannot see; the notebook's SIGMAs ran nn.GRU)
VARIANTS = ("gru_cell_torch", "no_projection", "public_code", "nb_no_projection", "cell26", "cell26_no_conv", "nb_no_gate",
            "nb_one_gate")


class MambaStub(nn.Module):
    """Stands in for a Mamba block: its calls count nothing, as in the notebook's count."""

    def forward(self, x):  # (B, L, D) -> (B, L, D)
        return x


def count_flops(layer):
    """RecBole's get_flops rules over ``layer`` (a MixerLayer), plus the embedding lookups and the
    outer LayerNorm of a sequential model's forward and predict: (L + 1) x D and 2 x L x D.
    Returns (FLOPs, the GRU's part of them)."""
    from thop.rnn_hooks import count_gru
    from thop.vision.basic_hooks import count_convNd, count_linear

    total, gru = [0.0], [0.0]

    def layer_norm(m, x, y):  # recbole.utils.get_flops's count_normalization
        m.total_ops += 2 * x[0].numel()

    rules = {nn.Linear: count_linear, nn.Conv1d: count_convNd, nn.GRU: count_gru, nn.LayerNorm: layer_norm}

    def hook(rule):
        def count(m, x, y):
            m.total_ops = torch.zeros(1, dtype=torch.float64)
            rule(m, x, y)
            total[0] += float(m.total_ops)
            if isinstance(m, nn.GRU):
                gru[0] += float(m.total_ops)
        return count

    handles = [m.register_forward_hook(hook(rules[type(m)])) for m in layer.modules() if type(m) in rules]
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(1, L, D), torch.tensor([L]))
    for handle in handles:
        handle.remove()
    return int(total[0]) + (L + 1) * D + 2 * L * D, int(gru[0])


def sigma_layer(variant, **overrides):
    """One SIGMA layer as the harness's ``variant`` builds it on Beauty (Mamba blocks stubbed)."""
    try:  # run as a script (benchmarks/ first on sys.path), or imported from the repository root
        from harness.jobs import variant_overrides, yaml_defaults
    except ImportError:
        from benchmarks.harness.jobs import variant_overrides, yaml_defaults
    from recbole_sigma.model.layers import MixerLayer
    from recbole_sigma.model.sigma import GMambaBlock, block_settings

    config = {**yaml_defaults("SIGMA", "amazon-beauty"), **variant_overrides("SIGMA", variant), **overrides}
    return MixerLayer(GMambaBlock(block_settings(config), D, MambaStub), D, 0.0, residual=False)


def mamba4rec_layer():
    """One Mamba4Rec layer (its Mamba block stubbed)."""
    from recbole_sigma.model.layers import MixerLayer
    from recbole_sigma.model.mamba4rec import MambaMixer

    return MixerLayer(MambaMixer(MambaStub()), D, 0.0, residual=False)


def units(flops, base, gru=GRU_50):
    """What a SIGMA count adds to Mamba4Rec's, less its GRU's part, in units."""
    return (flops - base - gru) / UNIT


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.parse_args(argv)
    base = count_flops(mamba4rec_layer())[0]
    print(f"{'model':52s} {'params':>9s} {'FLOPs':>11s} {'units':>6s} {'s/epoch':>8s}")
    print("notebook, as printed (cell 'its label'):")
    for name, (params, flops, seconds) in NOTEBOOK.items():
        extra = f"{units(flops, base):6.1f}" if flops != base else ""
        print(f"  {name:50s} {params:9,d} {flops:11,d} {extra:>6s} {seconds:8.1f}")
    print("ours, counted the same way (variant):")
    print(f"  {'Mamba4Rec':50s} {'':9s} {base:11,d}")
    for variant in VARIANTS:
        flops, gru = count_flops(sigma_layer(variant))
        print(f"  SIGMA {variant:44s} {'':9s} {flops:11,d} {units(flops, base, gru):6.1f}")
    print(f"one unit = {UNIT:,d} FLOPs (a {D} x {D} Linear on {L} positions); a kernel-3 Conv1d = 3 units; "
          f"units leave out the GRU (the notebook's: bias-free, over {L} steps, {GRU_50:,d}; the paper's has biases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
