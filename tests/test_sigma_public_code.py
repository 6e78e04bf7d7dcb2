"""``sigma_variant: public_code`` against a hand transcription of the authors' SIGMA (github
ziwliu8/SIGMA, model/gated_mamba.py at HEAD, read there and written out here in plain torch under
that file's parameter names); its combining weights train; the paper's SIGMA is unchanged."""
import logging
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_sigma.errors import ConfigError
from tests.conftest import assert_same_weights, padded_batch

L, D = 50, 16  # HEAD flips the first 45 positions: L - r with the YAML's r = 5
LENGTHS = [1, 2, 5, 6, 9, 17, 22, 23, 30, 44, 45, 46, 50, 3]


def head_names(name):
    """Our public_code parameter name -> the name of the same parameter in HEAD's SIGMA."""
    renames = {
        "layers.0.mixer.mix": "mamba_layers.0.gmamba.combining_weights",
        "layers.0.mixer.gate.dense_fwd.": "mamba_layers.0.gmamba.dense1.",
        "layers.0.mixer.gate.dense_flip.": "mamba_layers.0.gmamba.dense2.",
        "layers.0.mixer.gate.silu_proj.": "mamba_layers.0.gmamba.selective_gate_si.1.",
        "layers.0.mixer.gate.sigmoid_proj.": "mamba_layers.0.gmamba.selective_gate_sig.1.",
        "layers.0.mixer.fe_gru.conv1d.": "mamba_layers.0.gmamba.conv1d.",
        "layers.0.mixer.fe_gru.gru.": "mamba_layers.0.gmamba.gru.",
        "layers.0.mixer.": "mamba_layers.0.gmamba.",
        "layers.0.": "mamba_layers.0.",
    }
    for ours, theirs in renames.items():
        if name.startswith(ours):
            return theirs + name[len(ours):]
    return name


