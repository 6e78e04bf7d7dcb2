"""Validation of the models' config keys, before anything is built or trained.

Every error is one line naming the model, the key, the value and what is allowed.
``check_run_config`` does the same for the RecBole keys a run depends on (learning rate, batch
sizes, epochs, MAX_ITEM_LIST_LENGTH, topk, metrics, valid_metric, eval_args, ...), before any data
is read; ``recbole_config_errors`` rewords what RecBole's own Config rejects."""
import contextlib
import math
import os
import warnings

from recbole_sigma.errors import ConfigError
from recbole_sigma.mamba import BACKENDS, kernel_limits


def _int_at_least(low):
    def check(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    return check, f"an integer >= {low}"


def _number(low, inclusive):
    def check(v):
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and (v >= low if inclusive else v > low))

    return check, f"a number {'>=' if inclusive else '>'} {low}"


def _choice(*options):
    return (lambda v: v in options), "one of " + ", ".join(map(repr, options))


_BOOL = ((lambda v: isinstance(v, bool)), "True or False")
_DROPOUT = ((lambda v: v == "auto" or isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1),
            "a number in [0, 1) or 'auto'")
_RATE = ((lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1), "a number in [0, 1)")
# The activations SIGMA's public-code gate can take by name (recbole_sigma.model.sigma.ACTIVATIONS).
GATE_ACTIVATIONS = ("silu", "sigmoid", "gelu")
_ACTIVATION_PAIR = ((lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(a in GATE_ACTIVATIONS for a in v)),
                    f"two of {', '.join(map(repr, GATE_ACTIVATIONS))}, e.g. ['silu', 'sigmoid']")

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

# recbole_sigma.model.MODELS by name (that package imports this module, not the other way round):
# their keys are COMMON_KEYS + MODEL_KEYS[name].
MAMBA_MODELS = ("Mamba4Rec", "SIGMA", "EchoMamba4Rec")

MODEL_KEYS = {
    "SASRec": {"length_buckets": _BOOL},  # RecBole's own keys are RecBole's to check
    "Mamba4Rec": {"length_buckets": _BOOL},
    "EchoMamba4Rec": {"length_buckets": _BOOL, "backward_flip": _choice("valid_items", "padded"),
                      "glu_dropout": _choice("branch", "sum"), "mamba_pairs": _choice("one", "num_layers"),
                      "bimamba_norm_eps": _number(0, inclusive=False)},
    "SIGMA": {
        "length_buckets": _BOOL,
        "flip_remain": _int_at_least(0),
        "gate_conv_kernel": _int_at_least(1),
        "gru_conv_kernel": _int_at_least(0),
        "use_partial_flip": _BOOL,
        "use_ds_gate": _BOOL,
        "use_fe_gru": _BOOL,
        "share_mamba": _BOOL,
        "gru_bias": _BOOL,
        "gru_cell": _choice("torch", "paper"),
        "flip_mode": _choice("length_aware", "fixed"),
        "gate_mode": _choice("paper", "public_code"),
        "mix_weights": _choice("trainable", "public_code", "frozen_softmax"),
        "sigma_variant": _choice("paper", "public_code", "notebook"),
        "gate_activations": _ACTIVATION_PAIR,
        "gate_dropout": _RATE,
        "output_projection": _BOOL,
        "gate_dense_act": _choice("none", *GATE_ACTIVATIONS),
        "gate_flip": _choice("own", "shared"),
        "flip_back": _BOOL,
    },
}


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
        if value is None:
            raise ConfigError(
                f"{model_name}: config key {key!r} is missing; load the model's defaults with "
                f"recbole_sigma.config_files({model_name!r}, dataset) (expected {allowed})"
            )
        if not valid(value):
            raise ConfigError(f"{model_name}: {key}={value!r} is invalid; expected {allowed}")


# --------------------------------------------------------------------------
# RecBole's keys that a run depends on (checked before any data is read or model built)
# --------------------------------------------------------------------------
def _nonempty_str():
    return (lambda v: isinstance(v, str) and v != ""), "a non-empty string"


