"""benchmarks/notebook_flops.py: RecBole's FLOPs count of our layers against what the authors'
notebook prints for its runs."""
from benchmarks.notebook_flops import NOTEBOOK, UNIT, count_flops, main, mamba4rec_layer, sigma_layer


def test_mamba4rec_counts_what_the_notebook_prints_for_its_mamba4rec():
    assert count_flops(mamba4rec_layer()) == (NOTEBOOK["68 'raw' (Mamba4Rec)"][1], 0)


def test_nb_no_gate_counts_what_the_notebook_prints_for_its_sigma_runs_and_heads_sigma_does_not():
    """A coincidence (its Conv1d's 3 units stand where the notebook has 3 Linear calls), as the next test
    shows."""
    notebook_sigma = NOTEBOOK["66 'SIGMA' (the paper's row)"][1]
    assert NOTEBOOK["34-58 flip ranges (13 runs)"][1] == notebook_sigma
    flops, gru = count_flops(sigma_layer("nb_no_gate"))
    assert (flops, gru) == (notebook_sigma, 1_251_200)  # the GRU: bias-free, 50 steps
    head, _ = count_flops(sigma_layer("public_code"))
    no_projection, _ = count_flops(sigma_layer("nb_no_projection"))
    assert head - no_projection == UNIT  # the projection: one 64 x 64 Linear on 50 positions
    assert head - flops == 7 * UNIT  # the gate's four Linear maps over six calls, and the projection
    assert notebook_sigma not in {head, no_projection}


def test_nb_one_gate_and_cell26_no_conv_count_what_the_notebook_prints_for_the_runs_they_follow():
    assert count_flops(sigma_layer("nb_one_gate")) == (NOTEBOOK["66 'SIGMA' (the paper's row)"][1], 1_251_200)
    assert count_flops(sigma_layer("cell26_no_conv")) == (NOTEBOOK["26 'modulize SIGMA'"][1], 1_251_200)
    # the notebook's 'without gate' run keeps one Linear call of the three: the GRU reads no Conv1d
    assert NOTEBOOK["66 'SIGMA' (the paper's row)"][1] - NOTEBOOK["64 'without gate'"][1] == 2 * UNIT
    assert count_flops(sigma_layer("nb_one_gate", use_ds_gate=False))[0] == NOTEBOOK["64 'without gate'"][1] - UNIT


def test_the_script_prints_both_sides(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "3,526,464" in out and "nb_one_gate" in out and "66 'SIGMA'" in out