def gru_without_bias(x, w_ih, w_hh):
    """torch's GRU equations (gates r, z, n), no biases, zero initial state: (B, L, D) -> (B, L, H)."""
    h = x.new_zeros(x.shape[0], w_hh.shape[1])
    outputs = []
    for t in range(x.shape[1]):
        i_r, i_z, i_n = (x[:, t] @ w_ih.T).chunk(3, dim=1)
        h_r, h_z, h_n = (h @ w_hh.T).chunk(3, dim=1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h = (1 - z) * n + z * h
        outputs.append(h)
    return torch.stack(outputs, dim=1)


def head_forward(p, mamba, item_seq, item_seq_len, gate_dropout=lambda x: x, si=F.silu, sig=torch.sigmoid,
                 projection=True, ac=None, one_gate=False, gru_conv=True, flip_back=False):
    """HEAD's SIGMA.forward with one SIGMALayers (dropouts off but the gate's), less the dead line
    ``gru_input = self.conv1d(g1)``. ``p``: HEAD's parameter names; ``mamba``: its one Mamba block.
    ``si``, ``sig``: the activations of HEAD's ``selective_gate_si`` and ``selective_gate_sig``
    (Sequentials of an activation and a Linear); ``projection=False`` drops its last Linear, as the
    notebook's cell 26 prints them. ``ac``: the first commit's commented-out ``h1 = self.ac(h1)``
    after ``dense1``, as if it were in. ``one_gate``: the forward branch's gate ``h1`` gates the flipped
    branch too (no ``dense2``); ``gru_conv=False``: the GRU reads ``input_tensor``, not ``conv1d``'s output.
    ``flip_back``: ``mamba_output_f``'s first 45 positions reversed again (in no version of HEAD; the
    ``flip_back`` guess at the notebook's forward)."""
    g = "mamba_layers.0.gmamba."

    def linear(name, x):
        return F.linear(x, p[name + ".weight"], p.get(name + ".bias"))

    def layer_norm(name, x):
        return F.layer_norm(x, x.shape[-1:], p[name + ".weight"], p[name + ".bias"], eps=1e-12)

    x = layer_norm("LayerNorm", F.embedding(item_seq, p["item_embedding.weight"]))
    # GMambaBlock.forward
    h1 = linear(g + "dense1", x)
    if ac is not None:
        h1 = ac(h1)
    g1 = F.conv1d(x.transpose(1, 2), p[g + "conv1d.weight"], p[g + "conv1d.bias"], padding=1).transpose(1, 2) \
        if gru_conv else x
    flipped = x.clone()
    flipped[:, :45, :] = x[:, :45, :].flip(dims=[1])
    h2 = None if one_gate else linear(g + "dense2", flipped) + flipped
    mamba_output_f = mamba(flipped)
    if flip_back:
        mamba_output_f = torch.cat([mamba_output_f[:, :45].flip(dims=[1]), mamba_output_f[:, 45:]], dim=1)
    mamba_output = mamba(x)
    h1 = x + h1
    h1 = linear(g + "selective_gate_si.1", si(h1)) + linear(g + "selective_gate_sig.1", sig(h1))
    h1 = gate_dropout(h1)
    if one_gate:
        h2 = h1
    else:
        h2 = linear(g + "selective_gate_si.1", si(h2)) + linear(g + "selective_gate_sig.1", sig(h1))
        h2 = gate_dropout(h2)
    mamba_output = mamba_output * h1 + mamba_output
    mamba_output_f = mamba_output_f * h2 + mamba_output_f
    gru_output = gru_without_bias(g1, p[g + "gru.weight_ih_l0"], p[g + "gru.weight_hh_l0"])
    w = p[g + "combining_weights"]
    combined = w[2] * mamba_output + w[1] * mamba_output_f + w[0] * gru_output
    if projection:
        combined = linear(g + "projection", combined)
    # SIGMALayers.forward with num_layers 1 (no residual), then FeedForward
    h = layer_norm("mamba_layers.0.LayerNorm", combined)
    f = linear("mamba_layers.0.ffn.w_2", F.gelu(linear("mamba_layers.0.ffn.w_1", h)))
    h = layer_norm("mamba_layers.0.ffn.LayerNorm", f + h)
    return h[torch.arange(len(item_seq_len)), item_seq_len - 1]  # gather_indexes


def public_code(make_model, **overrides):
    return make_model("SIGMA", sigma_variant="public_code", MAX_ITEM_LIST_LENGTH=L, hidden_size=D, **overrides)


def head_parameters(model):
    return {head_names(n): p for n, p in model.named_parameters()}


@pytest.mark.parametrize("buckets", [True, False])
def test_forward_equals_heads_forward_on_the_same_weights(make_model, buckets):
    model = public_code(make_model, length_buckets=buckets).double().eval()
    assert model.length_buckets is buckets and model.lookahead() == 1  # one layer: its fixed flip buckets
    seq, lengths = padded_batch(LENGTHS, max_len=L)
    with torch.no_grad():
        ours = model(seq, lengths)
        theirs = head_forward(head_parameters(model), model.layers[0].mixer.mamba, seq, lengths)
    assert (ours - theirs).abs().max() < 1e-6
    assert ours.abs().mean() > 0.1  # not a trivial zero


class RecordedMasks(nn.Module):
    """A dropout with fixed masks, used in turn: the same draws for both forwards."""

    def __init__(self, masks, p):
        super().__init__()
        self.masks, self.p, self.calls = masks, p, 0

    def forward(self, x):
        mask = self.masks[self.calls % len(self.masks)]
        self.calls += 1
        return x * mask / (1 - self.p)


def test_gate_dropout_is_applied_where_heads_is_in_training(make_model):
    """Training mode, every dropout off but the gate's, whose draws are recorded: the flipped gate's
    sigmoid term reads the forward gate after its dropout, as in HEAD."""
    model = public_code(make_model, length_buckets=False).double().train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    gen = torch.Generator().manual_seed(1)
    seq, lengths = padded_batch(LENGTHS, max_len=L)
    masks = [(torch.rand(len(LENGTHS), L, D, generator=gen, dtype=torch.float64) > 0.2).double() for _ in range(2)]
    model.layers[0].mixer.gate.dropout = RecordedMasks(masks, 0.2)
    with torch.no_grad():
        ours = model(seq, lengths)
        theirs = head_forward(head_parameters(model), model.layers[0].mixer.mamba, seq, lengths,
                              gate_dropout=RecordedMasks(masks, 0.2))
        without = head_forward(head_parameters(model), model.layers[0].mixer.mamba, seq, lengths)
    assert (ours - theirs).abs().max() < 1e-6
    assert (ours - without).abs().max() > 1e-3  # the masks do matter


def test_gate_dropout_is_the_public_codes_constant(make_model):
    gate = public_code(make_model, dropout_prob=0.4).layers[0].mixer.gate
    assert gate.dropout.p == 0.2


def test_parameters_are_heads_one_for_one():
    """At Beauty's sizes (12,102 item ids, D = 64, d_state 32): HEAD's names and shapes, one for
    one, and HEAD's count, 904,515 (cell 66 of the authors' notebook prints 904,517)."""
    import recbole_sigma
    from tests.conftest import FakeDataset, model_config

    config = model_config("SIGMA", sigma_variant="public_code", MAX_ITEM_LIST_LENGTH=50, hidden_size=64, d_state=32)
    model = recbole_sigma.MODELS["SIGMA"](config, FakeDataset(12102))
    names = [head_names(n) for n, _ in model.named_parameters()]
    d, inner, dt_rank, n = 64, 128, 4, 32
    mamba = {"in_proj.weight": 2 * inner * d, "conv1d.weight": inner * 4, "conv1d.bias": inner,
             "x_proj.weight": (dt_rank + 2 * n) * inner, "dt_proj.weight": inner * dt_rank, "dt_proj.bias": inner,
             "A_log": inner * n, "D": inner, "out_proj.weight": d * inner}
    g = "mamba_layers.0.gmamba."
    expected = {"item_embedding.weight": 12102 * d, "LayerNorm.weight": d, "LayerNorm.bias": d,
                g + "combining_weights": 3, g + "conv1d.weight": d * d * 3, g + "conv1d.bias": d,
                g + "gru.weight_ih_l0": 3 * d * d, g + "gru.weight_hh_l0": 3 * d * d,
                **{g + "mamba." + k: v for k, v in mamba.items()},
                "mamba_layers.0.LayerNorm.weight": d, "mamba_layers.0.LayerNorm.bias": d,
                "mamba_layers.0.ffn.w_1.weight": 4 * d * d, "mamba_layers.0.ffn.w_1.bias": 4 * d,
                "mamba_layers.0.ffn.w_2.weight": 4 * d * d, "mamba_layers.0.ffn.w_2.bias": d,
                "mamba_layers.0.ffn.LayerNorm.weight": d, "mamba_layers.0.ffn.LayerNorm.bias": d}
    for linear in ("dense1", "dense2", "projection", "selective_gate_si.1", "selective_gate_sig.1"):
        expected.update({g + linear + ".weight": d * d, g + linear + ".bias": d})
    assert len(names) == len(set(names))
    assert {n: p.numel() for n, p in zip(names, model.parameters())} == expected
    assert sum(expected.values()) == 904515


def test_init_is_heads_blanket_init(make_model):
    """normal(0, 0.02) on every Linear and the embedding (Mamba's too, dt bias zeroed), biases 0;
    the combining weights start at [0.1, 0.1, 0.8]."""
    model = public_code(make_model)
    block = model.layers[0].mixer
    assert block.mix.tolist() == pytest.approx([0.1, 0.1, 0.8])
    assert torch.equal(block.mamba.dt_proj.bias, torch.zeros_like(block.mamba.dt_proj.bias))
    assert 0.01 < block.mamba.dt_proj.weight.std() < 0.03  # not mamba-ssm's uniform(+-dt_rank ** -0.5)
    assert not block.fe_gru.gru.bias and block.mamba_flip is None


def test_combining_weights_receive_gradients_and_train(make_model):
    model = public_code(make_model)
    seq, lengths = padded_batch([12, 3, 30, 1], max_len=L)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = model.layers[0].mixer.mix.detach().clone()
    model.calculate_loss({"item_id_list": seq, "item_length": lengths, "item_id": torch.tensor([3, 4, 5, 6])}).backward()
    grad = model.layers[0].mixer.mix.grad
    assert grad is not None and torch.all(grad != 0)
    optimizer.step()
    assert torch.all(model.layers[0].mixer.mix != before)


def assert_same_model(a, b):
    """Weight for weight and output for output."""
    a, b = a.eval(), b.eval()
    assert_same_weights(a.state_dict(), b.state_dict())
    seq, lengths = padded_batch(LENGTHS, max_len=L)
    torch.testing.assert_close(a(seq, lengths), b(seq, lengths))


PUBLIC_CODE_SWITCHES = {"share_mamba": True, "flip_mode": "fixed", "gate_mode": "public_code",
                        "mix_weights": "public_code", "gru_bias": False, "gru_cell": "torch",
                        "mamba_init": "public_code"}


def test_preset_is_the_seven_switches(make_model):
    """sigma_variant: public_code builds the model the seven public-code switches build, weight for weight;
    the keys it sets that hold the paper's values (SIGMA.yaml's) take HEAD's, a key set otherwise keeps it."""
    by_hand = make_model("SIGMA", MAX_ITEM_LIST_LENGTH=L, **PUBLIC_CODE_SWITCHES)
    assert_same_model(public_code(make_model), by_hand)
    # said again at the paper's value, a key is the preset's: there is no telling it from the default
    assert_same_model(public_code(make_model, flip_mode="length_aware", gru_conv_kernel=3), by_hand)
    notebook = {"gate_activations": ["sigmoid", "gelu"], "gate_dropout": 0.3, "output_projection": False,
                "gate_dense_act": "silu", "gate_flip": "shared", "mix_weights": "frozen_softmax"}
    assert_same_model(public_code(make_model, **notebook),
                      make_model("SIGMA", MAX_ITEM_LIST_LENGTH=L, **{**PUBLIC_CODE_SWITCHES, **notebook}))


def test_a_preset_says_what_it_set_and_what_it_kept(make_model, caplog):
    """Built outside recbole_sigma.config (no check of the user's keys there), the model still logs the
    preset's departures from the paper and each key it left at the user's value."""
    with caplog.at_level(logging.INFO, logger="recbole_sigma.model.sigma"):
        make_model("SIGMA", MAX_ITEM_LIST_LENGTH=L, sigma_variant="notebook", gate_dropout=0.5)
    lines = [r.getMessage() for r in caplog.records if r.name == "recbole_sigma.model.sigma"]
    assert lines == ["sigma_variant 'notebook' sets share_mamba=True, flip_mode='fixed', gate_mode='public_code', "
                     "mix_weights='frozen_softmax', gru_bias=False, gru_cell='torch', gate_activations=('sigmoid', 'silu'), "
                     "output_projection=False, gate_flip='shared', gru_conv_kernel=0; "
                     "keeps gate_dropout=0.5 (set away from the paper's 0.2)"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="recbole_sigma.model.sigma"):
        make_model("SIGMA", MAX_ITEM_LIST_LENGTH=L)  # the paper's SIGMA: no preset, nothing to say
    assert not [r for r in caplog.records if r.name == "recbole_sigma.model.sigma"]


def test_a_key_set_to_the_papers_value_beside_a_preset_is_a_config_error(monkeypatch, tmp_path):
    """The model would let the preset replace it (above); the config, which knows what the user set, says so."""
    from recbole_sigma.config import build_config

    monkeypatch.setattr(sys, "argv", ["run_recbole_sigma.py"])
    with pytest.raises(ConfigError, match=r"^sigma_variant='notebook' would replace mix_weights='trainable' "
                                          r"\(the preset: 'frozen_softmax'\): a preset changes only"):
        build_config("SIGMA", "ml-100k", config_dict={"sigma_variant": "notebook", "mix_weights": "trainable"})
    mine = tmp_path / "my.yaml"
    mine.write_text("sigma_variant: public_code\nflip_mode: length_aware\n")
    with pytest.raises(ConfigError, match=r"flip_mode='length_aware' \(the preset: 'fixed'\)"):
        build_config("SIGMA", "ml-100k", config_file_list=[str(mine)])
    monkeypatch.setattr(sys, "argv", ["run_recbole_sigma.py", "--sigma_variant=notebook", "--gru_conv_kernel=3"])
    with pytest.raises(ConfigError, match=r"gru_conv_kernel=3 \(the preset: 0\)"):
        build_config("SIGMA", "ml-100k")
    # away from the paper's value, or at the preset's own, a key is the user's to set
    monkeypatch.setattr(sys, "argv", ["run_recbole_sigma.py"])
    config = build_config("SIGMA", "ml-100k", config_dict={
        "sigma_variant": "notebook", "mix_weights": "public_code", "mamba_init": "public_code", "share_mamba": True})
    assert config["mix_weights"] == "public_code"


def test_the_paper_values_a_preset_replaces_are_sigma_yamls_defaults():
    from recbole_sigma.config import check_config_file, properties_dir
    from recbole_sigma.model.sigma import PAPER, PRESETS

    yaml = check_config_file(properties_dir() / "model" / "SIGMA.yaml")
    assert set(PAPER) == set().union(*PRESETS.values())
    assert {key: yaml[key] for key in PAPER} == {k: list(v) if isinstance(v, tuple) else v for k, v in PAPER.items()}


# The paper's SIGMA (the default) as it was before sigma_variant existed, with torch's GRU (the default's until
# gru_cell: paper): its parameters, in order.
PAPER_PARAMETERS = [
    ("item_embedding.weight", (30, 16)), ("LayerNorm.weight", (16,)), ("LayerNorm.bias", (16,)),
    *[(f"layers.0.mixer.{m}.{k}", s) for m in ("mamba", "mamba_flip") for k, s in (
        ("A_log", (32, 4)), ("D", (32,)), ("in_proj.weight", (64, 16)), ("conv1d.weight", (32, 1, 4)),
        ("conv1d.bias", (32,)), ("x_proj.weight", (9, 32)), ("dt_proj.weight", (32, 1)), ("dt_proj.bias", (32,)),
        ("out_proj.weight", (16, 32)))],
    ("layers.0.mixer.gate.dense.weight", (16, 16)), ("layers.0.mixer.gate.dense.bias", (16,)),
    ("layers.0.mixer.gate.conv1d.weight", (16, 16, 3)), ("layers.0.mixer.gate.conv1d.bias", (16,)),
    ("layers.0.mixer.gate.delta.weight", (16, 16)), ("layers.0.mixer.gate.delta.bias", (16,)),
    ("layers.0.mixer.fe_gru.conv1d.weight", (16, 16, 3)), ("layers.0.mixer.fe_gru.conv1d.bias", (16,)),
    ("layers.0.mixer.fe_gru.gru.weight_ih_l0", (48, 16)), ("layers.0.mixer.fe_gru.gru.weight_hh_l0", (48, 16)),
    ("layers.0.mixer.fe_gru.gru.bias_ih_l0", (48,)), ("layers.0.mixer.fe_gru.gru.bias_hh_l0", (48,)),
    ("layers.0.mixer.a1", ()), ("layers.0.mixer.a2", ()),
    ("layers.0.mixer.projection.weight", (16, 16)), ("layers.0.mixer.projection.bias", (16,)),
    ("layers.0.LayerNorm.weight", (16,)), ("layers.0.LayerNorm.bias", (16,)),
    ("layers.0.ffn.w_1.weight", (64, 16)), ("layers.0.ffn.w_1.bias", (64,)),
    ("layers.0.ffn.w_2.weight", (16, 64)), ("layers.0.ffn.w_2.bias", (16,)),
    ("layers.0.ffn.LayerNorm.weight", (16,)), ("layers.0.ffn.LayerNorm.bias", (16,)),
]


def test_paper_variant_keeps_its_parameters(make_model):
    model = make_model("SIGMA", sigma_variant="paper", gru_cell="torch")
    assert sorted((n, tuple(p.shape)) for n, p in model.named_parameters()) == sorted(PAPER_PARAMETERS)
    assert sum(p.numel() for p in model.parameters()) == 11138
    # Eq. 7's GRU as written (the default): one bias a gate, so 3 D fewer parameters
    gru = "layers.0.mixer.fe_gru.gru."
    paper_gru = [(gru + "weight_ih", (48, 16)), (gru + "weight_hh", (48, 16)), (gru + "bias", (48,))]
    expected = [(n, s) for n, s in PAPER_PARAMETERS if not n.startswith(gru)] + paper_gru
    model = make_model("SIGMA", sigma_variant="paper")
    assert sorted((n, tuple(p.shape)) for n, p in model.named_parameters()) == sorted(expected)
    assert sum(p.numel() for p in model.parameters()) == 11138 - 48


def test_a_config_without_the_key_is_a_missing_key_error(make_model):
    """sigma_variant is required like every other key (SIGMA's YAML sets it)."""
    with pytest.raises(ConfigError, match="SIGMA: config key 'sigma_variant' is missing"):
        make_model("SIGMA", sigma_variant=None)


def test_unknown_variant_is_rejected(make_model):
    with pytest.raises(ConfigError, match="SIGMA: sigma_variant='head' is invalid; expected one of 'paper', 'public_code'"):
        make_model("SIGMA", sigma_variant="head")


def test_without_the_fe_gru_two_weights_remain(make_model):
    """An ablation on top of the preset: (flipped, forward) weights only, every one trained."""
    model = public_code(make_model, use_fe_gru=False)
    assert model.layers[0].mixer.mix.tolist() == pytest.approx([0.1, 0.8])
    seq, lengths = padded_batch([12, 3], max_len=L)
    model.calculate_loss({"item_id_list": seq, "item_length": lengths, "item_id": torch.tensor([3, 4])}).backward()
    assert all(p.grad is not None for p in model.parameters())


# --------------------------------------------------------------------------
# The notebook's switches: what RecMamba.ipynb prints of the SIGMA it ran, where HEAD differs
# --------------------------------------------------------------------------
CELL_26 = {"gate_activations": ["sigmoid", "gelu"], "gate_dropout": 0.3, "output_projection": False}


def cell_26(make_model, **overrides):
    switches = {"share_mamba": True, "flip_mode": "fixed", "gate_mode": "public_code", "mix_weights": "public_code",
                "gru_bias": False, "gru_cell": "torch"}
    return make_model("SIGMA", MAX_ITEM_LIST_LENGTH=L, hidden_size=D, **switches, **CELL_26, **overrides)


@pytest.mark.parametrize("buckets", [True, False])
def test_cell_26_forward_is_heads_with_its_activations_and_no_projection(make_model, buckets):
    model = cell_26(make_model, length_buckets=buckets).double().eval()
    seq, lengths = padded_batch(LENGTHS, max_len=L)
    with torch.no_grad():
        ours = model(seq, lengths)
        theirs = head_forward(head_parameters(model), model.layers[0].mixer.mamba, seq, lengths,
                              si=torch.sigmoid, sig=F.gelu, projection=False)
        heads = head_forward(head_parameters(model), model.layers[0].mixer.mamba, seq, lengths, projection=False)
    assert (ours - theirs).abs().max() < 1e-6
    assert (ours - heads).abs().max() > 1e-3  # the activations do matter


def test_cell_26_has_the_parameters_it_prints():
    """900,355 trainable parameters at Beauty's sizes, as cell 26 prints: HEAD's less its projection."""
    import recbole_sigma
    from tests.conftest import FakeDataset, model_config

    config = model_config("SIGMA", sigma_variant="paper", share_mamba=True, flip_mode="fixed",
                          gate_mode="public_code", mix_weights="public_code", gru_bias=False,
                          MAX_ITEM_LIST_LENGTH=50, hidden_size=64, d_state=32, **CELL_26)
    model = recbole_sigma.MODELS["SIGMA"](config, FakeDataset(12102))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 900355
    assert not any("projection" in head_names(n) for n, _ in model.named_parameters())


def test_gate_dropout_is_the_key_and_not_dropout_prob(make_model):
    gate = cell_26(make_model, dropout_prob=0.1).layers[0].mixer.gate
    assert gate.dropout.p == 0.3


def test_a_checkpoint_of_heads_loads_with_other_activations(make_model):
    """The activations carry no parameters: HEAD's weights load into cell 26's gate, name for name."""
    head = public_code(make_model)
    assert any(n.endswith("mixer.projection.weight") for n in head.state_dict())
    model = cell_26(make_model)
    state = {k: v for k, v in head.state_dict().items() if "mixer.projection" not in k}
    model.load_state_dict(state)


def test_every_activation_name_the_config_accepts_is_one_the_gate_has():
    """The names are written once for the checks (config_checks) and once beside their functions."""
    from recbole_sigma.config_checks import GATE_ACTIVATIONS
    from recbole_sigma.model.sigma import ACTIVATIONS, PublicCodeGate

    assert tuple(ACTIVATIONS) == GATE_ACTIVATIONS
    for name in GATE_ACTIVATIONS:
        gate = PublicCodeGate(4, (name, name), 0.0, name, "own")
        assert gate.act_a is gate.act_b is gate.dense_act is ACTIVATIONS[name]


@pytest.mark.parametrize("key, value, allowed", [
    ("gate_activations", ["relu", "silu"], "two of 'silu', 'sigmoid', 'gelu'"),
    ("gate_activations", ["silu"], "two of 'silu', 'sigmoid', 'gelu'"),
    ("gate_dropout", 1.0, "a number in \\[0, 1\\)"),
    ("gate_dropout", "auto", "a number in \\[0, 1\\)"),
    ("output_projection", "no", "True or False"),
    ("gate_dense_act", "relu", "one of 'none', 'silu', 'sigmoid', 'gelu'"),
    ("gate_flip", "both", "one of 'own', 'shared'"),
    ("gru_conv_kernel", -1, "an integer >= 0"),
])
def test_bad_notebook_switches_are_one_line_errors(make_model, key, value, allowed):
    with pytest.raises(ConfigError, match=f"SIGMA: {key}=.* is invalid; expected {allowed}"):
        make_model("SIGMA", **{key: value})


def test_gate_dense_act_is_the_first_commits_commented_line_put_back(make_model):
    model = cell_26(make_model, gate_dense_act="silu", length_buckets=False).double().eval()
    seq, lengths = padded_batch(LENGTHS, max_len=L)
    with torch.no_grad():
        ours = model(seq, lengths)
        theirs = head_forward(head_parameters(model), model.layers[0].mixer.mamba, seq, lengths,
                              si=torch.sigmoid, sig=F.gelu, projection=False, ac=F.silu)
        without = head_forward(head_parameters(model), model.layers[0].mixer.mamba, seq, lengths,
                               si=torch.sigmoid, sig=F.gelu, projection=False)
    assert (ours - theirs).abs().max() < 1e-6
    assert (ours - without).abs().max() > 1e-4  # the SiLU does act
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in cell_26(make_model).parameters())