RUN_KEYS = {
    "learning_rate": _number(0, inclusive=False),
    "weight_decay": _number(0, inclusive=True),
    "epochs": _int_at_least(1),
    "train_batch_size": _int_at_least(1),
    "eval_batch_size": _int_at_least(1),
    "stopping_step": _int_at_least(0),
    "eval_step": _int_at_least(1),  # run() reports the best validated epoch: at least one must be
    "seed": ((lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 32),
             "an integer in [0, 2**32)"),  # numpy's seed range (RecBole's init_seed)
    "data_path": _nonempty_str(),
    "checkpoint_dir": _nonempty_str(),
    "field_separator": _nonempty_str(),
    "seq_separator": _nonempty_str(),
}
# Sequential models only (RecBole reads them for nothing else).
SEQUENCE_KEYS = {
    "MAX_ITEM_LIST_LENGTH": _int_at_least(1),
    "USER_ID_FIELD": _nonempty_str(),
    "ITEM_ID_FIELD": _nonempty_str(),
    "TIME_FIELD": _nonempty_str(),
}

# RecBole's own baselines that our runs compare against: what their constructors assume.
RECBOLE_MODEL_KEYS = {
    "SASRec": {
        "n_layers": _int_at_least(1),
        "n_heads": _int_at_least(1),
        "hidden_size": _int_at_least(1),
        "inner_size": _int_at_least(1),
        "hidden_dropout_prob": _RATE,  # RecBole's nn.Dropout: no 'auto' (our Mamba models resolve it)
        "attn_dropout_prob": _RATE,
        "hidden_act": _choice("gelu", "relu", "swish", "tanh", "sigmoid"),
        "layer_norm_eps": _number(0, inclusive=False),
        "initializer_range": _number(0, inclusive=False),
        "loss_type": _choice("CE", "BPR"),
    },
}
EVAL_ARGS_KEYS = ("split", "order", "group_by", "mode")
LEAVE_ONE_OUT = "valid_and_test"  # RecBole's data_preparation needs train, valid and test splits


def _get(config, key):
    """``config[key]`` on RecBole's Config or a plain dict; None when missing."""
    return config.get(key) if isinstance(config, dict) else config[key]


def check_run_config(config):
    """Raise ConfigError, in one line naming the key, its value and what is allowed, on the first
    RecBole key of a run that is missing or invalid; then check the model's own keys.

    ``config`` is RecBole's Config or the plain dict it is built from (``recbole_config_errors``
    checks that one when RecBole's own checks fail on it). Nothing is read or built here."""
    _check_plain_keys(config, RUN_KEYS)
    if _get(config, "eval_step") > _get(config, "epochs"):
        raise ConfigError(
            f"eval_step={_get(config, 'eval_step')} is more than epochs={_get(config, 'epochs')}: no epoch "
            "would be validated; expected eval_step <= epochs"
        )
    _check_process_keys(config)
    model = _get(config, "model")
    if _is_sequential(config):
        keys = SEQUENCE_KEYS
        if _get(config, "benchmark_filename"):  # the files are the splits, each row its history: no time
            keys = {k: v for k, v in SEQUENCE_KEYS.items() if k != "TIME_FIELD"}
        _check_plain_keys(config, keys)
        _check_sequence_length(model, config, _get(config, "MAX_ITEM_LIST_LENGTH"))
    _check_metrics(config)
    _check_eval_args(config)
    _check_train_neg_sample_args(config)
    if model in MAMBA_MODELS:  # our Mamba models: COMMON_KEYS + MODEL_KEYS
        with warnings.catch_warnings():  # the model's own check warns again when it is built
            warnings.simplefilter("ignore")
            check_model_config(model, _KeyView(config), _get(config, "MAX_ITEM_LIST_LENGTH"))
    elif model in MODEL_KEYS:
        check_keys(model, _KeyView(config), MODEL_KEYS[model])
    if model in RECBOLE_MODEL_KEYS:
        check_keys(model, _KeyView(config), RECBOLE_MODEL_KEYS[model])
        if model == "SASRec" and _get(config, "hidden_size") % _get(config, "n_heads"):
            raise ConfigError(
                f"SASRec: hidden_size={_get(config, 'hidden_size')} is not a multiple of "
                f"n_heads={_get(config, 'n_heads')}; expected hidden_size divisible by n_heads"
            )


