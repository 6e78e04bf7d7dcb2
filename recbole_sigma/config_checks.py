"""Validation of the models' config keys, before anything is built or trained.

Every error is one line naming the model, the key, the value and what is allowed."""
import warnings

from recbole_sigma.errors import ConfigError
from recbole_sigma.mamba import BACKENDS, kernel_limits


def _int_at_least(low):
    def check(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    return check, f"an integer >= {low}"


def _choice(*options):
    return (lambda v: v in options), "one of " + ", ".join(map(repr, options))


_BOOL = ((lambda v: isinstance(v, bool)), "True or False")
_DROPOUT = ((lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1), "a number in [0, 1)")

COMMON_KEYS = {
    "hidden_size": _int_at_least(1),
    "num_layers": _int_at_least(1),
    "dropout_prob": _DROPOUT,
    "d_state": _int_at_least(1),
    "d_conv": _int_at_least(1),
    "expand": _int_at_least(1),
    "loss_type": _choice("CE", "BPR"),
    "mamba_backend": _choice(*BACKENDS),
    "mamba_init": _choice("native", "public_code"),
}

MODEL_KEYS = {
    "SASRec": {"length_buckets": _BOOL},  # RecBole's own keys are RecBole's to check
    "Mamba4Rec": {"length_buckets": _BOOL},
    "EchoMamba4Rec": {"length_buckets": _BOOL},
    "SIGMA": {
        "length_buckets": _BOOL,
        "flip_remain": _int_at_least(0),
        "gate_conv_kernel": _int_at_least(1),
        "gru_conv_kernel": _int_at_least(1),
        "use_partial_flip": _BOOL,
        "use_ds_gate": _BOOL,
        "use_fe_gru": _BOOL,
        "share_mamba": _BOOL,
        "gru_bias": _BOOL,
        "flip_mode": _choice("length_aware", "fixed"),
        "gate_mode": _choice("paper", "public_code"),
        "mix_weights": _choice("trainable", "public_code", "frozen_softmax"),
        "sigma_variant": _choice("paper", "public_code"),
    },
}


# Keys a config may lack (a checkpoint written before they existed): it gets this default, which
# is what such a config computed, instead of an error.
OPTIONAL_KEYS = {"length_buckets": True, "sigma_variant": "paper"}


def option(config, key):
    """``config[key]``, or the default of an optional key when it is missing."""
    value = config[key]
    return OPTIONAL_KEYS[key] if value is None else value


def check_model_config(model_name, config, max_seq_length):
    """Raise ConfigError on the first missing or invalid key of ``model_name``."""
    check_keys(model_name, config, dict(COMMON_KEYS, **MODEL_KEYS.get(model_name, {})))
    limit = kernel_limits(config["d_conv"], config["d_state"]) if config["mamba_backend"] == "cuda" else None
    if limit:
        raise ConfigError(f"{model_name}: {limit.setting} is invalid with mamba_backend='cuda' ({limit.why}); "
                          "set mamba_backend: auto or torch")
    if model_name == "SIGMA" and config["flip_remain"] >= max_seq_length:
        warnings.warn(
            f"SIGMA: flip_remain={config['flip_remain']} >= MAX_ITEM_LIST_LENGTH={max_seq_length}: "
            "the partial flip leaves every sequence unchanged",
            stacklevel=3,
        )


def check_keys(model_name, config, keys):
    """Raise ConfigError on the first missing or invalid one of ``keys`` ({key: (valid, allowed)})."""
    for key, (valid, allowed) in keys.items():
        value = config[key]
        if value is None and key in OPTIONAL_KEYS:
            continue
        if value is None:
            raise ConfigError(
                f"{model_name}: config key {key!r} is missing; load the model's defaults with "
                f"recbole_sigma.config_files({model_name!r}, dataset) (expected {allowed})"
            )
        if not valid(value):
            raise ConfigError(f"{model_name}: {key}={value!r} is invalid; expected {allowed}")