@pytest.mark.parametrize("buckets", [True, False])
def test_one_gate_without_the_grus_conv_is_heads_forward_with_those_two_changes(make_model, buckets):
    """gate_flip: shared and gru_conv_kernel: 0, the two changes the notebook's FLOPs call for
    (benchmarks/notebook_flops.py), on HEAD's forward: no dense2, no Conv1d before the GRU."""
    model = cell_26(make_model, gate_flip="shared", gru_conv_kernel=0, length_buckets=buckets).double().eval()
    names = [name for name, _ in model.named_parameters()]
    assert not [name for name in names if "dense_flip" in name or "fe_gru.conv1d" in name]
    assert model.lookahead() == 0
    seq, lengths = padded_batch(LENGTHS, max_len=L)
    with torch.no_grad():
        ours = model(seq, lengths)
        theirs = head_forward(head_parameters(model), model.layers[0].mixer.mamba, seq, lengths,
                              si=torch.sigmoid, sig=F.gelu, projection=False, one_gate=True, gru_conv=False)
    assert (ours - theirs).abs().max() < 1e-6


def test_notebook_preset_is_the_harness_variant_with_the_notebooks_flops_and_heads_unused_mix(make_model):
    """sigma_variant: notebook builds nb_one_gate_softmax_mix (the FLOPs of benchmarks/notebook_flops.py,
    mixing with softmax([0.1, 0.1, 0.8]), fixed), weight for weight; mix_weights: public_code switches
    back to nb_one_gate, HEAD's trainable raw mix."""
    from benchmarks.harness.jobs import PRESET_OF, variant_overrides
    from recbole_sigma.model.sigma import PUBLIC_CODE_MIX

    assert PRESET_OF == {"nb_one_gate_softmax_mix": "notebook"}  # how the reports name that row

    def by_hand(variant):
        switches = {k: v for k, v in variant_overrides("SIGMA", variant).items() if k != "dropout_prob"}
        return make_model("SIGMA", MAX_ITEM_LIST_LENGTH=L, mamba_init="public_code", **switches)

    preset = make_model("SIGMA", sigma_variant="notebook", MAX_ITEM_LIST_LENGTH=L)
    assert_same_model(preset, by_hand("nb_one_gate_softmax_mix"))
    assert not [name for name in preset.state_dict() if "dense_flip" in name or "fe_gru.conv1d" in name]
    mixer = preset.layers[0].mixer
    assert "mix" not in dict(mixer.named_parameters())
    assert mixer.mix.tolist() == pytest.approx([0.2491, 0.2491, 0.5017], abs=1e-4)  # softmax of the raw values
    trainable = make_model("SIGMA", sigma_variant="notebook", MAX_ITEM_LIST_LENGTH=L, mix_weights="public_code")
    assert_same_model(trainable, by_hand("nb_one_gate"))
    assert trainable.layers[0].mixer.mix.requires_grad
    assert trainable.layers[0].mixer.mix.tolist() == pytest.approx(list(PUBLIC_CODE_MIX))