LOG_LEVELS = ("info", "debug", "warning", "error", "critical")


def _check_process_keys(config):
    """What RecBole reads of the run's process before any data: its log level, its checkpoint folder, and a
    seed that stays in numpy's range on every rank (seed + local_rank)."""
    state = _get(config, "state")
    if state is not None and not (isinstance(state, str) and state.lower() in LOG_LEVELS):
        raise ConfigError(f"state={state!r} is invalid; expected one of {', '.join(LOG_LEVELS)} (any case)")
    folder = _get(config, "checkpoint_dir")
    if isinstance(folder, str) and os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigError(f"checkpoint_dir={folder!r} is a file, not a folder; expected a folder (made if missing)")
    processes = _get(config, "nproc") or 1
    if isinstance(processes, int) and processes > 1 and _get(config, "seed") + processes - 1 >= 2 ** 32:
        raise ConfigError(f"seed={_get(config, 'seed')} + rank exceeds numpy's seed range with nproc={processes}; "
                          f"expected seed < {2 ** 32 - processes + 1}")


class _KeyView:
    """``view[key]`` is None for a missing key, on a Config or a dict (as the model checks read)."""

    def __init__(self, config):
        self.config = config

    def __getitem__(self, key):
        return _get(self.config, key)


def _check_plain_keys(config, keys):
    for key, (valid, allowed) in keys.items():
        value = _get(config, key)
        if value is None:
            raise ConfigError(f"config key {key!r} is missing (None); expected {allowed}")
        if not valid(value):
            raise ConfigError(f"{key}={value!r} is invalid; expected {allowed}")


def _is_sequential(config):
    from recbole.utils import ModelType

    return _get(config, "MODEL_TYPE") == ModelType.SEQUENTIAL


def _check_sequence_length(model, config, length):
    """What RecBole's sequential baselines need of MAX_ITEM_LIST_LENGTH beyond >= 1 (SIGMA's
    'same' convolutions, the Mamba convolutions and SASRec work from length 1)."""
    if model == "BERT4Rec":
        ratio = _get(config, "mask_ratio")
        if isinstance(ratio, (int, float)) and 0 < ratio <= 1 and int(ratio * length) < 1:
            raise ConfigError(
                f"BERT4Rec: MAX_ITEM_LIST_LENGTH={length} masks int(mask_ratio * length) = 0 items "
                f"(mask_ratio={ratio}); expected MAX_ITEM_LIST_LENGTH >= {math.ceil(1 / ratio)} or a larger mask_ratio"
            )
    needs = {"SHAN": "short_item_length", "FOSSIL": "order_len"}
    if model in needs:
        key = needs[model]
        value = _get(config, key)
        if isinstance(value, int) and value > length:
            raise ConfigError(
                f"{model}: {key}={value} is longer than MAX_ITEM_LIST_LENGTH={length}; "
                f"expected {key} <= MAX_ITEM_LIST_LENGTH"
            )


def _metric_registry():
    """{lower-case name: class} of RecBole's metrics."""
    from recbole.evaluator.register import metrics_dict

    return metrics_dict


