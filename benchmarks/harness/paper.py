"""What the SIGMA paper and its authors' notebook report, quoted (the report sets it beside our runs)."""
from collections import namedtuple

# Quoted from the paper (arXiv 2408.11451): Table 2 (Beauty column) and Table 4 (ablations on Beauty).
# These are validation numbers (its Beauty Mamba4Rec row is the best-valid line of the authors' notebook,
# AUTHORS_RUNS below; its FEARec NDCG@10 is that notebook's FEARec best valid, though not its HR and MRR):
# the report sets them beside our best-valid metrics.
PAPER = {
    "amazon-beauty": {
        ("GRU4Rec", "default"): (0.0612, 0.0334, 0.0242),
        ("BERT4Rec", "default"): (0.0764, 0.0395, 0.0285),
        ("SASRec", "default"): (0.0852, 0.0532, 0.0392),
        ("FEARec", "default"): (0.0967, 0.0530, 0.0410),
        ("Mamba4Rec", "default"): (0.0880, 0.0540, 0.0436),
        ("EchoMamba4Rec", "default"): (0.0903, 0.0567, 0.0447),
        ("SIGMA", "default"): (0.0986, 0.0604, 0.0488),
        ("SIGMA", "no_flip"): (0.0953, 0.0586, 0.0473),
        ("SIGMA", "no_gate"): (0.0954, 0.0571, 0.0455),
        ("SIGMA", "no_gru"): (0.0750, 0.0470, 0.0382),
    }
}
# A quoted run of the authors' code: the model it is a run of (a report quotes the runs of its own
# models), its settings where they differ from ours, and its numbers.
# ``variants``: ours that compute what the run's printouts show (modules, parameter count, FLOPs, training;
# README, "SIGMA: paper vs public code"), those whose seeds the report sets a run against; none where none of
# ours does, more than one where the printouts leave a choice (how the notebook's SIGMA mixes its branches);
# ``aside``: a diagnostic run of the notebook's, quoted only in a report that has one of its variants.
Curve = namedtuple("Curve", "model settings scores variants aside", defaults=((), False))  # valid NDCG@10 by epoch
Run = namedtuple("Run", "model valid test variants aside", defaults=((), False))  # best valid, test HR/NDCG/MRR@10
# The notebook's SIGMA as its printouts pin it down, with HEAD's trainable mix and with its softmaxed copy
NOTEBOOK_SIGMA = ("nb_one_gate", "nb_one_gate_softmax_mix")

