"""What the SIGMA paper and its authors' notebook report, quoted (the report sets it beside our runs)."""

# Quoted from the paper (arXiv 2408.11451): Table 2 (Beauty column) and Table 4 (ablations on Beauty).
# These are validation numbers (its Beauty Mamba4Rec row is the best-valid line of the authors' notebook,
# AUTHORS_CURVES below): the report sets them beside our best-valid metrics.
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
# Valid NDCG@10 after each epoch of the authors' own Beauty runs (dropout 0.2, L 50, seed 2020, batch
# 2048), quoted from RecMamba.ipynb in github ziwliu8/SIGMA (its cells' printed "valid result" lines).
AUTHORS_CURVES = {
    "amazon-beauty": {
        "SIGMA, authors' notebook, cell 66 (quoted)": (
            0.0088, 0.0121, 0.0189, 0.0253, 0.0306, 0.0355, 0.0396, 0.0440, 0.0474, 0.0494, 0.0527, 0.0540,
            0.0562, 0.0569, 0.0571, 0.0584, 0.0588, 0.0594, 0.0594, 0.0597, 0.0593, 0.0591, 0.0590, 0.0587,
            0.0587, 0.0587, 0.0588, 0.0582, 0.0582, 0.0574, 0.0576),
        "Mamba4Rec, authors' notebook, cell 68 (quoted)": (
            0.0081, 0.0111, 0.0186, 0.0252, 0.0289, 0.0326, 0.0356, 0.0380, 0.0403, 0.0433, 0.0452, 0.0467,
            0.0479, 0.0490, 0.0499, 0.0506, 0.0509, 0.0518, 0.0517, 0.0528, 0.0531, 0.0535, 0.0532, 0.0532,
            0.0540, 0.0540, 0.0528, 0.0533, 0.0533, 0.0523, 0.0524, 0.0529, 0.0531, 0.0529, 0.0526, 0.0527,
            0.0524),
    }
}
# Whole runs of the authors' code, quoted: (best valid, test) HR / NDCG / MRR@10, to set beside ours
# (same data, split, L 50, batch 2048, seed 2020 in the notebook). The public user's run is of the
# public code (github ziwliu8/SIGMA issue #1, 2024-12-24, an RTX 3090); the notebook's SIGMA is a
# version that was never committed.
AUTHORS_RUNS = {
    "amazon-beauty": {
        "SIGMA, authors' notebook, cell 66": ((0.0986, 0.0597, 0.0478), (0.0761, 0.0452, 0.0358)),
        "Mamba4Rec, authors' notebook, cell 68": ((0.0880, 0.0540, 0.0436), (0.0659, 0.0410, 0.0334)),
        "SIGMA public code, a user's run (issue #1)": ((0.0860, 0.0504, 0.0396), (0.0652, 0.0372, 0.0287)),
    }
}