def _check_metrics(config):
    from recbole.evaluator.base_metric import TopkMetric
    from recbole.utils import EvaluatorType

    registry = _metric_registry()
    known = ", ".join(sorted(cls.__name__ for cls in registry.values()))
    metrics = _get(config, "metrics")
    names = [metrics] if isinstance(metrics, str) else metrics
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(m, str) for m in names):
        raise ConfigError(f"metrics={metrics!r} is invalid; expected a list of RecBole metric names ({known})")
    for name in names:
        if name.lower() not in registry:
            raise ConfigError(f"metrics: no metric named {name!r}; expected names among {known}")
    value_metrics = [m for m in names if registry[m.lower()].metric_type == EvaluatorType.VALUE]
    if value_metrics and len(value_metrics) < len(names):
        raise ConfigError(
            f"metrics={list(names)!r} mixes value metrics ({', '.join(value_metrics)}) with ranking metrics; "
            "expected one kind only"
        )

    topk = _get(config, "topk")
    ks = [topk] if isinstance(topk, int) and not isinstance(topk, bool) else topk
    if (not isinstance(ks, (list, tuple)) or not ks
            or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks)):
        raise ConfigError(f"topk={topk!r} is invalid; expected an integer >= 1 or a list of them")

    valid_metric = _get(config, "valid_metric")
    computed = []
    for name in names:
        cls = registry[name.lower()]  # the item-list metrics (ItemCoverage, GiniIndex, ...) report at each k too
        if issubclass(cls, TopkMetric) or {"rec.items", "rec.topk"} & set(cls.metric_need):
            computed += [f"{name.lower()}@{k}" for k in ks]
        else:
            computed.append(name.lower())
    if not isinstance(valid_metric, str) or valid_metric.lower() not in computed:
        raise ConfigError(
            f"valid_metric={valid_metric!r} is not one of the computed metrics; expected one of "
            f"{', '.join(computed)} (the metrics at each topk)"
        )


def _check_eval_args(config):
    eval_args = _get(config, "eval_args")
    shape = ("a mapping with split ({RS: [train, valid, test]}, {LS: valid_and_test} or "
             "{TS: [train, valid, test]}), order (RO or TO), group_by (user or none) and mode")
    if not isinstance(eval_args, dict):
        raise ConfigError(f"eval_args={eval_args!r} is invalid; expected {shape}")
    unknown = sorted(set(map(str, eval_args)) - set(EVAL_ARGS_KEYS))
    if unknown:
        raise ConfigError(f"eval_args has unknown key(s) {', '.join(unknown)}; expected {shape}")
    split = eval_args.get("split", {"RS": [0.8, 0.1, 0.1]})
    ratios_ok = (lambda r: isinstance(r, list) and len(r) == 3
                 and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0
                         for x in r))
    if not (isinstance(split, dict) and len(split) == 1 and (
            ("RS" in split and ratios_ok(split["RS"]))
            or ("TS" in split and ratios_ok(split["TS"]))
            or split.get("LS") == LEAVE_ONE_OUT)):
        raise ConfigError(
            f"eval_args split={split!r} is invalid; expected {{RS: [train, valid, test]}} or "
            f"{{TS: [train, valid, test]}} (three positive ratios) or {{LS: {LEAVE_ONE_OUT}}}"
        )
    if eval_args.get("order", "RO") not in ("RO", "TO"):
        raise ConfigError(f"eval_args order={eval_args['order']!r} is invalid; expected RO or TO")
    if _is_sequential(config) and eval_args.get("order", "RO") != "TO":  # RecBole's default is RO
        raise ConfigError(
            f"eval_args order={eval_args.get('order', 'RO')!r}: RecBole's sequential models need order TO "
            "(by time); expected eval_args with order: TO"
        )
    group_by = eval_args.get("group_by", "user")
    if not (group_by is None or group_by == "user" or str(group_by).lower() == "none"):  # RecBole's own test
        raise ConfigError(f"eval_args group_by={group_by!r} is invalid; expected user or none")
    mode = eval_args.get("mode", "full")
    modes = mode.values() if isinstance(mode, dict) else [mode]
    if isinstance(mode, dict) and not set(mode) <= {"valid", "test"}:
        raise ConfigError(f"eval_args mode={mode!r} is invalid; expected a mode or {{valid: mode, test: mode}}")
    for m in modes:
        if not (isinstance(m, str) and (m in ("full", "labeled")
                                        or (m[:3] in ("uni", "pop") and m[3:].isdigit() and int(m[3:]) >= 1))):
            raise ConfigError(
                f"eval_args mode={mode!r} is invalid; expected full, labeled, uniN or popN (N >= 1), "
                "or {valid: ..., test: ...} of those"
            )
    from recbole.utils import EvaluatorType

    metrics = _get(config, "metrics")
    names = [metrics] if isinstance(metrics, str) else metrics
    registry = _metric_registry()
    if "full" in modes and any(registry[m.lower()].metric_type == EvaluatorType.VALUE for m in names):
        raise ConfigError(
            f"eval_args mode={mode!r} (full ranking) cannot compute value metrics {names!r}; "
            "expected ranking metrics (Hit, NDCG, MRR, ...) or a sampled/labeled mode"
        )