# Valid NDCG@10 after each epoch of the authors' own Beauty runs (L 50, seed 2020), quoted from
# RecMamba.ipynb in github ziwliu8/SIGMA (its cells' printed "valid result" lines).
AUTHORS_CURVES = {
    "amazon-beauty": {
        "SIGMA, authors' notebook, cell 66 (quoted)": Curve("SIGMA", "dropout 0.2, batch 2048", (
            0.0088, 0.0121, 0.0189, 0.0253, 0.0306, 0.0355, 0.0396, 0.0440, 0.0474, 0.0494, 0.0527, 0.0540,
            0.0562, 0.0569, 0.0571, 0.0584, 0.0588, 0.0594, 0.0594, 0.0597, 0.0593, 0.0591, 0.0590, 0.0587,
            0.0587, 0.0587, 0.0588, 0.0582, 0.0582, 0.0574, 0.0576)),
        # "modulize SIGMA" (variant cell26 puts what this cell prints into HEAD's forward)
        "SIGMA, authors' notebook, cell 26 (quoted)": Curve("SIGMA", "dropout 0.2, batch 2048", (
            0.0079, 0.0134, 0.0200, 0.0269, 0.0313, 0.0356, 0.0392, 0.0434, 0.0459, 0.0489, 0.0507, 0.0532,
            0.0545, 0.0562, 0.0572, 0.0578, 0.0582, 0.0590, 0.0589, 0.0596, 0.0600, 0.0595, 0.0594, 0.0592,
            0.0591, 0.0593, 0.0592, 0.0591, 0.0584, 0.0586, 0.0580, 0.0587)),
        "Mamba4Rec, authors' notebook, cell 68 (quoted)": Curve("Mamba4Rec", "dropout 0.2, batch 2048", (
            0.0081, 0.0111, 0.0186, 0.0252, 0.0289, 0.0326, 0.0356, 0.0380, 0.0403, 0.0433, 0.0452, 0.0467,
            0.0479, 0.0490, 0.0499, 0.0506, 0.0509, 0.0518, 0.0517, 0.0528, 0.0531, 0.0535, 0.0532, 0.0532,
            0.0540, 0.0540, 0.0528, 0.0533, 0.0533, 0.0523, 0.0524, 0.0529, 0.0531, 0.0529, 0.0526, 0.0527,
            0.0524)),
        # RecBole's FEARec with hidden and attention dropout 0.3 (RecBole's YAML, which our runs keep: 0.5)
        "FEARec, authors' notebook, cell 70 (quoted)": Curve("FEARec", "dropout 0.3, batch 4096", (
            0.0069, 0.0075, 0.0115, 0.0162, 0.0213, 0.0254, 0.0298, 0.0330, 0.0368, 0.0393, 0.0421, 0.0433,
            0.0449, 0.0465, 0.0471, 0.0475, 0.0481, 0.0494, 0.0495, 0.0505, 0.0496, 0.0503, 0.0501, 0.0502,
            0.0506, 0.0506, 0.0511, 0.0509, 0.0506, 0.0512, 0.0506, 0.0517, 0.0516, 0.0511, 0.0510, 0.0514,
            0.0518, 0.0519, 0.0522, 0.0522, 0.0520, 0.0518, 0.0523, 0.0524, 0.0528, 0.0523, 0.0529, 0.0524,
            0.0529, 0.0526, 0.0523, 0.0530, 0.0522, 0.0524, 0.0519, 0.0522, 0.0523, 0.0523, 0.0522, 0.0526,
            0.0523, 0.0525, 0.0518)),
        # the diagnostic runs of AUTHORS_RUNS below
        "SIGMA, authors' notebook, cell 40 (quoted)": Curve(
            "SIGMA", "dropout 0.2, batch 2048; its flip sweep's 'first 45'", (
            0.0080, 0.0134, 0.0201, 0.0270, 0.0314, 0.0356, 0.0391, 0.0434, 0.0459, 0.0489, 0.0507, 0.0532,
            0.0546, 0.0563, 0.0572, 0.0579, 0.0580, 0.0591, 0.0590, 0.0596, 0.0598, 0.0596, 0.0593, 0.0592,
            0.0590, 0.0594, 0.0590, 0.0591, 0.0583, 0.0587, 0.0581, 0.0586), NOTEBOOK_SIGMA, aside=True),
        "SIGMA, authors' notebook, cell 62 (quoted)": Curve(
            "SIGMA", "dropout 0.2, batch 2048; 'without reverse'", (
            0.0088, 0.0140, 0.0203, 0.0260, 0.0300, 0.0351, 0.0385, 0.0422, 0.0445, 0.0478, 0.0504, 0.0515,
            0.0535, 0.0544, 0.0556, 0.0548, 0.0555, 0.0566, 0.0564, 0.0570, 0.0571, 0.0569, 0.0569, 0.0570,
            0.0568, 0.0566, 0.0567, 0.0561, 0.0566, 0.0561, 0.0564, 0.0565), ("nb_one_gate_no_flip",), aside=True),
        "SIGMA, authors' notebook, cell 64 (quoted)": Curve(
            "SIGMA", "dropout 0.2, batch 2048; 'without gate'", (
            0.0087, 0.0120, 0.0189, 0.0255, 0.0306, 0.0356, 0.0395, 0.0442, 0.0473, 0.0494, 0.0523, 0.0538,
            0.0553, 0.0564, 0.0569, 0.0578, 0.0580, 0.0592, 0.0592, 0.0592, 0.0592, 0.0589, 0.0586, 0.0585,
            0.0580, 0.0582, 0.0589, 0.0582, 0.0576, 0.0573, 0.0569, 0.0574), ("nb_one_gate_no_gate",), aside=True),
    }
}
# Whole runs of the authors' code, quoted, to set beside ours (same data, split, L 50, seed 2020 in the
# notebook; batch 2048 but for FEARec's 4096). The notebook's SIGMAs are versions that were never
# committed: cell 66 (21 Jul 2024) prints a flat layer with HEAD's modules, cell 26 ("modulize SIGMA",
# 12 Aug 2024) a GMambaBlock inside the layer as HEAD has it, less HEAD's final `projection` Linear
# (900,355 parameters, HEAD 904,515), with GELU and Sigmoid in `selective_gate_sig` and `_si` (HEAD:
# Sigmoid and SiLU), gate dropout 0.3 (HEAD: 0.2) and a parameter-free SiLU `ac` HEAD lacks. Cell 80
# ("ECHO Mamba") prints a bidirectional Mamba layer with FFT, a learnable band-pass filter and inverse
# FFT. The public user's run is of the public code (github ziwliu8/SIGMA issue #1, 2024-12-24, an RTX 3090).
AUTHORS_RUNS = {
    "amazon-beauty": {
        "SIGMA, authors' notebook, cell 66": Run(
            "SIGMA", (0.0986, 0.0597, 0.0478), (0.0761, 0.0452, 0.0358), NOTEBOOK_SIGMA),
        # it trains as cell 40 (below) does, from the same initial weights: the same model, the same draw
        "SIGMA, authors' notebook, cell 26 ('modulize SIGMA')": Run(
            "SIGMA", (0.0978, 0.0600, 0.0484), (0.0725, 0.0435, 0.0347), NOTEBOOK_SIGMA),
        "SIGMA public code, a user's run (issue #1)": Run(
            "SIGMA", (0.0860, 0.0504, 0.0396), (0.0652, 0.0372, 0.0287), ("public_code",)),
        "Mamba4Rec, authors' notebook, cell 68": Run(
            "Mamba4Rec", (0.0880, 0.0540, 0.0436), (0.0659, 0.0410, 0.0334), ("cell68",)),
        "ECHO, authors' notebook, cell 80 ('ECHO Mamba')": Run(
            "EchoMamba4Rec", (0.0762, 0.0447, 0.0351), (0.0608, 0.0346, 0.0267)),
        "FEARec, authors' notebook, cell 70 (dropout 0.3, batch 4096)": Run(
            "FEARec", (0.1047, 0.0530, 0.0370), (0.0825, 0.0418, 0.0293)),
        # The flip-range sweep (cells 34-58, 29 Jul 2024) prints 900,355 parameters: cell 66's modules
        # without its `projection` and its 2 loose parameters, with cell 66's FLOPs. Its run with HEAD's
        # flip, the first 45 positions:
        "SIGMA, authors' notebook, cell 40 (flip sweep, 'first 45')": Run(
            "SIGMA", (0.0973, 0.0598, 0.0483), (0.0731, 0.0437, 0.0347), NOTEBOOK_SIGMA, aside=True),
        # Cell 66's two ablations (21 Jul 2024), as nb_one_gate reads them
        "SIGMA, authors' notebook, cell 62 ('without reverse')": Run(
            "SIGMA", (0.0954, 0.0571, 0.0455), (0.0709, 0.0420, 0.0333), ("nb_one_gate_no_flip",), aside=True),
        "SIGMA, authors' notebook, cell 64 ('without gate')": Run(
            "SIGMA", (0.0974, 0.0592, 0.0476), (0.0728, 0.0437, 0.0349), ("nb_one_gate_no_gate",), aside=True),
    }
}


def ran_as(quote, key):
    """Whether ``key`` ((model, variant)) is one of ours that computes what the quoted run ran."""
    return key[0] == quote.model and key[1] in quote.variants


def quoted_for(quotes, dataset, keys):
    """The entries of ``quotes`` (AUTHORS_CURVES or AUTHORS_RUNS) on ``dataset`` that are runs of the models of
    ``keys`` ((model, variant) pairs); a diagnostic one (``aside``) only where one of its variants is one of them."""
    models = {model for model, _ in keys}
    return {label: quote for label, quote in quotes.get(dataset, {}).items()
            if quote.model in models and (not quote.aside or any(ran_as(quote, key) for key in keys))}
