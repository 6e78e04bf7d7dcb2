"""Length buckets: a batch run as trimmed groups gives the padded batch's outputs and gradients."""
from pathlib import Path

import pytest
import torch

from recbole_sigma.model.base import length_buckets
from tests.conftest import padded_batch

LENGTHS = [1, 2, 3, 4, 5, 7, 8, 9, 12, 12, 6, 1, 10]  # max_len 12: every group, full rows too


def test_groups_are_powers_of_two_and_keep_the_lookahead():
    lengths = torch.tensor([1, 2, 3, 4, 5, 8, 9, 16, 17, 50, 3])
    groups = [(index.tolist(), width) for index, width in length_buckets(lengths, 50, 2)]
    assert groups == [
        ([0], 3),  # 1 + 2
        ([1], 4),
        ([2, 3, 10], 6),
        ([4, 5], 10),
        ([6, 7], 18),
        ([8], 19),
        ([9], 50),  # never wider than the batch
    ]


def outputs_and_grads(model, seq, lengths, buckets):
    if buckets is not None:
        model.length_buckets = buckets
    model.zero_grad()
    out = model(seq, lengths)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_outputs_and_grads(got, expected):
    (out, grads), (expected_out, expected_grads) = got, expected
    torch.testing.assert_close(out, expected_out, rtol=1e-10, atol=1e-12)
    assert grads.keys() == expected_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], expected_grads[name], rtol=1e-9, atol=1e-12)


CASES = [
    ("Mamba4Rec", {}),
    ("Mamba4Rec", {"num_layers": 2}),
    ("SIGMA", {}),
    ("SIGMA", {"num_layers": 2, "gate_conv_kernel": 5, "gru_conv_kernel": 4}),
    ("SIGMA", {"gate_mode": "public_code", "share_mamba": True, "mix_weights": "public_code"}),
    ("SIGMA", {"use_ds_gate": False, "use_fe_gru": False, "flip_remain": 0}),
    # the public code's fixed flip (first L - r = 7 positions): short rows' flipped prefixes are padding
    ("SIGMA", {"sigma_variant": "public_code"}),
    ("SIGMA", {"sigma_variant": "notebook"}),
    ("SIGMA", {"flip_mode": "fixed", "flip_remain": 2}),
    ("SIGMA", {"gru_cell": "torch"}),
    # ECHO with each user's items reversed for its backward Mamba (its default until 7 December 2026, item_flip)
    ("EchoMamba4Rec", {"backward_flip": "valid_items"}),
    ("EchoMamba4Rec", {"backward_flip": "valid_items", "num_layers": 2}),
    ("EchoMamba4Rec", {"backward_flip": "valid_items", "glu_dropout": "branch", "mamba_pairs": "one",
                       "bimamba_norm_eps": 1e-12}),
    ("EchoMamba4Rec", {"backward_flip": "valid_items", "num_layers": 2, "mamba_pairs": "one"}),
]


@pytest.mark.parametrize("name,overrides", CASES)
def test_bucketed_forward_and_backward_equal_the_padded_ones(make_model, name, overrides):
    model = make_model(name, **overrides).double().eval()  # eval: no dropout, so both runs see the same net
    assert model.lookahead() is not None
    seq, lengths = padded_batch(LENGTHS)
    assert_same_outputs_and_grads(
        outputs_and_grads(model, seq, lengths, buckets=True), outputs_and_grads(model, seq, lengths, buckets=False)
    )


ECHO_PADDED_FLIP = [
    {},  # the default: every structural switch at the authors' code's value
    {"num_layers": 2},  # two pairs nested in each of the two layers, as that code
    {"num_layers": 2, "mamba_pairs": "one"},
    {"glu_dropout": "branch", "bimamba_norm_eps": 1e-12},
]


@pytest.mark.parametrize("overrides", ECHO_PADDED_FLIP)
def test_echo_padded_flip_buckets_each_scan_and_equals_the_padded_batch(make_model, overrides, monkeypatch):
    """ECHO's 'padded' backward flip reads the padded tail, so the stack has no look-ahead; its last
    pair computes the last valid item's output alone, each direction's scan in its own length buckets:
    the same outputs and gradients as the padded batch, on fewer positions."""
    model = make_model("EchoMamba4Rec", **overrides).double().eval()
    assert model.lookahead() is None
    seq, lengths = padded_batch(LENGTHS)
    padded = outputs_and_grads(model, seq, lengths, buckets=False)
    pair = [model.layers[-1].bimamba, *model.layers[-1].nested][-1]
    widths = {"fwd": [], "bwd": []}
    for direction in widths:
        mamba = getattr(pair, f"mamba_{direction}")
        monkeypatch.setattr(mamba, "forward", lambda x, f=mamba.forward, d=direction: widths[d].append(x.shape) or f(x))
    assert_same_outputs_and_grads(outputs_and_grads(model, seq, lengths, buckets=True), padded)
    # rows by length: the forward scan reads each row's n items (groups 1, 2, 3-4, 5-8, 9-16), the backward
    # one its 13 - n positions from the end down to its last item (groups by 13 - n): 194 positions, not 312
    assert widths["fwd"] == [(2, 1, 16), (1, 2, 16), (2, 4, 16), (4, 8, 16), (4, 12, 16)]
    assert widths["bwd"] == [(2, 1, 16), (2, 4, 16), (4, 8, 16), (5, 12, 16)]