@pytest.mark.parametrize("buckets", [True, False])
def test_flip_back_is_heads_one_gate_forward_with_the_flipped_output_reversed_again(make_model, buckets):
    model = cell_26(make_model, gate_flip="shared", gru_conv_kernel=0, flip_back=True,
                    length_buckets=buckets).double().eval()
    without = cell_26(make_model, gate_flip="shared", gru_conv_kernel=0).double().eval()
    without.load_state_dict(model.state_dict())  # no parameter of its own
    assert model.lookahead() == 0
    seq, lengths = padded_batch(LENGTHS, max_len=L)
    with torch.no_grad():
        ours = model(seq, lengths)
        theirs = head_forward(head_parameters(model), model.layers[0].mixer.mamba, seq, lengths, si=torch.sigmoid,
                              sig=F.gelu, projection=False, one_gate=True, gru_conv=False, flip_back=True)
        assert (ours - theirs).abs().max() < 1e-6
        assert (ours - without(seq, lengths)).abs().max() > 1e-3


def test_flip_back_lets_a_short_users_flipped_branch_read_its_last_item_and_nothing_before(make_model):
    """At a user's last position (n <= 45 items) the fixed flip's branch has scanned positions 44 down to
    n - 1 when flipped back: padding, then the last item. Without flip_back, for n <= 22, only padding."""
    torch.manual_seed(0)
    lengths = torch.tensor([3, 10, 22, 40])
    h0 = torch.randn(len(lengths), L, D, dtype=torch.double)
    h0[torch.arange(L) >= lengths.unsqueeze(1)] = 0.5  # the padding rows, one constant vector
    earlier, last = h0.clone(), h0.clone()
    for row, n in enumerate(lengths.tolist()):
        earlier[row, :n - 1] += 1.0
        last[row, n - 1] += 1.0
    at_last = torch.arange(len(lengths)), lengths - 1

    def branch(flip_back, x):
        block = cell_26(make_model, gate_flip="shared", gru_conv_kernel=0, flip_back=flip_back).double().layers[0].mixer
        torch.manual_seed(1)
        for p in block.mamba.parameters():  # the same Mamba weights in both
            nn.init.normal_(p, std=0.3)
        with torch.no_grad():  # the flipped branch's Mamba output (flipped back or not) at the last position
            out = block.padded_part(x, lengths)  # with flip_back that output itself, else H0f
            return (out if flip_back else block.flipped_branch(out, lengths))[at_last]

    base = branch(True, h0)
    assert torch.equal(branch(True, earlier), base)
    assert (branch(True, last) - base).abs().min() > 0
    short, base = lengths <= 22, branch(False, h0)
    for changed in (earlier, last):
        assert torch.equal(branch(False, changed)[short], base[short])
    assert (branch(False, last)[~short] - base[~short]).abs().min() > 0  # n = 40: it reads the items


@pytest.mark.parametrize("gate", ["own", "paper"])
def test_flip_back_with_a_gate_that_reads_the_flipped_input_is_a_one_line_error(make_model, gate):
    with pytest.raises(ConfigError, match="^SIGMA: flip_back needs a gate that does not read the flipped input"):
        if gate == "own":
            cell_26(make_model, flip_back=True)
        else:  # the paper's SIGMA and its gate G1(H0f)
            make_model("SIGMA", MAX_ITEM_LIST_LENGTH=L, hidden_size=D, flip_back=True)
    cell_26(make_model, flip_back=True, use_ds_gate=False)  # no gate: nothing misaligned
