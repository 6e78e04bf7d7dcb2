"""benchmarks/reproduce.py (benchmarks/harness) and recbole_sigma.grouped_eval: the user groups, grouped metrics that add
up to RecBole's own evaluation, and the harness end to end (table, grouped table, figure, skip, resume)."""
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import recbole_sigma
from recbole_sigma import grouped_eval
from recbole_sigma.grouped_eval import GROUP_NAMES, assign_groups, group_metrics, history_lengths, per_user_metrics
from recbole_sigma.config import build_config
from benchmarks.harness.cli import parse_args
from benchmarks.harness.jobs import (VARIANTS, config_mismatch, job_name, job_state, plan_jobs, stored_settings,
                                     variant_overrides)
from benchmarks.harness.paper import AUTHORS_CURVES, AUTHORS_RUNS, PAPER
from benchmarks.harness.plots import plot_curves
from benchmarks.harness.report import (against_the_paper, paired_seeds, seeds_table, significance,
                                      variant_lines, variants_against_default, version_lines)
from benchmarks.harness.stats import fmt_change
from benchmarks.harness.results import epoch_summary, load_result, read_epochs
from benchmarks.harness.runner import REPRODUCE_SCRIPT as SCRIPT, record_lost_attempt, wait_with_heartbeat
from benchmarks.harness.stats import fmt_p, paired_p, welch_p

ROOT = Path(__file__).resolve().parents[1]
# The tiny CI settings (tests/test_pipeline.py), plus a 1-layer, 1-head SASRec.
TINY_SET = ["epochs=1", "MAX_ITEM_LIST_LENGTH=10", "hidden_size=16", "d_state=8", "show_progress=False",
            "train_batch_size=4096", "n_layers=1", "n_heads=1", "inner_size=32"]
LOO = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}


# ------------------------------------------------------------------------------------ grouping
def test_boundary_lengths_land_in_the_right_group():
    lengths = [0, 1, 5, 6, 20, 21, 500]
    names = [GROUP_NAMES[g] for g in assign_groups(lengths)]
    assert names == ["short", "short", "short", "medium", "medium", "long", "long"]
    assert [GROUP_NAMES[g] for g in assign_groups([3, 4, 10, 11], bounds=(3, 10))] == [
        "short", "medium", "medium", "long"]
    assert grouped_eval.group_labels() == {"short": "<= 5", "medium": "6-20", "long": "> 20"}


def test_history_lengths_of_hand_made_users_come_from_recbole_splits_untruncated(tmp_path):
    """Users whose test item has 3, 5, 6, 20, 21 and 40 interactions before it; L = 10 truncates
    RecBole's item_length, not the history length."""
    from recbole.data import create_dataset

    wanted = {"u03": 3, "u05": 5, "u06": 6, "u20": 20, "u21": 21, "u40": 40}
    (tmp_path / "toy").mkdir()
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    for n, (user, hist) in enumerate(wanted.items()):
        rows += [f"{user}\ti{(n * 7 + t) % 30}\t{1000 + t}" for t in range(hist + 1)]  # target = last
    (tmp_path / "toy" / "toy.inter").write_text("\n".join(rows) + "\n")
    config = build_config("Mamba4Rec", "toy", config_dict={
        "data_path": str(tmp_path), "MAX_ITEM_LIST_LENGTH": 10, "eval_args": LOO,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
    })
    dataset = create_dataset(config)
    train, valid, test = dataset.build()
    hist = history_lengths(train, valid, test)
    users = dataset.id2token("user_id", test.inter_feat["user_id"].numpy())
    assert dict(zip(users, hist.tolist())) == wanted
    assert test.inter_feat["item_length"].numpy().tolist() == [min(h, 10) for h in hist]  # RecBole's, truncated
    groups = {u: GROUP_NAMES[g] for u, g in zip(users, assign_groups(hist))}
    assert groups == {"u03": "short", "u05": "short", "u06": "medium", "u20": "medium", "u21": "long", "u40": "long"}


def test_group_metrics_of_hand_made_ranks_weight_back_to_the_overall_metric():
    ranks = [1, 3, None, 10, 2, 11]  # rank of each user's target; None / 11: not in the top 10
    lengths = [2, 5, 6, 20, 21, 50]
    pos_index = np.zeros((len(ranks), 12), dtype=bool)
    for row, rank in enumerate(ranks):
        if rank is not None:
            pos_index[row, rank - 1] = True
    metrics = per_user_metrics(pos_index, np.ones(len(ranks)), k=10)
    hit = [1 if r is not None and r <= 10 else 0 for r in ranks]
    ndcg = [1 / math.log2(r + 1) if h else 0.0 for r, h in zip(ranks, hit)]
    mrr = [1 / r if h else 0.0 for r, h in zip(ranks, hit)]
    assert metrics["hit@10"].tolist() == hit
    assert metrics["ndcg@10"] == pytest.approx(ndcg) and metrics["mrr@10"] == pytest.approx(mrr)

    report = group_metrics(lengths, metrics)
    expected = {"short": [0, 1], "medium": [2, 3], "long": [4, 5]}
    for name, rows in expected.items():
        group = report["groups"][name]
        assert group["users"] == 2
        assert group["hit@10"] == pytest.approx(np.mean([hit[i] for i in rows]))
        assert group["ndcg@10"] == pytest.approx(np.mean([ndcg[i] for i in rows]))
        assert group["mrr@10"] == pytest.approx(np.mean([mrr[i] for i in rows]))
    for metric in ("hit@10", "ndcg@10", "mrr@10"):
        weighted = sum(g["users"] * g[metric] for g in report["groups"].values()) / report["overall"]["users"]
        assert weighted == pytest.approx(report["overall"][metric], abs=1e-15)


# ------------------------------------------------------------------------------------ harness plan
def test_epoch_summary_takes_the_median_time_and_the_epoch_recbole_keeps(tmp_path):
    lines = [{"epoch": 0, "train_s": 10.0, "loss": 3.0}, {"epoch": 0, "valid_s": 1.0, "valid_score": 0.1},
             {"epoch": 1, "train_s": 90.0, "loss": 2.0}, {"epoch": 1, "valid_s": 5.0, "valid_score": 0.3},
             {"epoch": 2, "train_s": 12.0, "loss": 1.0}, {"epoch": 2, "valid_s": 2.0, "valid_score": 0.3}]
    path = tmp_path / "epochs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert epoch_summary(read_epochs(path)) == {
        "epochs_trained": 3, "epochs_to_best": 3, "train_s_per_epoch": 12.0, "valid_s_per_epoch": 2.0}
    from recbole.utils import early_stopping  # RecBole's own rule: an equal score is a new best, its checkpoint kept
    assert early_stopping(0.3, 0.3, cur_step=4, max_step=10) == (0.3, 0, False, True)


