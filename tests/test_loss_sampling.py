"""build_config gives every sequential model the training negatives its effective loss_type needs."""
import pytest

from recbole_sigma.errors import ConfigError
from recbole_sigma.cli import main
from recbole_sigma.config import build_config

NONE = "none"
SAMPLED = {"distribution": "uniform", "sample_num": 1}


def negatives(config):
    args = config["train_neg_sample_args"]
    return NONE if args["distribution"] == "none" else {k: args[k] for k in SAMPLED}


@pytest.mark.parametrize("model", ["SASRec", "GRU4Rec", "BERT4Rec", "FEARec", "SIGMA", "Mamba4Rec", "EchoMamba4Rec"])
def test_a_ce_model_from_its_yaml_defaults_trains_without_negatives(model):
    config = build_config(model, "ml-100k")
    assert config["loss_type"] == "CE" and negatives(config) == NONE


def test_bpr_gets_recboles_default_sampling_for_recboles_models_and_ours():
    assert negatives(build_config("GRU4Rec", "ml-100k", config_dict={"loss_type": "BPR"})) == SAMPLED
    # SIGMA.yaml's `train_neg_sample_args: ~` is a default for CE, not the user's choice
    assert negatives(build_config("SIGMA", "ml-100k", config_dict={"loss_type": "BPR"})) == SAMPLED


def test_the_users_explicit_setting_wins(tmp_path):
    popular = {"distribution": "popularity", "sample_num": 2}
    config = build_config("GRU4Rec", "ml-100k", config_dict={"loss_type": "BPR", "train_neg_sample_args": popular})
    assert negatives(config) == {"distribution": "popularity", "sample_num": 2}
    path = tmp_path / "bpr.yaml"
    path.write_text("loss_type: BPR\ntrain_neg_sample_args:\n  distribution: popularity\n  sample_num: 3\n")
    assert negatives(build_config("SASRec", "ml-100k", config_file_list=[str(path)]))["sample_num"] == 3


def test_impossible_combinations_are_one_line_config_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="^loss_type='CE' scores every item and takes no sampled negatives: remove"):
        build_config("SASRec", "ml-100k", config_dict={"train_neg_sample_args": SAMPLED})
    path = tmp_path / "bpr.yaml"
    path.write_text("loss_type: BPR\ntrain_neg_sample_args: ~\n")
    with pytest.raises(ConfigError, match="^loss_type='BPR' needs a sampled negative per positive"):
        build_config("GRU4Rec", "ml-100k", config_file_list=[str(path)])
    assert main(["--model=GRU4Rec", "--dataset=ml-100k", "--train_neg_sample_args={'distribution': 'uniform'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: loss_type='CE' scores every item") and "Traceback" not in "".join(err)


def test_general_models_keep_recboles_own_handling():
    assert negatives(build_config("BPR", "ml-100k")) == SAMPLED
