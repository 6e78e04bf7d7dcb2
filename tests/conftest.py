"""Shared fixtures: models built from their YAML defaults on a fake dataset (no RecBole data)."""
import socket
from pathlib import Path

import pytest
import torch
import yaml

import recbole_sigma
from recbole_sigma.config import config_files
from recbole_sigma.gpu_check import DictConfig, FakeDataset  # noqa: F401 (the tests' fakes too)

# Small enough for CI: ml-100k's ~97k training sequences cut to length 10, a narrow model.
TINY = {
    "epochs": 1,
    "MAX_ITEM_LIST_LENGTH": 10,
    "hidden_size": 16,
    "d_state": 8,
    "show_progress": False,
    "train_batch_size": 4096,
}
# RecBole's SASRec at the same scale, trained with CE like our models.
TINY_SASREC = {"n_layers": 1, "n_heads": 1, "inner_size": 32, "train_neg_sample_args": None, "loss_type": "CE"}


def free_port(host="localhost"):
    """A TCP port nothing listens on now (the OS's pick); another program may take it before use."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def model_config(name, **overrides):
    config = DictConfig(
        USER_ID_FIELD="user_id",
        ITEM_ID_FIELD="item_id",
        LIST_SUFFIX="_list",
        ITEM_LIST_LENGTH_FIELD="item_length",
        NEG_PREFIX="neg_",
        MAX_ITEM_LIST_LENGTH=12,
        device=torch.device("cpu"),
    )
    for path in config_files(name, "none"):
        config.update(yaml.safe_load(open(path)))
    config.update(hidden_size=16, d_state=4)
    config.update(overrides)
    return config


@pytest.fixture
def make_model():
    def make(name, n_items=30, seed=0, **overrides):
        torch.manual_seed(seed)
        return recbole_sigma.MODELS[name](model_config(name, **overrides), FakeDataset(n_items))

    return make


def padded_batch(lengths, max_len=12, n_items=30, seed=0):
    """Item ids (B, L) left-aligned with zero padding, and the lengths (B,)."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.zeros(len(lengths), max_len, dtype=torch.long)
    for row, n in enumerate(lengths):
        seq[row, :n] = torch.randint(1, n_items, (n,), generator=g)
    return seq, torch.tensor(lengths)


def assert_same_weights(a, b):
    """Two state dicts: the same names, each tensor equal."""
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights differ: {different}"


# A tiny generated dataset for runs that must only get through one epoch (tests of bad inputs).
TINY_DATA_KEYS = {
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "user_inter_num_interval": "[0,inf)",
    "item_inter_num_interval": "[0,inf)",
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
}


def write_atomic_dataset(folder, name="tiny", users=8, items=12, per_user=5, seed=0, header=None):
    """``folder/name/name.inter`` with ``users`` x ``per_user`` interactions; returns its path."""
    import random

    rng = random.Random(seed)
    path = Path(folder) / name / f"{name}.inter"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header or "user_id:token\titem_id:token\ttimestamp:float"]
    time = 0
    for user in range(users):
        for _ in range(per_user):
            time += 1
            lines.append(f"u{user}\ti{rng.randrange(items)}\t{time}")
    path.write_text("\n".join(lines) + "\n")
    return path