def test_a_jobs_result_carries_its_valid_scores_and_training_losses_per_epoch(tmp_path):
    lines = [{"epoch": 0, "train_s": 10.0, "loss": 3.0}, {"epoch": 0, "valid_s": 1.0, "valid_score": 0.1},
             {"epoch": 1, "train_s": 11.0, "loss": 2.5},  # killed before its validation; resumed from epoch 0
             {"epoch": 1, "train_s": 12.0, "loss": 2.0}, {"epoch": 1, "valid_s": 1.0, "valid_score": 0.2}]
    (tmp_path / "epochs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (tmp_path / "result.json").write_text(json.dumps({"name": "SIGMA-s2020", "seed": 2020}))
    result = load_result(tmp_path)
    assert result["valid_curve"] == {0: 0.1, 1: 0.2} and result["loss_curve"] == {0: 3.0, 1: 2.0}  # the re-run wins
    assert result["seed"] == 2020 and result["epochs_trained"] == 2


def test_against_the_paper_gives_percentages_and_the_ndcg_ordering():
    paper = PAPER["amazon-beauty"]
    valid = {"hit@10": 0.0986, "ndcg@10": 0.0302, "mrr@10": 0.0244}
    results = {
        ("SIGMA", "default"): [{"test": {"hit@10": 0.0493, "ndcg@10": 0.0302, "mrr@10": 0.0244}, "best_valid": valid},
                               {"test": {"hit@10": 0.0493, "ndcg@10": 0.0302, "mrr@10": 0.0244}, "best_valid": valid}],
        ("SASRec", "default"): [{"test": {"hit@10": 0.0852, "ndcg@10": 0.0400, "mrr@10": 0.0392}}],
        ("Mamba4Rec", "default"): [],  # pending
    }
    lines = against_the_paper(results, paper)
    assert "| SIGMA | 100 % | 50 % | 50 % | 50 % | 50 % | 50 % |" in lines  # valid, then test
    assert "| SASRec | - | - | - | 100 % | 75 % | 100 % |" in lines
    assert not any("Mamba4Rec" in line for line in lines)
    assert "\nSIGMA (the paper's, the default) is behind SASRec on test NDCG@10 in this run " \
           "(0.0302 vs 0.0400, -24.5 %)." in lines
    # means equal as the sentence prints them are level, whatever float noise says
    level = {**results, ("SASRec", "default"): [{"test": {"hit@10": 0.0852, "ndcg@10": 0.03021, "mrr@10": 0.0392}}]}
    assert "\nSIGMA (the paper's, the default) is level with SASRec on test NDCG@10 in this run " \
           "(0.0302 vs 0.0302, -0.0 %)." in against_the_paper(level, paper)
    assert against_the_paper(results, {}) == []
    # the shipped preset gets its own line, under the name of its preset; other variants none; the
    # Welch p where both sides have two seeds
    results[("SIGMA", "nb_one_gate_softmax_mix")] = [{"test": {"hit@10": 0.0800, "ndcg@10": x, "mrr@10": 0.0350}}
                                                     for x in (0.0430, 0.0450)]
    results[("SIGMA", "no_gate")] = [{"test": {"hit@10": 0.0900, "ndcg@10": 0.0500, "mrr@10": 0.0400}}]
    results[("Mamba4Rec", "default")] = [{"test": {"hit@10": 0.0800, "ndcg@10": x, "mrr@10": 0.0350}}
                                         for x in (0.0420, 0.0430)]
    lines = against_the_paper(results, paper)
    verdicts = [line for line in lines if line.startswith("\nSIGMA")]
    p = fmt_p(welch_p([0.0430, 0.0450], [0.0420, 0.0430]))
    assert verdicts == [
        "\nSIGMA (the paper's, the default) is behind Mamba4Rec on test NDCG@10 in this run "
        "(0.0302 vs 0.0425, -28.9 %; one-sided Welch p 0.987 that it is ahead).",
        "\nSIGMA (the paper's, the default) is behind SASRec on test NDCG@10 in this run "
        "(0.0302 vs 0.0400, -24.5 %).",
        "\nSIGMA (nb_one_gate_softmax_mix, = sigma_variant: notebook) is ahead of Mamba4Rec on test NDCG@10 in "
        f"this run (0.0440 vs 0.0425, +3.5 %; one-sided Welch p {p} that it is ahead).",
        "\nSIGMA (nb_one_gate_softmax_mix, = sigma_variant: notebook) is ahead of SASRec on test NDCG@10 in "
        "this run (0.0440 vs 0.0400, +10.0 %)."]


def test_variants_against_default_compare_the_papers_validation_numbers_with_our_valid_column():
    paper = PAPER["amazon-beauty"]
    default = {"test": {"hit@10": 0.0493, "ndcg@10": 0.0302, "mrr@10": 0.0244},
               "best_valid": {"hit@10": 0.0986, "ndcg@10": 0.0400, "mrr@10": 0.0244}}
    results = {("SIGMA", "default"): [default], ("Mamba4Rec", "default"): []}
    assert variants_against_default(results, paper) == []  # no variants yet
    results[("SIGMA", "no_gru")] = [{"test": {"hit@10": 0.04, "ndcg@10": 0.0151, "mrr@10": 0.02},
                                     "best_valid": {"hit@10": 0.08, "ndcg@10": 0.0300, "mrr@10": 0.02}}]
    results[("SIGMA", "r0")] = [{"test": {"hit@10": 0.04, "ndcg@10": 0.0332, "mrr@10": 0.02}}]  # no valid recorded
    lines = variants_against_default(results, paper)
    assert lines[0] == "## Variants against their default"
    assert "| variant | test NDCG@10 vs default | valid NDCG@10 vs default | the same in the paper (valid) " \
           "| p ahead, test NDCG@10 | p ahead, valid NDCG@10 | every seed ahead, test / valid |" in lines
    # test -50 %, valid -25 %, beside the paper's (validation) -22.2 % = 0.0470 / 0.0604 - 1; one seed: no p,
    # and "every seed ahead" is not asked of one seed a side
    assert "| SIGMA (no_gru) | -50.0 % | -25.0 % | -22.2 % | - | - | - / - |" in lines
    assert "| SIGMA (r0) | +9.9 % | - | - | - | - | - / - |" in lines  # not in the paper's Table 4, no valid
    # a dataset without the paper's numbers (ml-100k, the user's own) still gets the table, its paper column empty
    assert "| SIGMA (no_gru) | -50.0 % | -25.0 % | - | - | - | - / - |" in variants_against_default(results, {})


def test_each_variant_gets_the_welch_p_of_being_ahead_of_its_models_default_on_test_and_valid():
    default, higher = [0.050, 0.052, 0.055], [0.056, 0.057, 0.059]
    results = {("SIGMA", "default"): _runs(default), ("SIGMA", "dropout04"): _runs(higher),
               ("EchoMamba4Rec", "default"): _runs([0.040]), ("EchoMamba4Rec", "dropout02"): _runs([0.044, 0.046]),
               ("Mamba4Rec", "dropout04"): _runs([0.044])}  # no default of its own: no row
    # valid is twice test in _runs: scale one seed's valid down so the valid p differs from the test p
    results[("SIGMA", "dropout04")][2]["best_valid"]["ndcg@10"] = 0.100
    p_test = welch_p(higher, default)
    p_valid = welch_p([0.112, 0.114, 0.100], [0.100, 0.104, 0.110])
    assert p_test < 0.05 < p_valid
    lines = variants_against_default(results, PAPER["amazon-beauty"])
    # every seed ahead on test (0.056 > 0.055); not on valid, where its 0.100 is below the default's 0.110;
    # its valid mean 0.1087 is 3.8 % above the default's 0.1047
    assert f"| SIGMA (dropout04) | +9.6 % | +3.8 % | - | {p_test:.3f} | {p_valid:.3f} | yes / no |" in lines
    # against ECHO's default, one seed there: no p, and no "every seed ahead" (both seeds are above its one)
    assert "| EchoMamba4Rec (dropout02) | +12.5 % | +12.5 % | - | - | - | - / - |" in lines
    assert not any(line.startswith("| Mamba4Rec (dropout04)") for line in lines)
    del results[("SIGMA", "default")]  # the variants of a model without SIGMA's default still get their rows
    assert "| EchoMamba4Rec (dropout02) | +12.5 % | +12.5 % | - | - | - | - / - |" \
        in variants_against_default(results, {})


def test_variants_can_be_set_against_another_variant_of_their_model_than_the_default():
    base, flip = [0.0285, 0.0287, 0.0283], [0.0288, 0.0290, 0.0284]
    results = {("SIGMA", "nb_one_gate_no_flip"): _runs(base), ("SIGMA", "nb_one_gate"): _runs(flip),
               ("SIGMA", "default"): _runs([0.020, 0.021])}
    lines = variants_against_default(results, PAPER["amazon-beauty"], against=["nb_one_gate_no_flip"])
    assert lines[0] == "## Variants against their `nb_one_gate_no_flip`"
    assert "| variant | test NDCG@10 vs `nb_one_gate_no_flip` | valid NDCG@10 vs `nb_one_gate_no_flip` |" in lines[4]
    p = welch_p(flip, base)
    rows = [line for line in lines if line.startswith("| SIGMA")]
    # mean 0.02873 against 0.02850 on both splits (_runs: valid = 2 x test); its 0.0284 is not above 0.0287
    assert rows[0] == (f"| SIGMA (nb_one_gate) | +0.8 % | +0.8 % | - | {p:.3f} "
                       f"| {p:.3f} | no / no |")
    # the paper's default is a variant here, and the paper has no row of the baseline: no paper column
    assert rows[1].startswith("| SIGMA | -28.1 % | -28.1 % | - |") and len(rows) == 2
    assert variants_against_default(results, {}, against=["cell66"]) == []  # no such row
    with pytest.raises(SystemExit):
        parse_args(["--models", "SIGMA", "--variants", "nb_one_gate", "--against", "nb_one_gate_no_flip"])
    assert parse_args(["--variants", "nb_one_gate", "nb_one_gate_no_flip", "--against", "nb_one_gate_no_flip"]
                      ).against == ["nb_one_gate_no_flip"]


def test_against_a_sigma_variant_other_models_keep_their_default_and_the_paper_keeps_its_sigma():
    """--against gru_cell_torch (the paper's SIGMA with the GRU its variants ran with): Mamba4Rec, which has no
    such variant, sets its variants against its default; the paper's column sets Table 4's rows against the
    paper's SIGMA, which has no row for the baseline."""
    results = {("SIGMA", "gru_cell_torch"): _runs([0.020]), ("SIGMA", "no_flip"): _runs([0.021]),
               ("SIGMA", "default"): _runs([0.022]), ("Mamba4Rec", "default"): _runs([0.040]),
               ("Mamba4Rec", "cell68"): _runs([0.036])}
    lines = variants_against_default(results, PAPER["amazon-beauty"], against=["gru_cell_torch"])
    assert lines[0] == "## Variants against their `gru_cell_torch`"
    paper = PAPER["amazon-beauty"]
    table4 = fmt_change(paper[("SIGMA", "no_flip")][1], paper[("SIGMA", "default")][1])
    assert table4 == "-3.0 %" and f"| SIGMA (no_flip, = r >= L) | +5.0 % | +5.0 % | {table4} |" in "\n".join(lines)
    assert "| SIGMA | +10.0 % | +10.0 % | - |" in "\n".join(lines)  # the default, with no paper row to set
    assert "| Mamba4Rec (cell68) | -10.0 % | -10.0 % | - |" in "\n".join(lines)  # against Mamba4Rec's default


def test_each_model_is_set_against_the_one_of_several_against_variants_that_applies_to_it(capsys):
    """--against gru_cell_torch item_flip (the main report's): SIGMA's variants against gru_cell_torch, ECHO's
    (dropout02 and its default) against item_flip, the structure dropout02 ran with, Mamba4Rec's against its
    default; the paired seeds pair each variant with its own model's."""
    def seeded(ndcgs):
        return [dict(run, seed=seed) for run, seed in zip(_runs(ndcgs), (2020, 2021))]

    results = {("SIGMA", "gru_cell_torch"): seeded([0.020, 0.021]), ("SIGMA", "default"): seeded([0.022, 0.022]),
               ("EchoMamba4Rec", "item_flip"): seeded([0.040, 0.042]),
               ("EchoMamba4Rec", "dropout02"): seeded([0.036, 0.0378]),
               ("EchoMamba4Rec", "default"): seeded([0.044, 0.042]),
               ("Mamba4Rec", "default"): seeded([0.040]), ("Mamba4Rec", "cell68"): seeded([0.036])}
    against = ["gru_cell_torch", "item_flip"]
    lines = variants_against_default(results, {}, against=against)
    assert lines[0] == "## Variants against their `gru_cell_torch` / `item_flip`"
    assert "(the one of them it has, its default for a model without one; " in lines[2]
    rows = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ") and "%" in line}
    assert rows["SIGMA"].startswith("| SIGMA | +7.3 % | +7.3 % |")  # 0.022 against 0.0205
    assert rows["EchoMamba4Rec (dropout02)"].startswith("| EchoMamba4Rec (dropout02) | -10.0 % |")  # vs 0.041
    assert rows["EchoMamba4Rec"].startswith("| EchoMamba4Rec | +4.9 % |")  # 0.043 against item_flip's 0.041
    assert rows["Mamba4Rec (cell68)"].startswith("| Mamba4Rec (cell68) | -10.0 % |")  # against its default
    assert set(rows) == {"SIGMA", "EchoMamba4Rec (dropout02)", "EchoMamba4Rec", "Mamba4Rec (cell68)"}
    paired = paired_seeds(results, against)
    assert paired[0] == "## Paired seeds against `gru_cell_torch` / `item_flip`"
    assert paired[2].startswith("A variant's baseline is the one of `gru_cell_torch` / `item_flip` that its model "
                                "has. A seed gives a variant and its baseline the same data order")
    assert [line for line in paired if line.startswith("**")] == [
        "**SIGMA** minus `gru_cell_torch`:", "**EchoMamba4Rec (dropout02)** minus `item_flip`:",
        "**EchoMamba4Rec** minus `item_flip`:"]  # Mamba4Rec is set against its default: no pairs asked for
    assert "| 2021 | -0.0084 | -0.0042 | - | - | - |" in paired  # dropout02's seed 2021 minus item_flip's
    args = parse_args(["--models", "SIGMA", "EchoMamba4Rec", "--variants", "gru_cell_torch", "item_flip",
                       "--against", "gru_cell_torch", "item_flip"])
    assert args.against == against
    for variants in (["gru_cell_torch", "dropout04"], ["default", "gru_cell_torch"]):  # two baselines for SIGMA
        with pytest.raises(SystemExit):
            parse_args(["--models", "SIGMA", "--variants", *variants, "--against", *variants])
        assert f"--against names 2 variants of SIGMA ({variants[0]}, {variants[1]}); name one a model" \
            in capsys.readouterr().err


def _runs(ndcgs, hit=0.08):
    return [{"test": {"hit@10": hit, "ndcg@10": x, "mrr@10": x / 2},
             "best_valid": {"hit@10": 2 * hit, "ndcg@10": 2 * x, "mrr@10": x}} for x in ndcgs]


def test_each_variant_is_listed_once_with_the_models_it_ran_and_its_overrides():
    keys = [("SIGMA", "default"), ("SIGMA", "dropout04"), ("EchoMamba4Rec", "dropout02"), ("SIGMA", "r0"),
            ("Mamba4Rec", "default")]
    assert variant_lines(keys) == [
        '- variant `dropout02` (EchoMamba4Rec): `{"dropout_prob": 0.2, "backward_flip": "valid_items", '
        '"glu_dropout": "branch", "mamba_pairs": "one", "bimamba_norm_eps": 1e-12}`',
        '- variant `dropout04` (SIGMA): `{"dropout_prob": 0.4, "gru_cell": "torch"}`',
        '- variant `r0` (SIGMA): `{"flip_remain": 0}`',
    ]


def test_the_versions_are_printed_once_a_set_with_the_commits_that_ran_on_them():
    """Jobs that differ only in their git commit share one line naming the commits in the order first
    started; a dirty run marks its commit, and another torch gets a line of its own."""
    packages = {"python": "3.11.7", "torch": "2.13.0+cpu", "recbole": "1.2.1", "numba": "0.68.1",
                "numpy": "2.4.6", "recbole_sigma": "0.1.0", "mamba_ssm": None, "causal_conv1d": None}

    def job(started, git, dirty=False, **changed):
        return {"started": started, "versions": {**packages, **changed, "git": git, "git_dirty": dirty}}

    done = [job("2026-12-03", "bbbbbbb"), job("2026-12-01", "aaaaaaa"), job("2026-12-02", "bbbbbbb", True),
            job("2026-12-04", "ccccccc", None), job("2026-12-05", "aaaaaaa", torch="2.13.0+cu126"),
            job("2026-12-06", None)]
    shared = ("python 3.11.7, torch {}, recbole 1.2.1, numba 0.68.1, numpy 2.4.6, recbole_sigma 0.1.0, "
              "mamba_ssm None, causal_conv1d None")
    assert version_lines(done) == [
        "- versions: " + shared.format("2.13.0+cpu") + "; git aaaaaaa, bbbbbbb (dirty), ccccccc (dirty unknown)",
        "- versions: " + shared.format("2.13.0+cu126") + "; git aaaaaaa",
    ]
    assert version_lines([job("2026-12-01", None)]) == ["- versions: " + shared.format("2.13.0+cpu")]


def test_welch_p_is_the_one_sided_welch_test():
    """Against the textbook formula: t = (ma - mb) / sqrt(va/na + vb/nb) with Welch-Satterthwaite
    degrees of freedom, p = P(T > t)."""
    from scipy import stats

    a, b = [0.050, 0.052, 0.055], [0.045, 0.049, 0.046, 0.044]
    ma, mb = sum(a) / 3, sum(b) / 4
    va, vb = (sum((x - ma) ** 2 for x in a) / 2) / 3, (sum((x - mb) ** 2 for x in b) / 3) / 4
    t = (ma - mb) / (va + vb) ** 0.5
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    assert welch_p(a, b) == pytest.approx(stats.t.sf(t, df), rel=1e-9)
    assert 0.005 < welch_p(a, b) < 0.05  # a is clearly higher
    assert welch_p(b, a) == pytest.approx(1 - welch_p(a, b), rel=1e-9)  # one-sided
    assert welch_p([1.0, 2.0], [1.0, 2.0]) == pytest.approx(0.5)
    assert welch_p([0.05], b) is None and welch_p(a, [0.04, None]) is None
    assert welch_p([0.05, 0.05], [0.05, 0.05]) is None  # no variance, no difference: undefined


def test_paired_p_is_the_one_sided_paired_t_test():
    """Against the textbook formula: d = a - b per pair, t = mean(d) / (sd(d) / sqrt(n)), p = P(T(n-1) > t)."""
    from scipy import stats

    b = [0.0560, 0.0575, 0.0568, 0.0582]  # seeds far apart, the variant a little higher on each
    a = [x + d for x, d in zip(b, (0.0004, 0.0006, 0.0003, 0.0005))]
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / 4
    sd = (sum((x - mean) ** 2 for x in d) / 3) ** 0.5
    assert paired_p(a, b) == pytest.approx(stats.t.sf(mean / (sd / 2), 3), rel=1e-9)
    assert paired_p(b, a) == pytest.approx(1 - paired_p(a, b), rel=1e-9)  # one-sided
    # the pairing is what it tests: the same samples, unpaired, are far from significant
    assert paired_p(a, b) < 0.01 and welch_p(a, b) > 0.2
    assert paired_p(a + [None], b + [0.05]) == paired_p(a, b)  # a pair with a missing side is left out
    assert paired_p([0.05], [0.04]) is None and paired_p([0.05, None], [0.04, 0.04]) is None  # one pair
    # the same difference on every pair: no spread, t infinite; the sign decides
    assert paired_p([0.05, 0.06], [0.04, 0.05]) == 0.0 and paired_p([0.04, 0.05], [0.05, 0.06]) == 1.0
    assert paired_p([0.05, 0.06], [0.05, 0.06]) is None  # no difference at all


def test_paired_seeds_sets_each_seed_of_a_variant_against_the_same_seed_of_its_baseline():
    def run(seed, valid, test, losses, parameters=100):
        return {"seed": seed, "parameters": parameters, "best_valid": {"ndcg@10": valid},
                "test": {"ndcg@10": test}, "loss_curve": dict(zip((0, 2, 12), losses))}

    base = [run(2020, 0.0570, 0.0430, (598.0, 534.0, 420.0)), run(2021, 0.0572, 0.0431, (597.0, 533.0, 419.0)),
            run(2022, 0.0569, 0.0429, (598.5, 534.5, 420.5))]
    variant = [run(2020, 0.0575, 0.0436, (596.0, 536.0, 421.0), 97),
               run(2021, 0.0571, 0.0437, (596.5, 535.0, 419.0), 97),
               run(2023, 0.0600, 0.0500, (1.0, 1.0, 1.0), 97)]  # no 2023 in the baseline: no pair
    results = {("SIGMA", "nb_one_gate"): base, ("SIGMA", "nb_one_gate_softmax_mix"): variant,
               ("SIGMA", "nb_one_gate_no_flip"): [base[0]]}  # one pair only: no table
    lines = paired_seeds(results, ["nb_one_gate"])
    assert lines[0] == "## Paired seeds against `nb_one_gate`"
    assert ("**SIGMA (nb_one_gate_softmax_mix, = sigma_variant: notebook)** minus `nb_one_gate` "
            "(parameters: 97 / 100):") in lines
    assert "| seed | valid NDCG@10 | test NDCG@10 | loss, epoch 0 | loss, epoch 2 | loss, epoch 12 |" in lines
    assert "| 2020 | +0.0005 | +0.0006 | -2.0 | +2.0 | +1.0 |" in lines
    assert "| 2021 | -0.0001 | +0.0006 | -0.5 | +2.0 | +0.0 |" in lines
    assert not any(line.startswith("| 2022") or line.startswith("| 2023") for line in lines)
    assert "| mean | +0.0002 | +0.0006 | -1.2 | +2.0 | +0.5 |" in lines
    assert "| higher on | 1 of 2 | 2 of 2 | 0 of 2 | 2 of 2 | 1 of 2 |" in lines
    p_valid = paired_p([0.0575, 0.0571], [0.0570, 0.0572])
    p_loss0 = paired_p([596.0, 596.5], [598.0, 597.0])
    # test and epoch 2 move up by the same amount on both seeds: no spread, t infinite, p 0
    assert f"| paired p, higher | {p_valid:.3f} | 0 (no spread) | {p_loss0:.3f} | 0 (no spread) | " \
           f"{fmt_p(paired_p([421.0, 419.0], [420.0, 419.0]))} |" in lines
    assert not any("nb_one_gate_no_flip" in line for line in lines)
    assert paired_seeds(results, ["default"]) == []  # no --against: no pairs asked for
    assert paired_seeds({("SIGMA", "nb_one_gate"): base}, ["nb_one_gate"]) == []  # nothing to set against it


def test_seeds_table_and_significance():
    paper = PAPER["amazon-beauty"]
    results = {
        ("SIGMA", "default"): _runs([0.050, 0.052, 0.055]),
        ("SIGMA", "public_code"): _runs([0.047]),
        ("Mamba4Rec", "default"): _runs([0.045, 0.049, 0.046, 0.044]),
        ("SASRec", "default"): _runs([0.043, 0.045]),
        ("GRU4Rec", "default"): _runs([0.03]),
        ("EchoMamba4Rec", "default"): [],
    }
    planned = dict.fromkeys(results, 3) | {("SIGMA", "public_code"): 1, ("GRU4Rec", "default"): 1}
    table = seeds_table(results, paper, planned)
    assert "paper HR / NDCG / MRR @10 (validation numbers)" in table[4]
    assert "| valid HR@10 | valid NDCG@10 | valid MRR@10 | test HR@10 | test NDCG@10 | test MRR@10 |" in table[4]
    assert ("| SIGMA | 3/3 | 0.1600 ± 0.0000 | 0.1047 ± 0.0050 | 0.0523 ± 0.0025 | 0.0800 ± 0.0000 | "
            "0.0523 ± 0.0025 | 0.0262 ± 0.0013 | 0.0986 / 0.0604 / 0.0488 |") in table
    assert "| SIGMA (public_code) | 1/1 | 0.1600 | 0.0940 | 0.0470 | 0.0800 | 0.0470 | 0.0235 | - |" in table
    assert any(line.startswith("| GRU4Rec | 1/1 |") for line in table)
    assert not any("EchoMamba4Rec" in line for line in table)
    results[("SASRec", "default")][0]["best_valid"]["ndcg@10"] = 0.110  # valid apart from test: SASRec's higher
    lines = significance(results)
    # the multi-seed baselines only, each on test and on best valid
    assert "| model | vs Mamba4Rec: test / valid | vs SASRec: test / valid |" in lines
    p = welch_p([0.050, 0.052, 0.055], [0.045, 0.049, 0.046, 0.044])
    q = welch_p([0.050, 0.052, 0.055], [0.043, 0.045])
    q_valid = welch_p([0.100, 0.104, 0.110], [0.110, 0.090])
    assert 0.005 < p < 0.05 and 0.001 < q < p and q_valid > 0.3  # valid's p is Welch-invariant to the 2x scale
    assert f"| SIGMA | {p:.3f} / {p:.3f} | {q:.3f} / {q_valid:.3f} |" in lines
    assert not any(line.startswith("| SIGMA (public_code)") for line in lines)  # one seed
    assert significance({("SIGMA", "default"): _runs([0.05, 0.06]), ("SASRec", "default"): _runs([0.04])}) == []
    assert seeds_table({("SIGMA", "default"): []}, paper, {("SIGMA", "default"): 3}) == []


def test_one_more_seed_is_the_t_prediction_interval_and_its_one_sided_tail():
    from scipy import stats

    from benchmarks.harness.stats import one_more_seed

    values = [0.0573, 0.0585, 0.0565, 0.0570, 0.0580]
    mean = sum(values) / 5
    scale = (sum((v - mean) ** 2 for v in values) / 4) ** 0.5 * (1 + 1 / 5) ** 0.5
    (low, high), p = one_more_seed(values, 0.0597)
    assert (low, high) == (pytest.approx(mean - 2.7764451 * scale), pytest.approx(mean + 2.7764451 * scale))  # t(4)
    assert p == pytest.approx(stats.t.sf((0.0597 - mean) / scale, 4), rel=1e-9) and 0.005 < p < 0.05
    assert one_more_seed(values, mean)[1] == pytest.approx(0.5)
    assert one_more_seed(values, low)[1] == pytest.approx(0.975)
    assert one_more_seed(values + [None], 0.0597) == one_more_seed(values, 0.0597)
    assert one_more_seed([0.05], 0.06) is None and one_more_seed([0.05, 0.05], 0.06) is None


def test_the_authors_runs_are_set_against_the_spread_of_rows_with_five_seeds_or_more_of_what_they_ran():
    from benchmarks.harness.report import quoted_among_seeds
    from benchmarks.harness.stats import one_more_seed

    many, few = [0.0286, 0.0292, 0.0282, 0.0290, 0.0288], [0.0270, 0.0275, 0.0280]
    results = {("SIGMA", "nb_one_gate"): _runs(many), ("Mamba4Rec", "default"): _runs(many),
               ("Mamba4Rec", "cell68"): _runs(few)}
    lines = quoted_among_seeds("amazon-beauty", results)
    rows = [line for line in lines if line.startswith("| SIGMA")]
    # the runs that ran nb_one_gate's model, as their printouts show: cells 66, 26 and 40, best valid and test
    assert [row.split(" | ")[1] for row in rows] == [label for label in (
        "SIGMA, authors' notebook, cell 66", "SIGMA, authors' notebook, cell 26 ('modulize SIGMA')",
        "SIGMA, authors' notebook, cell 40 (flip sweep, 'first 45')") for _ in range(2)]
    (low, high), p = one_more_seed([2 * x for x in many], 0.0597)  # _runs: best valid NDCG = 2 x
    assert ("| SIGMA (nb_one_gate) | SIGMA, authors' notebook, cell 66 | best valid "
            f"| 0.0597 | 0.0575 ± 0.0008 | {low:.4f} - {high:.4f} | {p:.3f} |") in rows
    (low, high), p = one_more_seed(many, 0.0452)
    assert f"| test | 0.0452 | 0.0288 ± 0.0004 | {low:.4f} - {high:.4f} | {p:.1e} |" in rows[1]
    # Mamba4Rec's default has five seeds, but cell 68 ran it at dropout 0.2 (cell68), which has three
    assert not any("Mamba4Rec" in line for line in lines)
    assert quoted_among_seeds("amazon-beauty", {("Mamba4Rec", "cell68"): _runs(few)}) == []
    assert "| Mamba4Rec (cell68) | Mamba4Rec, authors' notebook, cell 68 | best valid | 0.0540 |" in "\n".join(
        quoted_among_seeds("amazon-beauty", {("Mamba4Rec", "cell68"): _runs(many)}))
    # the notebook's forward is not shown: its runs are set against each reading of how it mixes its branches
    mixes = quoted_among_seeds("amazon-beauty", {("SIGMA", "nb_one_gate"): _runs(many),
                                                 ("SIGMA", "nb_one_gate_softmax_mix"): _runs(few + few[:2])})
    assert [line.split(" | ")[0] for line in mixes if "cell 66" in line] == \
        2 * ["| SIGMA (nb_one_gate)"] + 2 * ["| SIGMA (nb_one_gate_softmax_mix, = sigma_variant: notebook)"]
    assert sum("cell 40" in line for line in mixes) == 4  # a diagnostic run, quoted beside either
    no_flip = quoted_among_seeds("amazon-beauty", {("SIGMA", "nb_one_gate_no_flip"): _runs(many)})
    assert [line.split(" | ")[1] for line in no_flip if line.startswith("| SIGMA")] == 2 * [
        "SIGMA, authors' notebook, cell 62 ('without reverse')"]
    assert quoted_among_seeds("amazon-beauty", {("SIGMA", "default"): _runs(many)}) == []  # no run of the paper's
    assert quoted_among_seeds("amazon-beauty", {("SASRec", "default"): _runs(many)}) == []  # no quoted SASRec run
    assert quoted_among_seeds("ml-100k", results) == []


def test_the_authors_runs_of_the_reports_models_are_quoted_in_the_seeds_tables_columns():
    from benchmarks.harness.report import quoted_runs

    lines = quoted_runs("amazon-beauty", {("SIGMA", "default"), ("SIGMA", "public_code"), ("Mamba4Rec", "default"),
                                          ("SASRec", "default")})
    assert "the committed one is `sigma_variant: public_code` (`SIGMA (public_code)` above)." in lines[2]
    assert "cell26" not in lines[2]
    assert "| SIGMA, authors' notebook, cell 66 | 0.0986 | 0.0597 | 0.0478 | 0.0761 | 0.0452 | 0.0358 |" in lines
    assert ("| SIGMA, authors' notebook, cell 26 ('modulize SIGMA') | 0.0978 | 0.0600 | 0.0484 | 0.0725 | 0.0435 "
            "| 0.0347 |") in lines
    assert ("| SIGMA public code, a user's run (issue #1) | 0.0860 | 0.0504 | 0.0396 | 0.0652 | 0.0372 "
            "| 0.0287 |") in lines
    mamba = AUTHORS_CURVES["amazon-beauty"]["Mamba4Rec, authors' notebook, cell 68 (quoted)"].scores
    assert f"| Mamba4Rec, authors' notebook, cell 68 | 0.0880 | {max(mamba):.4f} |" in "\n".join(lines)  # curve's best
    assert not any("ECHO" in line or "FEARec" in line for line in lines)  # not models of this report
    assert not any("cell 40" in line or "cell 62" in line or "cell 64" in line for line in lines)  # diagnostic runs
    flips = quoted_runs("amazon-beauty", {("SIGMA", "nb_one_gate"), ("SIGMA", "nb_one_gate_no_flip")})
    assert [line.split(" | ")[0][2:] for line in flips if line.startswith("| SIGMA")] == [
        "SIGMA, authors' notebook, cell 66", "SIGMA, authors' notebook, cell 26 ('modulize SIGMA')",
        "SIGMA public code, a user's run (issue #1)", "SIGMA, authors' notebook, cell 40 (flip sweep, 'first 45')",
        "SIGMA, authors' notebook, cell 62 ('without reverse')"]
    assert ("| SIGMA, authors' notebook, cell 62 ('without reverse') | 0.0954 | 0.0571 | 0.0455 | 0.0709 | 0.0420 "
            "| 0.0333 |") in flips
    ablations = quoted_runs("amazon-beauty", {("SIGMA", "default"), ("SIGMA", "no_gru")})
    assert "the committed one is `sigma_variant: public_code`." in ablations[2]  # not in this report
    notebook = quoted_runs("amazon-beauty", {("SIGMA", "public_code"), ("SIGMA", "cell26")})
    assert "`SIGMA (cell26)` above put what that cell prints of its model into" in notebook[2]
    others = quoted_runs("amazon-beauty", {("BERT4Rec", "default"), ("FEARec", "default")})
    fearec = AUTHORS_CURVES["amazon-beauty"]["FEARec, authors' notebook, cell 70 (quoted)"].scores
    assert [line for line in others if line.startswith("| FEARec")] == [
        f"| FEARec, authors' notebook, cell 70 (dropout 0.3, batch 4096) | 0.1047 | {max(fearec):.4f} | 0.0370 "
        "| 0.0825 | 0.0418 | 0.0293 |"]
    assert "public user's run" not in "\n".join(others)
    assert quoted_runs("amazon-beauty", {("BERT4Rec", "default")}) == []
    assert quoted_runs("ml-100k", {("SIGMA", "default")}) == []
    for label, run in AUTHORS_RUNS["amazon-beauty"].items():  # each quoted run's best valid ends its quoted curve's
        curve = AUTHORS_CURVES["amazon-beauty"].get(label.split(" (")[0] + " (quoted)")
        assert curve is None or (curve.model == run.model and max(curve.scores) == run.valid[1]), label


def test_curves_plot_draws_the_authors_quoted_curves(tmp_path):
    references = AUTHORS_CURVES["amazon-beauty"]
    assert list(references) == ["SIGMA, authors' notebook, cell 66 (quoted)",
                                "SIGMA, authors' notebook, cell 26 (quoted)",
                                "Mamba4Rec, authors' notebook, cell 68 (quoted)",
                                "FEARec, authors' notebook, cell 70 (quoted)",
                                "SIGMA, authors' notebook, cell 40 (quoted)",
                                "SIGMA, authors' notebook, cell 62 (quoted)",
                                "SIGMA, authors' notebook, cell 64 (quoted)"]
    sigma, cell26, mamba, fearec, cell40, cell62, cell64 = (c.scores for c in references.values())
    # cell 26 trains as cell 40 (same initial weights): within 0.0002 at each of their 32 epochs
    assert len(cell40) == len(cell26) == 32 and max(abs(a - b) for a, b in zip(cell26, cell40)) == pytest.approx(0.0002)
    assert (len(cell62), max(cell62), len(cell64), max(cell64)) == (32, 0.0571, 32, 0.0592)
    assert len(sigma) == 31 and max(sigma) == 0.0597 and sigma[12] == 0.0562  # stopped after 31 epochs
    assert len(cell26) == 32 and max(cell26) == 0.0600 and cell26.index(0.0600) == 20  # best at epoch 20
    assert len(mamba) == 37 and max(mamba) == 0.0540  # the paper's Table 2 Mamba4Rec NDCG@10
    assert len(fearec) == 63 and max(fearec) == 0.0530  # the paper's Table 2 FEARec NDCG@10
    curves = {"SIGMA": [{0: 0.01, 1: 0.02, 2: 0.015}]}
    plain, with_refs = tmp_path / "plain.png", tmp_path / "refs.png"
    plot_curves(curves, plain)
    plot_curves(curves, with_refs, references={label: c.scores for label, c in references.items()})
    assert with_refs.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and with_refs.read_bytes() != plain.read_bytes()


def test_a_report_draws_and_names_the_quoted_curves_of_its_own_models_only(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from benchmarks.harness import report

    drawn = {}
    monkeypatch.setattr(report, "plot_curves",
                        lambda curves, png, title=None, references=None: drawn.update(references))
    args = SimpleNamespace(dataset="amazon-beauty", output=tmp_path / "others.md", overrides={"epochs": 60})
    results = {("BERT4Rec", "default"): [{"valid_curve": {0: 0.01, 1: 0.02}}], ("FEARec", "default"): []}
    text = "\n".join(report.curves_section(args, results))
    # how training stopped, from the settings the jobs ran with (--set epochs=60 here)
    assert "stops once 11 validations in a row have come in below it (stopping_step 10), or at `epochs` (60 here)." \
        in text
    assert list(drawn) == ["FEARec, authors' notebook, cell 70 (quoted)"]
    assert "FEARec, authors' notebook, cell 70 (quoted): dropout 0.3, batch 4096" in text and "cell 66" not in text
    drawn.clear()
    report.curves_section(args, {("SIGMA", "nb_one_gate_no_flip"): [{"valid_curve": {0: 0.01}}]})
    assert list(drawn) == ["SIGMA, authors' notebook, cell 66 (quoted)", "SIGMA, authors' notebook, cell 26 (quoted)",
                           "SIGMA, authors' notebook, cell 62 (quoted)"]  # a diagnostic run beside its variant only
    drawn.clear()
    text = "\n".join(report.curves_section(args, {("BERT4Rec", "default"): [{"valid_curve": {0: 0.01}}]}))
    assert drawn == {} and "Dashed" not in text


def test_curves_plot_gives_a_model_one_colour_and_one_legend_entry_over_its_seeds():
    from recbole_sigma.grouped_eval import new_figure

    from benchmarks.harness.plots import draw_curves

    fig, ax = new_figure()
    curves = {"SIGMA": [{0: 0.01, 1: 0.03, 2: 0.02}, {0: 0.02, 1: 0.01, 2: 0.02}], "SASRec": [{0: 0.04}]}
    draw_curves(ax, curves, {"authors (quoted)": (0.01, 0.02)})
    assert ax.get_legend_handles_labels()[1] == ["SIGMA", "SASRec", "authors (quoted)"]
    seed_lines = [line for line in ax.lines if len(line.get_xdata()) > 1 and line.get_linestyle() == "-"]
    assert [line.get_color() for line in seed_lines[:2]] == [seed_lines[0].get_color()] * 2
    dots = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines if line.get_marker() == "o"]
    assert dots == [(2, 0.03), (3, 0.02), (1, 0.04)]  # each seed's kept best epoch (the later of equals), 1-based


def test_curves_plot_gives_each_of_many_models_its_own_colour_and_keeps_the_legend_off_the_curves(tmp_path,
                                                                                                 monkeypatch):
    from recbole_sigma.grouped_eval import new_figure

    from benchmarks.harness import plots

    fig, ax = new_figure()
    curves = {f"SIGMA (v{i})": [{0: 0.01, 1: 0.02 + i / 1000}] for i in range(15)}
    plots.draw_curves(ax, curves)
    colours = [line.get_color() for line in ax.lines if line.get_marker() != "o"]
    assert len(colours) == 15 and len(set(colours)) == 15
    fig, ax = new_figure()  # past 20 (the notebook report has 21), the colours come round in another style
    plots.draw_curves(ax, {f"SIGMA (v{i})": [{0: 0.01, 1: 0.02}] for i in range(21)},
                      references={"cell 66 (quoted)": [0.01, 0.02]})
    looks = [(line.get_color(), line.get_linestyle()) for line in ax.lines if line.get_marker() != "o"]
    assert len(looks) == 22 and len(set(looks)) == 22 and looks[20][1] == "-." and looks[21][1] == "--"
    fig, ax = new_figure()  # past 3 references (the flip report has 4), the greys come round in other dashes
    plots.draw_curves(ax, {"SIGMA": [{0: 0.01}]}, references={f"cell {i} (quoted)": [0.01, 0.02] for i in range(4)})
    refs = [line for line in ax.lines if line.get_label().startswith("cell")]
    looks = [(line.get_color(), line._unscaled_dash_pattern) for line in refs]
    assert len(looks) == 4 and len(set(looks)) == 4 and {line.get_linestyle() for line in refs} == {"--"}
    assert looks[3][0] == looks[0][0]
    legends = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, ax, path, title=None: legends.append(ax.get_legend()))
    plots.plot_curves(curves, tmp_path / "many.png")
    plots.plot_curves(dict(list(curves.items())[:3]), tmp_path / "few.png")
    outside, inside = (legend.get_bbox_to_anchor().transformed(legend.axes.transAxes.inverted()) for legend in legends)
    assert outside.x0 > 1 and inside.x0 == 0  # beside the axes, or in their lower right corner