@pytest.mark.parametrize("name,overrides", CASES)
def test_forward_is_the_plain_layer_stack(make_model, name, overrides):
    """Splitting the stack (stack_padded, stack) and bucketing change nothing: forward equals the
    layers applied one after another to the whole padded batch."""
    model = make_model(name, **overrides).double().eval()
    seq, lengths = padded_batch(LENGTHS)
    h = model.LayerNorm(model.item_embedding(seq))
    for layer in model.layers:
        h = layer(h, lengths)
    torch.testing.assert_close(model(seq, lengths), model.gather_indexes(h, lengths - 1), rtol=1e-10, atol=1e-12)


def test_sigma_lookahead_adds_up_over_layers(make_model):
    assert make_model("SIGMA", gate_conv_kernel=3, gru_conv_kernel=4).lookahead() == 2
    assert make_model("SIGMA", num_layers=3, gate_conv_kernel=3, gru_conv_kernel=4).lookahead() == 6
    assert make_model("Mamba4Rec", num_layers=3).lookahead() == 0


def test_a_short_lookahead_would_change_the_outputs(make_model):
    """The look-ahead is needed: trimming SIGMA's rows to their exact length changes the output."""
    model = make_model("SIGMA", length_buckets=False).double().eval()
    seq, lengths = padded_batch([5, 9])
    full = model(seq, lengths)
    trimmed = model(seq[:, :9], lengths)  # the 9-item row loses its padding
    torch.testing.assert_close(trimmed[0], full[0])
    assert not torch.allclose(trimmed[1], full[1])


@pytest.mark.parametrize(
    "name,overrides", [("SIGMA", {"flip_mode": "fixed", "num_layers": 2}), ("Mamba4Rec", {"length_buckets": False}),
                       ("EchoMamba4Rec", {"backward_flip": "padded", "length_buckets": False})]
)
def test_without_a_lookahead_or_with_buckets_off_the_stack_runs_padded(make_model, name, overrides, monkeypatch):
    model = make_model(name, **overrides).eval()
    calls = []
    original = model.stack
    monkeypatch.setattr(model, "stack", lambda h, n: calls.append(h.shape) or original(h, n))
    seq, lengths = padded_batch(LENGTHS)
    model(seq, lengths)
    assert calls == [(len(LENGTHS), 12, 16)]
    assert name != "SIGMA" or model.lookahead() is None


def test_invalid_length_buckets_value_is_rejected(make_model):
    from recbole_sigma.errors import ConfigError

    with pytest.raises(ConfigError, match="length_buckets='yes' is invalid"):
        make_model("Mamba4Rec", length_buckets="yes")


def test_a_config_without_the_key_is_a_missing_key_error(make_model):
    """length_buckets is required like every other key (the model's YAML sets it)."""
    from recbole_sigma.errors import ConfigError

    with pytest.raises(ConfigError, match="SIGMA: config key 'length_buckets' is missing"):
        make_model("SIGMA", length_buckets=None)


def sasrec_pair(**overrides):
    """RecBole's SASRec and ours, with the same weights, from RecBole's YAML defaults."""
    import recbole
    import yaml
    from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec

    from recbole_sigma.model import SASRec
    from tests.conftest import FakeDataset, model_config

    recbole_yaml = Path(recbole.__file__).parent / "properties" / "model" / "SASRec.yaml"
    config = model_config("SASRec", **yaml.safe_load(open(recbole_yaml)))
    config.update(hidden_size=16, inner_size=32, layer_norm_eps=1e-12, **overrides)  # YAML reads 1e-12 as a string
    torch.manual_seed(0)
    reference = RecBoleSASRec(config, FakeDataset(30))
    ours = SASRec(config, FakeDataset(30))
    ours.load_state_dict(reference.state_dict())  # same parameter names: checkpoints load either way
    return reference.double().eval(), ours.double().eval()


def test_sasrec_is_recboles_with_bucketed_forward_and_backward():
    reference, ours = sasrec_pair()
    assert ours.length_buckets is True
    seq, lengths = padded_batch(LENGTHS)
    assert_same_outputs_and_grads(
        outputs_and_grads(ours, seq, lengths, buckets=True), outputs_and_grads(reference, seq, lengths, buckets=None)
    )


def test_sasrec_bucketing_is_real_and_can_be_switched_off(monkeypatch):
    from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec

    reference, ours = sasrec_pair()
    widths = []
    original = RecBoleSASRec.forward
    monkeypatch.setattr(RecBoleSASRec, "forward", lambda self, s, n: widths.append(s.shape[1]) or original(self, s, n))
    seq, lengths = padded_batch(LENGTHS)
    ours(seq, lengths)
    assert sorted(widths) == [1, 2, 4, 8, 12]  # groups 1, 2, 3-4, 5-8, 9-12
    widths.clear()
    ours.length_buckets = False
    ours(seq, lengths)
    assert widths == [12]


def test_sasrec_resolves_to_ours_and_rejects_a_bad_switch():
    from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec

    from recbole_sigma.errors import ConfigError
    from recbole_sigma.config import resolve_model

    assert resolve_model("SASRec") is not RecBoleSASRec and issubclass(resolve_model("SASRec"), RecBoleSASRec)
    with pytest.raises(ConfigError, match="SASRec: length_buckets='no' is invalid"):
        sasrec_pair(length_buckets="no")