def _check_train_neg_sample_args(config):
    """Its shape only: CE with sampled negatives is refused while the Config is built
    (``recbole_sigma.config.config_with_loss_sampling``)."""
    args = _get(config, "train_neg_sample_args")
    if args is None or args == "None":
        return
    if not isinstance(args, dict):
        raise ConfigError(
            f"train_neg_sample_args={args!r} is invalid; expected None or a mapping "
            "{distribution: uniform or popularity, sample_num: N, ...}"
        )
    distribution = args.get("distribution", "uniform")
    if distribution not in (None, "None", "none", "uniform", "popularity"):
        raise ConfigError(
            f"train_neg_sample_args distribution={distribution!r} is invalid; expected uniform, popularity or None"
        )


@contextlib.contextmanager
def recbole_config_errors():
    """Turn the exceptions RecBole's Config raises on a bad key into a one-line ConfigError.

    First our checks run on the dict RecBole was building (they name the key, the value and what
    is allowed); when they find nothing, RecBole's own message, where it raised it on purpose,
    is kept in one line. Anything else (a bug) propagates unchanged."""
    from recbole_sigma.errors import RecBoleSigmaError

    try:
        yield
    except RecBoleSigmaError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, NotImplementedError, RuntimeError,
            AssertionError, SyntaxError) as e:
        raw = _config_being_built(e.__traceback__)
        try:
            if raw is not None:
                check_run_config(raw)
        except ConfigError as found:
            raise found.with_traceback(None) from e
        except Exception:  # the raw dict is too broken for a check to read: say what RecBole said
            pass
        if not _raised_in_configurator(e.__traceback__):
            raise
        message = " ".join(str(e).split())
        raise ConfigError(f"RecBole rejects the config: {message}") from e


def _config_being_built(tb):
    """The ``final_config_dict`` of the RecBole Config whose construction raised, if any."""
    found = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename.replace("\\", "/").endswith("recbole/config/configurator.py"):
            candidate = getattr(frame.f_locals.get("self"), "final_config_dict", None)
            if isinstance(candidate, dict):
                found = candidate
        tb = tb.tb_next
    return found


def _raised_in_configurator(tb):
    """True when the innermost frame is RecBole's configurator (a deliberate check, not a crash)."""
    last = None
    while tb is not None:
        last = tb.tb_frame
        tb = tb.tb_next
    return last is not None and last.f_code.co_filename.replace("\\", "/").endswith("recbole/config/configurator.py")


def check_dataset_config(config, dataset):
    """The keys that need the loaded dataset (before data_preparation and training): topk must not ask for
    more items than the dataset has (RecBole ranks every item, a sampled evaluation too: its unsampled
    items score -inf)."""
    topk = config["topk"]
    ks = [topk] if isinstance(topk, int) else list(topk)
    limit = dataset.item_num - 1  # item 0 is padding
    if max(ks) > limit:
        raise ConfigError(
            f"topk={topk!r} asks for more items than an evaluation ranks ({limit}: dataset "
            f"{config['dataset']!r} has {limit} items); expected topk <= {limit}"
        )