def test_the_walk_goes_from_the_public_codes_sigma_to_the_papers_one_change_a_step():
    from recbole_sigma.model.sigma import PUBLIC_CODE

    from benchmarks.harness.jobs import yaml_defaults

    paper = yaml_defaults("SIGMA", "amazon-beauty")
    notebook = ("gate_activations", "gate_dropout", "output_projection", "gate_dense_act", "gate_flip", "flip_back")
    head = {key: value for key, value in PUBLIC_CODE.items() if key not in ("mamba_init", *notebook)}
    assert paper["mamba_init"] == PUBLIC_CODE["mamba_init"]  # the init is the code's in both
    assert all(paper[key] == list(PUBLIC_CODE[key]) if key == "gate_activations" else paper[key] == PUBLIC_CODE[key]
               for key in notebook)  # the YAML keeps HEAD's values of the notebook's switches
    steps = [head] + [variant_overrides("SIGMA", f"walk{i}_{name}")
                      for i, name in enumerate(["flip", "two_mambas", "gate", "mix"], start=1)]
    for before, after in zip(steps, steps[1:]):
        changed = [key for key in head if after[key] != before[key]]
        assert len(changed) == 1 and after[changed[0]] == paper[changed[0]], changed
    # the walk ends at the paper's SIGMA with torch's GRU (gru_cell_torch; the default has Eq. 7's): the biases
    assert [key for key in head if steps[-1][key] != paper[key]] == ["gru_bias", "gru_cell"]
    assert [key for key in head if steps[-1][key] != {**paper, **variant_overrides("SIGMA", "gru_cell_torch")}[key]] \
        == ["gru_bias"]
    # every step at the dropout of the authors' runs, as public_code: the walk changes the model alone
    authors_dropout = variant_overrides("SIGMA", "public_code")["dropout_prob"]
    assert authors_dropout == 0.2 and {step["dropout_prob"] for step in steps[1:]} == {authors_dropout}
    assert variant_overrides("Mamba4Rec", "walk1_flip") is None


def test_the_notebook_variants_are_heads_sigma_with_what_cells_26_and_66_print():
    head = variant_overrides("SIGMA", "nb_no_projection")
    assert {k: v for k, v in head.items() if k != "output_projection"} == variant_overrides("SIGMA", "walk1_flip") | {
        "flip_mode": "fixed"}  # the public code's block, at the authors' dropout
    cell26 = {"gate_activations": ["sigmoid", "gelu"], "gate_dropout": 0.3, "output_projection": False}
    base = {k: v for k, v in head.items() if k != "output_projection"}
    for step, key in (("nb_no_projection", "output_projection"), ("nb_gate_activations", "gate_activations"),
                      ("nb_gate_dropout", "gate_dropout")):
        assert variant_overrides("SIGMA", step) == {**base, key: cell26[key]}, step
    assert variant_overrides("SIGMA", "cell26") == {**base, **cell26}
    assert variant_overrides("SIGMA", "cell66") == {**base, "gate_activations": ["sigmoid", "silu"], "gate_dropout": 0.3}
    assert variant_overrides("SIGMA", "cell26_ac") == {**base, **cell26, "gate_dense_act": "silu"}
    assert variant_overrides("SIGMA", "nb_no_gate") == {**base, "use_ds_gate": False, "output_projection": False}
    assert variant_overrides("SIGMA", "nb_one_gate") == {
        **base, "gate_flip": "shared", "gru_conv_kernel": 0, "output_projection": False,
        "gate_activations": ["sigmoid", "silu"], "gate_dropout": 0.3}
    assert variant_overrides("SIGMA", "nb_one_gate_softmax_mix") == {
        **variant_overrides("SIGMA", "nb_one_gate"), "mix_weights": "frozen_softmax"}
    assert variant_overrides("SIGMA", "nb_one_gate_no_gate") == {
        **variant_overrides("SIGMA", "nb_one_gate"), "use_ds_gate": False}
    assert variant_overrides("SIGMA", "nb_one_gate_no_flip") == {
        **variant_overrides("SIGMA", "nb_one_gate"), "use_partial_flip": False}
    assert variant_overrides("SIGMA", "nb_one_gate_length_aware_flip") == {
        **variant_overrides("SIGMA", "nb_one_gate"), "flip_mode": "length_aware"}
    assert variant_overrides("SIGMA", "nb_one_gate_flip_back") == {
        **variant_overrides("SIGMA", "nb_one_gate"), "flip_back": True}
    assert variant_overrides("SIGMA", "cell26_no_conv") == {**base, **cell26, "gru_conv_kernel": 0}
    # on the paper's SIGMA, with the GRU it ran with (torch's; gru_cell_torch)
    torch_gru = {"gru_cell": "torch"}
    assert variant_overrides("SIGMA", "no_projection") == {"output_projection": False, **torch_gru}
    assert variant_overrides("SIGMA", "no_projection_dropout04") == {"output_projection": False, "dropout_prob": 0.4,
                                                                     **torch_gru}
    assert variant_overrides("SIGMA", "no_projection_no_gru_conv") == {"output_projection": False, "gru_conv_kernel": 0,
                                                                       **torch_gru}
    assert variant_overrides("SIGMA", "no_projection_no_gru_conv_dropout04") == {
        "output_projection": False, "gru_conv_kernel": 0, "dropout_prob": 0.4, **torch_gru}
    assert variant_overrides("Mamba4Rec", "cell26") is None
    assert variant_overrides("Mamba4Rec", "cell68") == {"dropout_prob": 0.2}
    assert variant_overrides("SIGMA", "cell68") is None


def test_the_beauty_plan_carries_the_records_trains_what_its_reports_show_and_then_reports(tmp_path):
    """benchmarks/beauty_plan.sh with a stand-in Python that records each harness call."""
    fake, calls = tmp_path / "python", tmp_path / "calls.txt"
    fake.write_text('#!/bin/sh\necho "$@" >> "$CALLS"\n')
    fake.chmod(0o755)
    records, runs = tmp_path / "records", tmp_path / "runs"
    (records / "SIGMA-s2020").mkdir(parents=True)
    (records / "SIGMA-s2020" / "result.json").write_text("{}")
    env = dict(os.environ, PYTHON=str(fake), CALLS=str(calls), RECORDS=str(records), RUNS=str(runs))
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "beauty_plan.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (runs / "SIGMA-s2020" / "result.json").read_text() == "{}"  # finished elsewhere: carried in first
    argvs = [line.split()[1:] for line in calls.read_text().splitlines()]
    assert all(line.split()[0] == "benchmarks/reproduce.py" for line in calls.read_text().splitlines())
    training = [a for a in argvs if "--report-only" not in a]
    reports = argvs[len(training):]
    assert len(reports) == 9 and all("--report-only" in a and a[a.index("--runs-dir") + 1] == str(records)
                                     for a in reports)
    assert all(a[a.index("--records") + 1] == str(records) and a[a.index("--runs-dir") + 1] == str(runs)
               for a in training)

    def job_names(argv):
        return {job["name"] for job in plan_jobs(parse_args(argv))}

    trained = [job_names(a) for a in training]
    assert trained[0] == {"SIGMA-public_code-s2020"}
    reported = set().union(*map(job_names, reports))
    assert set().union(*trained) == reported  # nothing trained goes unreported, nothing unplanned is pending
    main = job_names(reports[0])
    for model in ("SIGMA", "SIGMA-gru_cell_torch", "SIGMA-public_code", "SIGMA-dropout04", "SIGMA-no_projection",
                  "SIGMA-nb_one_gate", "SIGMA-no_projection_no_gru_conv", "Mamba4Rec", "SASRec"):  # three seeds each
        assert {f"{model}-s{seed}" for seed in (2020, 2021, 2022)} <= set().union(*trained) & main
    assert job_names(reports[1]) <= set().union(*trained)  # the walk, both ends included
    # Table 4's ablations, set against the model they ablate: the paper's SIGMA with the GRU they ran (torch's)
    assert {f"SIGMA-{v}-s2020" for v in ("gru_cell_torch", "no_flip", "no_gate", "no_gru")} | {"SIGMA-s2020"} \
        == job_names(reports[3])
    # every SIGMA variant ran with torch's GRU: the reports that hold the default set them against gru_cell_torch
    assert all(reports[i][reports[i].index("--against") + 1] == "gru_cell_torch" for i in (0, 1, 3, 4, 8))
    # ECHO's variants ran with the structure its default had before (item_flip): the reports that hold ECHO set
    # its rows against that
    assert all(reports[i][reports[i].index("--against") + 2] == "item_flip" for i in (0, 8))
    notebook = ("public_code", "cell26", "cell66", "nb_no_projection", "nb_gate_activations", "nb_gate_dropout",
                "nb_no_gate", "nb_one_gate", "cell26_no_conv", "no_projection", "no_projection_dropout04",
                "no_projection_no_gru_conv", "no_projection_no_gru_conv_dropout04", "nb_one_gate_softmax_mix",
                "nb_one_gate_no_gate", "nb_one_gate_no_flip", "nb_one_gate_length_aware_flip", "nb_one_gate_flip_back")
    # the notebook's, from HEAD's
    assert {f"SIGMA-{v}-s2020" for v in notebook} | {"SIGMA-gru_cell_torch-s2020", "SIGMA-s2020", "Mamba4Rec-s2020",
                                                     "Mamba4Rec-cell68-s2020"} == job_names(reports[4])
    assert job_names(reports[5]) == {f"SIGMA-nb_one_gate-s{seed}" for seed in range(2020, 2027)}  # the preset's spread
    assert job_names(reports[6]) == {f"SIGMA-nb_one_gate{v}-s{seed}" for v in ("", "_no_flip", "_softmax_mix")
                                     for seed in range(2020, 2025)}  # the flip, over five paired seeds
    assert reports[6][reports[6].index("--against") + 1] == "nb_one_gate_no_flip"
    assert job_names(reports[7]) == {f"SIGMA-nb_one_gate{v}-s{seed}" for v in ("", "_softmax_mix")
                                     for seed in range(2020, 2027)}  # the mix, over nb_one_gate's seven seeds
    assert reports[7][reports[7].index("--against") + 1] == "nb_one_gate"
    assert job_names(reports[8]) == {f"{model}-s{seed}" for model in ("SIGMA", "SIGMA-gru_cell_torch",
                                                                      "SIGMA-nb_one_gate_softmax_mix",
                                                                      "Mamba4Rec", "EchoMamba4Rec",
                                                                      "EchoMamba4Rec-item_flip", "SASRec")
                                     for seed in range(2020, 2025)}  # the paper's protocol: five seeds
    assert [t for t in trained if "SIGMA-dropout04-s2020" in t] == [{"SIGMA-dropout04-s2020"}]
    echo = {f"EchoMamba4Rec{v}-s{seed}" for v in ("", "-dropout02", "-item_flip") for seed in (2020, 2021, 2022)}
    # ECHO at both dropouts (default 'auto': 0.4 here) and with its structure before its code's: three seeds each
    assert echo <= set().union(*trained) & main
    assert {"GRU4Rec-s2020"} <= main and not {"GRU4Rec-s2021", "GRU4Rec-s2022"} & main  # GRU4Rec: one seed
    calls.unlink()
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "beauty_plan.sh"), "report"], env=env, timeout=60)
    assert [line.split()[1:] for line in calls.read_text().splitlines()] == reports


def test_each_committed_record_is_its_jobs_name_and_ran_with_its_variants_settings():
    records = sorted(p for p in (ROOT / "docs" / "results" / "runs").glob("*/*") if p.is_dir())
    assert len(records) > 20
    renamed = {}
    for record in records:
        job, result = (json.loads((record / f).read_text()) for f in ("job.json", "result.json"))
        assert job["name"] == result["name"] == record.name == job_name(job["model"], job["variant"], job["seed"])
        assert (result["model"], result["variant"], result["seed"]) == (job["model"], job["variant"], job["seed"])
        # a record renamed when a default moved onto its settings says what it ran as, in both files
        assert job.get("renamed_from") == result.get("renamed_from")
        renamed[record.name] = job.get("renamed_from", {}).get("name")
        # a key the YAML gained after the job ran held the value that computes what the job computed
        ran_with = stored_settings(job["model"], job)
        for key, value in (variant_overrides(job["model"], job["variant"]) or {}).items():
            assert ran_with.get(key) == value, (record.name, key)
    assert renamed["EchoMamba4Rec-item_flip-s2020"] == "EchoMamba4Rec-dropout04-s2020"  # 0.4, ECHO's default ('auto')
    assert renamed["EchoMamba4Rec-dropout02-s2020"] == "EchoMamba4Rec-s2020"  # 0.2, its default when it ran
    assert renamed["EchoMamba4Rec-s2020"] == "EchoMamba4Rec-code_structure-s2020"  # its authors' code's structure
    assert renamed["SIGMA-s2020"] == "SIGMA-gru_cell_paper-s2020"  # Eq. 7's GRU, SIGMA's default now
    assert renamed["SIGMA-gru_cell_torch-s2020"] == "SIGMA-s2020"  # torch's, its default when it ran


def test_todays_defaults_take_every_committed_beauty_record_as_finished():
    """A default that moves under a finished job (ECHO's dropout did) must not stop the Beauty plan
    from running again: each record is the job today's harness plans under its name, same settings."""
    data = ROOT.parent / "shared" / "datasets"
    if not (data / "amazon-beauty").is_dir():
        pytest.skip("Amazon Beauty is not beside the checkout (../shared/datasets)")
    records = ROOT / "docs" / "results" / "runs" / "amazon-beauty"
    for record in sorted(p for p in records.iterdir() if p.is_dir()):
        stored = json.loads((record / "job.json").read_text())
        argv = ["--dataset", "amazon-beauty", "--data_path", str(data), "--runs-dir", str(records),
                "--models", stored["model"], "--variants", stored["variant"], "--seeds", str(stored["seed"])]
        if "epochs" in stored["config"]:  # the one key the plan passes with --set (BERT4Rec's and FEARec's cap)
            argv += ["--set", f"epochs={stored['config']['epochs']}"]
        [job] = plan_jobs(parse_args(argv))
        assert job["name"] == record.name and job_state(job) == "done"
        assert config_mismatch(job) == [], record.name


def test_variants_map_to_sigma_overrides_and_other_models_run_their_default(tmp_path):
    args = parse_args(["--dataset", "ml-100k", "--models", "SIGMA", "Mamba4Rec", "--seeds", "1", "2",
                                 "--variants", "default", "no_flip", "no_gate", "no_gru", "r0", "r50",
                                 "--runs-dir", str(tmp_path), "--set", "epochs=3",
                                 "--set", "train_neg_sample_args=None"])
    jobs = plan_jobs(args)
    assert [j["name"] for j in jobs[:7]] == ["SIGMA-s1", "SIGMA-no_flip-s1", "SIGMA-no_gate-s1", "SIGMA-no_gru-s1",
                                             "SIGMA-r0-s1", "SIGMA-r50-s1", "Mamba4Rec-s1"]
    assert len(jobs) == 14 and jobs[7]["name"] == "SIGMA-s2"
    config = {j["name"]: j["config"] for j in jobs}
    assert config["SIGMA-no_flip-s1"]["use_partial_flip"] is False
    assert config["SIGMA-no_gate-s1"]["use_ds_gate"] is False
    assert config["SIGMA-no_gru-s1"]["use_fe_gru"] is False
    assert variant_overrides("SIGMA", "dropout04") == {"dropout_prob": 0.4, "gru_cell": "torch"}
    assert variant_overrides("Mamba4Rec", "dropout04") is None  # its default is the paper's per-domain rule
    assert variant_overrides("EchoMamba4Rec", "dropout04") is None  # its default 'auto' gives 0.4 on Amazon
    # its authors' code's dropout, with the structure its default had when it ran (item_flip)
    assert variant_overrides("EchoMamba4Rec", "dropout02") == {"dropout_prob": 0.2, **VARIANTS["item_flip"][1]}
    assert variant_overrides("EchoMamba4Rec", "item_flip") == {"backward_flip": "valid_items", "glu_dropout": "branch",
                                                              "mamba_pairs": "one", "bimamba_norm_eps": 1e-12}
    assert variant_overrides("SIGMA", "public_code") == {"sigma_variant": "public_code", "dropout_prob": 0.2,
                                                         "gru_cell": "torch"}  # the GRU its runs were matched with
    # every SIGMA variant keeps the GRU it ran with; the default takes Eq. 7's, gru_cell_torch is torch's
    assert all(overrides["gru_cell"] == "torch" for models, overrides in VARIANTS.values()
               if models and "SIGMA" in models)
    assert variant_overrides("SIGMA", "default") == {}
    assert variant_overrides("SIGMA", "gru_cell_torch") == {"gru_cell": "torch"}
    assert variant_overrides("SIGMA", "public_gate_mix")["mix_weights"] == "frozen_softmax"
    assert config["SIGMA-r0-s1"]["flip_remain"] == 0 and config["SIGMA-r50-s1"]["flip_remain"] == 50
    assert "use_partial_flip" not in config["SIGMA-s1"] and config["SIGMA-s2"]["seed"] == 2
    for cfg in config.values():
        assert cfg["valid_metric"] == "NDCG@10" and cfg["stopping_step"] == 10 and cfg["epochs"] == 3
        assert cfg["eval_args"] == LOO and cfg["train_neg_sample_args"] is None
        assert Path(cfg["checkpoint_dir"]).parent.parent == tmp_path
    once = plan_jobs(parse_args(["--models", "SIGMA", "GRU4Rec", "--seeds", "7", "8", "--one-seed", "GRU4Rec",
                                 "--runs-dir", str(tmp_path)]))
    assert [j["name"] for j in once] == ["SIGMA-s7", "GRU4Rec-s7", "SIGMA-s8"]  # the first seed only
    with pytest.raises(SystemExit, match="--one-seed names SASRec, not among --models"):
        plan_jobs(parse_args(["--models", "SIGMA", "--one-seed", "SASRec"]))
    builtin = plan_jobs(parse_args(["--models", "SASRec", "--runs-dir", str(tmp_path)]))[0]
    assert builtin["config"]["loss_type"] == "CE" and builtin["config"]["hidden_size"] == 64
    with pytest.raises(SystemExit, match="unknown variant"):
        plan_jobs(parse_args(["--models", "SIGMA", "--variants", "nope"]))
    with pytest.raises(SystemExit, match="Pop is not a sequential recommender"):
        plan_jobs(parse_args(["--models", "SIGMA", "Pop"]))
    with pytest.raises(SystemExit, match="unknown model 'Nope'"):
        plan_jobs(parse_args(["--models", "Nope"]))


def test_a_started_job_is_compared_on_its_effective_settings_yaml_defaults_included(tmp_path):
    args = parse_args(["--dataset", "amazon-beauty", "--models", "SIGMA", "Mamba4Rec",
                                 "--variants", "default", "dropout04", "--runs-dir", str(tmp_path)])
    jobs = {j["name"]: j for j in plan_jobs(args)}
    sigma, dropout04, mamba = jobs["SIGMA-s2020"], jobs["SIGMA-dropout04-s2020"], jobs["Mamba4Rec-s2020"]
    assert sigma["yaml_defaults"]["flip_remain"] == 5 and sigma["yaml_defaults"]["MAX_ITEM_LIST_LENGTH"] == 50
    assert mamba["yaml_defaults"]["dropout_prob"] == "auto"  # the per-domain rule, 0.4 on Beauty

    def store(job, **changes):
        spec = {"config": job["config"], "yaml_defaults": {**job["yaml_defaults"], **changes}}
        job["dir"].mkdir(parents=True, exist_ok=True)
        (job["dir"] / "job.json").write_text(json.dumps(spec))

    store(sigma)
    assert config_mismatch(sigma) == []
    store(sigma, d_state=16)  # the job ran when the YAML said d_state 16
    assert config_mismatch(sigma) == ["d_state"]
    # a setting given now that the stored job did not have is a difference, whatever its value
    assert sigma["yaml_defaults"]["sigma_variant"] == "paper"
    (sigma["dir"] / "job.json").write_text(json.dumps({"config": sigma["config"], "yaml_defaults": {
        k: v for k, v in sigma["yaml_defaults"].items() if k != "sigma_variant"}}))
    assert config_mismatch(sigma) == ["sigma_variant"]
    store(sigma)
    assert config_mismatch(dict(sigma, config={**sigma["config"], "sigma_variant": "public_code"})) == [
        "sigma_variant"]
    # a key the YAML gained later (KEYS_ADDED): a job without it ran at the value that computes the same
    without = {k: v for k, v in sigma["yaml_defaults"].items()
               if k not in ("gate_activations", "gate_dropout", "output_projection", "gate_dense_act", "gate_flip",
                            "flip_back")}
    (sigma["dir"] / "job.json").write_text(json.dumps({"config": sigma["config"], "yaml_defaults": without}))
    assert sigma["yaml_defaults"]["output_projection"] is True
    assert config_mismatch(sigma) == []
    assert config_mismatch(dict(sigma, config={**sigma["config"], "output_projection": False})) == [
        "output_projection"]
    # a variant override and a YAML default with the same value are the same setting
    store(dropout04)
    dropout04_under_new_yaml = dict(dropout04, config=sigma["config"],
                                    yaml_defaults={**sigma["yaml_defaults"], "dropout_prob": 0.4, "gru_cell": "torch"})
    assert config_mismatch(dropout04_under_new_yaml) == []
    assert config_mismatch(dict(dropout04, config=sigma["config"])) == ["dropout_prob", "gru_cell"]
    # the default's runs with torch's GRU (the YAML's gru_cell then) are gru_cell_torch's now, not the default's
    store(sigma, gru_cell="torch")
    assert sigma["yaml_defaults"]["gru_cell"] == "paper" and config_mismatch(sigma) == ["gru_cell"]
    torch_gru = plan_jobs(parse_args(["--dataset", "amazon-beauty", "--models", "SIGMA", "--variants", "gru_cell_torch",
                                      "--runs-dir", str(tmp_path)]))[0]
    assert config_mismatch(dict(torch_gru, dir=sigma["dir"])) == []
    # where the job lives is not a setting
    store(mamba)
    moved = dict(mamba, config={**mamba["config"], "data_path": "/elsewhere", "checkpoint_dir": "/elsewhere/c"})
    assert config_mismatch(moved) == []
    assert config_mismatch(dict(mamba, config={**mamba["config"], "seed": 1})) == ["seed"]
    # a job of the same name on another dataset is another job (it would be skipped as finished)
    (mamba["dir"] / "job.json").write_text(json.dumps({"dataset": "ml-100k", "config": mamba["config"],
                                                        "yaml_defaults": mamba["yaml_defaults"]}))
    assert config_mismatch(mamba) == ["dataset"]


@pytest.mark.parametrize("argv, error", [
    (["--seeds", "2020", "2021", "2020"], "--seeds names 2020 more than once"),
    (["--models", "SIGMA", "SASRec", "SIGMA"], "--models names SIGMA more than once"),
    (["--variants", "default", "no_gru", "no_gru"], "--variants names no_gru more than once"),
    (["--set", "checkpoint_dir=/scratch"], "--set checkpoint_dir: each job keeps its checkpoints in"),
    (["--set", "epochs=2", "checkpoint_name=x"], "--set checkpoint_name: jobs name their checkpoints"),
    (["--set", "data_path=data"], "--set data_path: use --data_path"),
    (["--seeds", "2020", "2021", "--set", "seed=1"], "--set seed: use --seeds"),
    (["--rerun", "--report-only"], "--rerun redoes jobs and --report-only runs none; drop one"),
])
def test_the_harness_refuses_a_job_twice_and_a_set_that_moves_every_jobs_files_to_one_place(argv, error, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2 and error in capsys.readouterr().err


def test_a_rerun_leaves_each_jobs_old_result_out_of_the_report_until_the_job_is_redone(tmp_path, monkeypatch):
    """A report written during --rerun (after each job, or on SIGTERM) holds no row that averages the old
    settings' results with the new ones: a job's old result.json counts as pending until the job has run."""
    from benchmarks.harness import cli, report, results, runner

    written = []
    monkeypatch.setattr(cli, "preflight", lambda jobs, args: None)
    monkeypatch.setattr(cli, "refuse_changed_jobs", lambda jobs, rerun: None)
    monkeypatch.setattr(report, "write_report",
                        lambda args, command, jobs, stale=(): written.append(results.load_results(jobs, stale)[1]) or "")
    monkeypatch.setattr(results, "load_result", lambda job_dir: {"name": job_dir.name})

    def run_jobs(jobs, command, rerun, after_job):  # the first job is redone, then SIGTERM
        after_job(jobs[0])
        return [], 15

    monkeypatch.setattr(runner, "run_jobs", run_jobs)
    argv = ["--models", "Mamba4Rec", "--dataset", "ml-100k", "--seeds", "2020", "2021",
            "--runs-dir", str(tmp_path / "runs"), "--output", str(tmp_path / "report.md")]
    for name in ("Mamba4Rec-s2020", "Mamba4Rec-s2021"):  # both finished with the old settings
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "result.json").write_text("{}")
    assert cli.main(argv + ["--rerun"]) == 128 + 15
    assert written == [["Mamba4Rec-s2021"], ["Mamba4Rec-s2021"]]  # after the first job, and on the signal
    written.clear()
    assert cli.main(argv) == 128 + 15  # without --rerun every result.json counts
    assert written == [[], []]


def test_the_default_report_name_of_many_variants_stays_a_legal_file_name():
    many = parse_args(["--models", "SIGMA", "--variants", *[v for v in VARIANTS if v != "default"]])
    few = parse_args(["--models", "SIGMA", "--variants", "default", "no_gru"])
    assert len(many.output.name) < 150 and few.output.name == "amazon-beauty-variants-default-no_gru.md"
    assert many.output != parse_args(["--models", "SIGMA", "--variants", *list(VARIANTS)[1:-1]]).output


@pytest.mark.parametrize("argv, error", [
    (["--set", "train_batch_size=0"], "error: Mamba4Rec-s2020: train_batch_size=0 is invalid"),
    (["--dataset", "no-such-data"], "error: Mamba4Rec-s2020: dataset 'no-such-data' not found at data_path"),
])
def test_a_setting_no_job_can_run_with_stops_the_harness_in_one_line_before_any_job(tmp_path, argv, error):
    from benchmarks.harness.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--models", "Mamba4Rec", "--dataset", "ml-100k", "--runs-dir", str(tmp_path / "runs"),
              "--output", str(tmp_path / "report.md"), *argv])
    assert str(exit_.value).startswith(error) and "\n" not in str(exit_.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("job.json"))


def test_a_job_whose_yaml_defaults_changed_after_planning_is_not_started(tmp_path, monkeypatch, capsys):
    from benchmarks.harness import runner

    job = {"name": "SIGMA-s2020", "model": "SIGMA", "dir": tmp_path, "yaml_defaults": {"dropout_prob": 0.2}}
    monkeypatch.setattr(runner, "yaml_defaults", lambda *args: {"dropout_prob": 0.4})
    monkeypatch.setattr(runner, "run_job", lambda *args: pytest.fail("the child was started"))
    assert runner.attempt(job, {"dataset": "amazon-beauty", "config_files": []}, rerun=False) == 2
    assert "YAML defaults changed since this harness planned its jobs (dropout_prob)" in capsys.readouterr().out


def test_a_rerun_clears_the_old_runs_attempts_log_and_heartbeat_too(tmp_path):
    from benchmarks.harness.runner import clear_for_rerun

    (tmp_path / "checkpoints").mkdir()
    for name in ("result.json", "epochs.jsonl", "attempts.jsonl", "attempt.json", "train.log", "job.json",
                 "checkpoints/M-best.pth"):
        (tmp_path / name).write_text("old")
    clear_for_rerun(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["job.json"]


def test_dropout_auto_matches_the_number_the_model_resolves_it_to_on_the_jobs_data(tmp_path, monkeypatch):
    """ml-100k is dense (over 50 training interactions a user): Mamba4Rec's 'auto' is 0.2 there."""
    # this process's flags are not the job's settings (RecBole's Config would read this one: no users left)
    monkeypatch.setattr(sys, "argv", [sys.argv[0], "--user_inter_num_interval=[100000,inf)"])
    args = parse_args(["--dataset", "ml-100k", "--models", "Mamba4Rec", "--runs-dir", str(tmp_path)])
    (auto,) = plan_jobs(args)
    assert auto["yaml_defaults"]["dropout_prob"] == "auto"
    explicit = {p: dict(auto, config={**auto["config"], "dropout_prob": p}) for p in (0.2, 0.4)}
    auto["dir"].mkdir(parents=True)

    def store(job):
        spec = {"config": job["config"], "yaml_defaults": job["yaml_defaults"]}
        (job["dir"] / "job.json").write_text(json.dumps(spec))

    store(explicit[0.2])  # a job run with 0.2 given; the YAML now says 'auto', which gives 0.2 here
    assert config_mismatch(auto) == []
    store(explicit[0.4])
    assert config_mismatch(auto) == ["dropout_prob"]
    store(auto)  # and the other way round: a job run under 'auto', now given a number
    assert config_mismatch(explicit[0.2]) == []
    assert config_mismatch(explicit[0.4]) == ["dropout_prob"]


def test_dropout_auto_against_a_number_without_the_data_is_a_one_line_error(tmp_path):
    args = parse_args(["--dataset", "no-such-data", "--data_path", str(tmp_path), "--models", "Mamba4Rec",
                       "--runs-dir", str(tmp_path / "runs")])
    (auto,) = plan_jobs(args)
    auto["dir"].mkdir(parents=True)
    (auto["dir"] / "job.json").write_text(json.dumps({"config": {**auto["config"], "dropout_prob": 0.4},
                                                      "yaml_defaults": auto["yaml_defaults"]}))
    with pytest.raises(SystemExit, match="error: Mamba4Rec-s2020: comparing its dropout_prob 0.4 with 'auto' "
                                         "needs its data: dataset 'no-such-data' not found at data_path"):
        config_mismatch(auto)


# ------------------------------------------------------------------------------------ end to end
def run_harness(*extra, runs, output):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    command = [sys.executable, str(SCRIPT), "--dataset", "ml-100k", "--seeds", "2020", "--set", *TINY_SET,
               "--runs-dir", str(runs), "--output", str(output), *extra]
    start = time.time()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    return proc, time.time() - start


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """One tiny run of the harness: Mamba4Rec and SASRec, 1 epoch each on ml-100k."""
    base = tmp_path_factory.mktemp("reproduce")
    runs, output = base / "runs", base / "results" / "ml-100k.md"
    proc, wall = run_harness("--models", "Mamba4Rec", "SASRec", runs=runs, output=output)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"runs": runs, "output": output, "proc": proc, "wall": wall, "base": base}


def result_of(harness, job):
    return json.loads((harness["runs"] / job / "result.json").read_text())


def test_harness_writes_the_table_the_grouped_table_and_the_figure(harness):
    text = harness["output"].read_text()
    assert text in harness["proc"].stdout  # printed too
    assert "python benchmarks/reproduce.py --dataset ml-100k" in text and "torch 2." in text and "cores" in text
    assert ("- model classes: Mamba4Rec `recbole_sigma.model.mamba4rec`, SASRec `recbole_sigma.model.sasrec`; "
            "`recbole_sigma.model.sasrec` is RecBole's SASRec with a length-bucketed forward") in text
    table = text.split("## Test metrics")[1].split("##")[0]
    for model in ("Mamba4Rec", "SASRec"):
        assert f"| {model} | 1/1 | " in table
        row = next(line for line in table.splitlines() if line.startswith(f"| {model} |"))
        result = result_of(harness, f"{model}-s2020")
        assert f"{result['test']['hit@10']:.4f}" in row and f"{result['test']['ndcg@10']:.4f}" in row
        assert result["epochs_trained"] == 1 and result["epochs_to_best"] == 1
        assert result["train_s_per_epoch"] > 0 and result["eval_ms_per_batch"] > 0 and result["peak_rss_mb"] > 50
        assert result["versions"]["torch"] and result["versions"]["recbole"] == "1.2.1"
        assert result["config"]["MAX_ITEM_LIST_LENGTH"] == 10 and result["config"]["hidden_size"] == 16
        # the grouped metrics, weighted by group size, are the overall metric, which is RecBole's (rounded)
        grouped = result["grouped"]
        for metric in ("hit@10", "ndcg@10", "mrr@10"):
            weighted = sum(g["users"] * (g[metric] or 0) for g in grouped["groups"].values())
            assert weighted / grouped["overall"]["users"] == pytest.approx(grouped["overall"][metric], abs=1e-12)
            assert grouped["overall"][metric] == pytest.approx(result["test"][metric], abs=5.1e-5)
        assert sum(g["users"] for g in grouped["groups"].values()) == grouped["overall"]["users"] == 943
        assert (harness["runs"] / f"{model}-s2020" / "train.log").stat().st_size > 0
    grouped_table = text.split("## Users grouped by history length")[1]
    assert "medium, 6-20 (56 users)" in grouped_table and "| Mamba4Rec | " in grouped_table
    png = harness["output"].with_name("ml-100k-groups.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "ml-100k-groups.png" in text
    curves = harness["output"].with_name("ml-100k-curves.png")
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "## Training curves" in text


def test_second_invocation_skips_the_finished_jobs(harness):
    before = {job: (harness["runs"] / job / "result.json").stat().st_mtime_ns for job in ("Mamba4Rec-s2020",
                                                                                         "SASRec-s2020")}
    harness["output"].with_name("ml-100k.reading.md").write_text("Both models ran for one epoch only.\n")
    proc, wall = run_harness("--models", "Mamba4Rec", "SASRec", runs=harness["runs"], output=harness["output"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("finished earlier, skipped") == 2
    assert "## Reading\n\nWritten by hand, from `ml-100k.reading.md`.\n\nBoth models ran for one epoch only.\n" in (
        harness["output"].read_text())
    for job, mtime in before.items():
        assert (harness["runs"] / job / "result.json").stat().st_mtime_ns == mtime
        assert len((harness["runs"] / job / "attempts.jsonl").read_text().splitlines()) == 1
    assert wall < harness["wall"] / 2


def test_the_records_alone_rebuild_the_report(harness, tmp_path):
    """--records keeps what the rows are built from; a report from those files alone has the same tables."""
    from benchmarks.harness.results import RECORD_FILES

    records, output = tmp_path / "records", tmp_path / "ml-100k.md"
    proc, _ = run_harness("--models", "Mamba4Rec", "SASRec", "--report-only", "--records", str(records),
                          runs=harness["runs"], output=harness["output"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in records.iterdir()) == ["Mamba4Rec-s2020", "SASRec-s2020"]
    assert sorted(p.name for p in (records / "SASRec-s2020").iterdir()) == sorted(RECORD_FILES)  # no checkpoints
    proc, _ = run_harness("--models", "Mamba4Rec", "SASRec", "--report-only", runs=records, output=output)
    assert proc.returncode == 0, proc.stderr[-3000:]
    original, rebuilt = harness["output"].read_text(), output.read_text()

    def section(text, head):
        return text.split(head)[1].split("\n## ")[0]

    for head in ("## Test metrics", "## Users grouped by history length", "## Jobs"):
        assert section(rebuilt, head) == section(original, head), head
    assert "- the jobs were trained by: `python benchmarks/reproduce.py --dataset ml-100k --seeds 2020" in rebuilt
    assert "pending" not in section(rebuilt, "## Jobs")


def test_changed_settings_for_a_finished_job_are_refused(harness):
    proc, _ = run_harness("--models", "Mamba4Rec", "--set", "hidden_size=8", runs=harness["runs"],
                          output=harness["base"] / "other.md")
    assert proc.returncode != 0 and "Mamba4Rec-s2020 finished with a different config (hidden_size)" in proc.stderr


def test_unfinished_job_resumes_from_its_checkpoint_without_retraining(harness):
    job = harness["runs"] / "Mamba4Rec-s2020"
    first = result_of(harness, "Mamba4Rec-s2020")
    (job / "result.json").unlink()  # as if the child died after training, before writing its result
    # ... with the harness itself, whose last heartbeat came 40 s after that attempt started
    with open(job / "train.log", "a") as log:
        log.write("\n===== 2026-01-01T00:00:00+00:00 attempt: python reproduce.py --child ...\n")
    (job / "attempt.json").write_text(json.dumps({"started": 1000.0, "alive": 1040.0}))
    epoch_lines = (job / "epochs.jsonl").read_text()  # read_epochs merges a re-run epoch: count the raw lines
    proc, _ = run_harness("--models", "Mamba4Rec", "--dry-run", runs=harness["runs"], output=harness["output"])
    assert "Mamba4Rec-s2020" in proc.stdout and "resume" in proc.stdout
    proc, _ = run_harness("--models", "Mamba4Rec", "SASRec", runs=harness["runs"], output=harness["output"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Mamba4Rec-s2020: resuming" in proc.stdout and "SASRec-s2020: finished earlier, skipped" in proc.stdout
    again = result_of(harness, "Mamba4Rec-s2020")
    assert again["resumed"] is True and again["epochs_trained"] == 1
    assert (job / "epochs.jsonl").read_text() == epoch_lines  # the epoch was not trained again
    assert "epoch 0 training [" not in (job / "train.log").read_text().rsplit("attempt: ", 1)[1]
    assert again["test"] == first["test"] and again["grouped"]["overall"] == first["grouped"]["overall"]
    attempts = [json.loads(line) for line in (job / "attempts.jsonl").read_text().splitlines()]
    assert [a["rc"] for a in attempts] == [0, "lost", 0] and attempts[1]["wall_s"] == 40.0
    assert not (job / "attempt.json").exists()
    wall = next(line for line in harness["output"].read_text().splitlines() if line.startswith("| Mamba4Rec-s2020 |"))
    assert f"| {sum(a['wall_s'] for a in attempts) / 60:.1f} |" in wall and "unrecorded" not in wall


def test_a_renamed_record_is_reported_under_its_name_with_the_name_it_ran_as(harness, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(harness["runs"] / "SASRec-s2020", runs / "SASRec-s2020")
    result = json.loads((runs / "SASRec-s2020" / "result.json").read_text())
    result["renamed_from"] = {"name": "SASRec-old-s2020", "variant": "old", "why": "a default moved"}
    (runs / "SASRec-s2020" / "result.json").write_text(json.dumps(result))
    proc, _ = run_harness("--models", "SASRec", "--report-only", runs=runs, output=tmp_path / "r.md")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in (tmp_path / "r.md").read_text().splitlines() if line.startswith("| SASRec-s2020")]
    assert len(rows) == 1 and rows[0].startswith("| SASRec-s2020 (ran as SASRec-old-s2020) | 2020 |")


def test_an_attempt_without_a_record_or_heartbeat_is_reported_as_unrecorded(harness, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(harness["runs"] / "SASRec-s2020", runs / "SASRec-s2020")
    with open(runs / "SASRec-s2020" / "train.log", "a") as log:  # killed before the harness kept a heartbeat
        log.write("\n===== 2026-01-01T00:00:00+00:00 attempt: python reproduce.py --child ...\n")
    proc, _ = run_harness("--models", "SASRec", "--report-only", runs=runs, output=tmp_path / "r.md")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "r.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| SASRec-s2020 |"))
    assert "(+1 unrecorded)" in row and "Unrecorded: 1 attempt(s)" in text


def test_the_heartbeat_of_a_running_attempt_records_it_when_its_harness_dies(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    started = time.time()
    assert wait_with_heartbeat(proc, tmp_path / "attempt.json", started, every=0.05) == 0
    beat = json.loads((tmp_path / "attempt.json").read_text())  # as a killed harness would leave it
    assert beat["started"] == started and 0.3 < beat["alive"] - started < 5
    record_lost_attempt(tmp_path)
    record_lost_attempt(tmp_path)  # nothing left to record the second time
    attempts = [json.loads(line) for line in (tmp_path / "attempts.jsonl").read_text().splitlines()]
    assert len(attempts) == 1 and attempts[0]["rc"] == "lost"
    assert attempts[0]["wall_s"] == pytest.approx(beat["alive"] - started)
    assert not (tmp_path / "attempt.tmp").exists()  # written aside, then renamed over it


def test_a_job_with_a_best_checkpoint_alone_starts_over_and_says_so(tmp_path, monkeypatch):
    """run(resume=True) resumes from the last checkpoint only; a kill between the best and the last save leaves
    the best alone: the job trains from epoch 0, so it is not 'resumed' and the killed epochs go."""
    from benchmarks.harness import child

    calls = []
    monkeypatch.setattr(child, "train", lambda *args: calls.append(args[3]) or {
        "test_result": {"hit@10": 0.1}, "best_valid_result": {"hit@10": 0.2}})
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    spec = {"model": "M", "dataset": "d", "config": {"checkpoint_dir": str(checkpoints)}, "config_files": []}
    (checkpoints / "M-d-best.pth").write_bytes(b"")
    (tmp_path / "epochs.jsonl").write_text('{"epoch": 0}\n')
    assert child.run_spec(spec, tmp_path, time.time())[1]["resumed"] is False and calls == [False]
    assert not (tmp_path / "epochs.jsonl").exists()
    (checkpoints / "M-d-last.pth").write_bytes(b"")
    assert child.run_spec(spec, tmp_path, time.time())[1]["resumed"] is True and calls[-1] is True


def test_a_job_finished_by_another_harness_after_loading_stays_pending_in_the_jobs_table(tmp_path):
    from benchmarks.harness.report import jobs_table

    job = {"name": "M-s2020", "seed": 2020, "key": ("M", "default"), "dir": tmp_path}
    (tmp_path / "job.json").write_text("{}")
    (tmp_path / "result.json").write_text("{}")  # written after load_results read the folder
    row = next(line for line in jobs_table([job], {("M", "default"): []}) if line.startswith("| M-s2020 |"))
    assert row.endswith("pending (done) |")
    row = next(line for line in jobs_table([job], {("M", "default"): []}, stale={"M-s2020"}) if "M-s2020" in line)
    assert row.endswith("pending (to rerun) |")  # its old result, left out until --rerun redoes it


def test_an_attempt_only_train_log_knows_of_is_still_counted_in_the_committed_records(tmp_path):
    """A child killed before its first heartbeat leaves only its train.log marker, and the records copy no
    train.log: the copy keeps the count."""
    from benchmarks.harness.results import load_result, save_records
    from benchmarks.harness.runner import ATTEMPT_MARK

    job_dir = tmp_path / "runs" / "M-s2020"
    job_dir.mkdir(parents=True)
    (job_dir / "result.json").write_text("{}")
    (job_dir / "attempts.jsonl").write_text('{"wall_s": 60.0, "rc": 0}\n')
    (job_dir / "train.log").write_text("".join(f"===== t{i} {ATTEMPT_MARK} run\n" for i in range(3)))
    assert load_result(job_dir)["unrecorded_attempts"] == 2
    job = {"name": "M-s2020", "dir": job_dir}
    save_records([job], tmp_path / "records")
    save_records([job], tmp_path / "records")  # after every job: the same copy, not more lines
    copy = load_result(tmp_path / "records" / "M-s2020")
    assert copy["unrecorded_attempts"] == 2 and copy["total_wall_s"] == 60.0


def test_a_heartbeat_or_attempt_line_torn_by_a_kill_is_an_unrecorded_attempt_not_a_crash(tmp_path):
    from benchmarks.harness.results import load_result

    (tmp_path / "attempt.json").write_text('{"started": 1.0, "ali')
    record_lost_attempt(tmp_path)  # nothing to record from it; it goes
    assert not (tmp_path / "attempt.json").exists() and not (tmp_path / "attempts.jsonl").exists()
    (tmp_path / "result.json").write_text("{}")
    (tmp_path / "attempts.jsonl").write_text('{"wall_s": 60.0, "rc": 0}\n{"started": "2026-')
    (tmp_path / "train.log").write_text("===== t1 attempt: run\n===== t2 attempt: run\n")
    result = load_result(tmp_path)
    assert result["total_wall_s"] == 60.0 and result["unrecorded_attempts"] == 1


def test_grouped_eval_cli_on_a_checkpoint_equals_recbole_s_own_evaluation(harness, tmp_path):
    from recbole.utils import get_trainer

    checkpoint = result_of(harness, "SASRec-s2020")["checkpoint"]
    png, out = tmp_path / "groups.png", tmp_path / "groups.json"
    assert grouped_eval.main([checkpoint, "--plot", str(png), "--json", str(out)]) == 0
    report = json.loads(out.read_text())["SASRec"]
    assert png.read_bytes()[:4] == b"\x89PNG"

    config, model, _, train_data, valid_data, test_data = recbole_sigma.load_data_and_model(checkpoint)
    config["metric_decimal_place"] = 12  # RecBole's own evaluation, unrounded
    recbole = get_trainer(config["MODEL_TYPE"], config["model"])(config, model).evaluate(
        test_data, load_best_model=False, show_progress=False)
    for metric in ("hit@10", "ndcg@10", "mrr@10"):
        assert report["overall"][metric] == pytest.approx(float(recbole[metric]), abs=1e-11)
        weighted = sum(g["users"] * (g[metric] or 0) for g in report["groups"].values()) / report["overall"]["users"]
        assert weighted == pytest.approx(float(recbole[metric]), abs=1e-11)


def test_grouped_eval_gives_each_checkpoint_its_own_label(tmp_path, capsys):
    """Rows are keyed by label: two runs' SIGMA-amazon-beauty-best.pth must not share one."""
    sigma, mamba = {"model": "SIGMA"}, {"model": "Mamba4Rec"}
    assert grouped_eval._labels([(sigma, "a/SIGMA-x-best.pth"), (mamba, "a/M.pth")]) == ["SIGMA", "Mamba4Rec"]
    assert grouped_eval._labels([(sigma, "a/S1.pth"), (sigma, "a/S2.pth")]) == ["SIGMA (S1)", "SIGMA (S2)"]
    assert grouped_eval._labels([(sigma, "r1/SIGMA-best.pth"), (sigma, "r2/SIGMA-best.pth"), (mamba, "r1/M.pth")]) \
        == ["SIGMA (r1/SIGMA-best.pth)", "SIGMA (r2/SIGMA-best.pth)", "Mamba4Rec"]
    assert grouped_eval._labels([(sigma, "S.pth"), (sigma, "S.pth")]) == ["SIGMA (S.pth) #1", "SIGMA (S.pth) #2"]
    checkpoint = tmp_path / "c.pth"
    checkpoint.write_bytes(b"")
    with pytest.raises(SystemExit):
        grouped_eval.main([str(checkpoint), str(checkpoint), "--labels", "x", "x"])
    assert "--labels names a checkpoint's label twice" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--metric", "ndcg@5"], "--metric 'ndcg@5': expected one of hit@10, ndcg@10, mrr@10"),
    (["--bounds", "20", "5"], "--bounds 20 5: expected two integers 0 <= SHORT < MEDIUM"),
])
def test_grouped_eval_refuses_a_metric_it_does_not_compute_and_bad_bounds(tmp_path, capsys, args, message):
    checkpoint = tmp_path / "c.pth"
    checkpoint.write_bytes(b"")
    with pytest.raises(SystemExit):
        grouped_eval.main([str(checkpoint), *args])
    assert message in capsys.readouterr().err


def test_grouped_eval_of_a_file_that_is_no_checkpoint_is_one_line(tmp_path, capsys):
    checkpoint = tmp_path / "c.pth"
    checkpoint.write_bytes(b"not a checkpoint")
    assert grouped_eval.main([str(checkpoint), "--metric", "HR@10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {checkpoint}: ") and len(err.strip().splitlines()) == 1
