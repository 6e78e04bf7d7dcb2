"""Configuration: our YAML defaults, the model registry and RecBole's Config built from both.

RecBole only knows the models under ``recbole.model`` and the YAML under its own ``properties/``:
``resolve_model`` and ``config_files`` pass ours.
"""
import inspect
import sys
from pathlib import Path

import yaml

from recbole_sigma.errors import ConfigError, UnknownModelError
from recbole_sigma.model import BASELINE_NAMES, MODELS

_PACKAGE_DIR = Path(__file__).resolve().parent
RECBOLE_MODEL_GROUPS = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)


def properties_dir():
    """``properties/``: inside the installed package, or at the root of a source checkout."""
    for candidate in (_PACKAGE_DIR / "properties", _PACKAGE_DIR.parent / "properties"):
        if (candidate / "model").is_dir():
            return candidate
    raise FileNotFoundError(f"recbole_sigma's properties/ folder is missing next to {_PACKAGE_DIR}")


def model_name(model):
    """A model's name from its name or its class."""
    return model if isinstance(model, str) else model.__name__


def config_files(model, dataset):
    """Our YAML defaults for ``model`` (a name or class) on ``dataset``, lowest priority first.

    Another RecBole project passes them with its own files after them:

        Config(model=SIGMA, dataset="amazon-beauty",
               config_file_list=recbole_sigma.config_files("SIGMA", "amazon-beauty") + ["my.yaml"])
    """
    name = model_name(model)
    root = properties_dir()
    candidates = [
        root / "model" / f"{name}.yaml",
        root / "dataset" / f"{dataset}.yaml",
    ]
    return [str(path) for path in candidates if path.is_file()]


def recbole_model_names():
    """Names of RecBole's built-in models (the classes its ``get_model`` can find)."""
    import importlib

    from recbole.model.abstract_recommender import AbstractRecommender

    names = set()
    for group in RECBOLE_MODEL_GROUPS:
        module = importlib.import_module(f"recbole.model.{group}")
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, AbstractRecommender) and obj.__module__.endswith(name.lower()):
                names.add(name)
    return sorted(names)


def resolve_model(model):
    """A model class from a class or a name: ours first (SASRec: RecBole's, length-bucketed),
    then RecBole's built-in ones."""
    if not isinstance(model, str):
        return model
    if model in MODELS:
        return MODELS[model]
    if model in BASELINE_NAMES:
        from recbole_sigma.model import BASELINES  # imports RecBole's sequential models

        return BASELINES[model]
    from recbole.utils import get_model

    try:
        return get_model(model)
    except (ValueError, ImportError, AttributeError):  # ImportError: its search imports exlib (lightgbm, xgboost);
        pass  # AttributeError: the module found by the lower-cased name has no class of that spelling
    names = [*MODELS, *recbole_model_names()]
    close = [name for name in names if name.lower() == str(model).lower()]
    raise UnknownModelError(
        f"unknown model {model!r}{f' (did you mean {close[0]!r}?)' if close else ''}. recbole-sigma models: "
        f"{', '.join(MODELS)}. RecBole models: {', '.join(recbole_model_names())}"
    )


def build_config(model, dataset, config_file_list=None, config_dict=None):
    """RecBole's Config with our YAML defaults under the user's files and keys."""
    # an empty file sets nothing; RecBole 1.2.1 itself fails on one ('NoneType' is not iterable)
    user_yaml = [(path, check_config_file(path)) for path in config_file_list or []]  # each file read once
    user_files = [path for path, content in user_yaml if content]
    model_class = resolve_model(model)
    keys = user_keys([content for _, content in user_yaml], config_dict)
    config = config_with_loss_sampling(model_class, dataset, config_files(model_class, dataset),
                                       user_files, config_dict, keys)
    if model_class is MODELS["SIGMA"]:
        check_sigma_preset(config, keys)
    return config


def checked_config(model, dataset, config_file_list=None, config_dict=None):
    """:func:`build_config`, then every check that needs no data (``check_run_config``): a bad key is one
    ConfigError line naming it, found before any data is read or model built."""
    from recbole_sigma.config_checks import check_run_config, recbole_config_errors

    with recbole_config_errors():  # RecBole's own checks, reworded in one line
        config = build_config(model, dataset, config_file_list, config_dict)
    check_run_config(config)
    return config


def user_keys(file_contents, config_dict):
    """The keys the user set: in their config files (``file_contents``: each file's mapping, as
    :func:`check_config_file` read it), in ``config_dict``, or as ``--key=value`` on the command line
    (RecBole's Config reads sys.argv itself)."""
    keys = set(config_dict or {})
    keys.update(arg[2:].split("=", 1)[0] for arg in sys.argv[1:] if arg.startswith("--") and "=" in arg)
    for content in file_contents:
        keys.update(content)
    return keys


def check_sigma_preset(config, keys):
    """A SIGMA key the user set to the paper's value beside a ``sigma_variant`` preset that sets it
    otherwise is a ConfigError: the model cannot tell it from the default, so the preset would win."""
    from recbole_sigma.model.sigma import PRESETS, preset_clashes

    clashes = preset_clashes(config, keys)
    if clashes:
        preset = PRESETS[config["sigma_variant"]]
        said = ", ".join(f"{key}={config[key]!r} (the preset: {preset[key]!r})" for key in clashes)
        raise ConfigError(f"sigma_variant={config['sigma_variant']!r} would replace {said}: a preset changes "
                          "only the keys left at the paper's values. Leave them out for the preset's, or set "
                          "sigma_variant='paper' and the preset's keys yourself (README.md)")


def config_with_loss_sampling(model_class, dataset, our_files, user_files, config_dict, keys):
    """RecBole's Config (our YAML under the user's files and keys), with training negatives that
    fit the effective ``loss_type``.

    RecBole's overall.yaml samples one negative per positive, and its Config refuses that for a
    sequential model whose loss is CE (the YAML of RecBole's SASRec, GRU4Rec, BERT4Rec and FEARec
    say CE). When none of the user's files, ``config_dict`` or command-line keys sets
    ``train_neg_sample_args`` (our YAML's ``~`` is a default, not a user's choice), a CE model gets
    none and a BPR model RecBole's default sampling: the Config is built with no negatives, and
    built again with overall.yaml's when RecBole's layering gives another loss_type. An explicit
    setting always wins; CE with negatives, or a sequential BPR model without them, is a ConfigError.
    ``keys``: the keys the user set (:func:`user_keys`).
    """
    import recbole
    from recbole.config import Config
    from recbole.utils import ModelType

    key = "train_neg_sample_args"
    files = list(our_files) + list(user_files)

    def build(extra):
        try:
            return Config(model=model_class, dataset=dataset, config_file_list=files,
                          config_dict={**(config_dict or {}), **extra})
        except ValueError as e:
            if "should be None when the loss_type is CE" not in str(e):  # RecBole's message
                raise
            raise ConfigError(f"loss_type='CE' scores every item and takes no sampled negatives: remove {key} "
                              "(or set it to ~), or set loss_type=BPR") from None

    if model_class.type != ModelType.SEQUENTIAL or hasattr(model_class, "input_type"):
        return build({})  # RecBole ties negatives to loss_type for sequential models only
    user_set = key in keys
    config = build({} if user_set else {key: None})
    if not user_set and config["loss_type"] != "CE":
        with open(Path(recbole.__file__).parent / "properties" / "overall.yaml", encoding="utf-8") as f:
            config = build({key: yaml.safe_load(f)[key]})
    if config["loss_type"] == "BPR" and config[key]["distribution"] == "none":
        raise ConfigError(f"loss_type='BPR' needs a sampled negative per positive: remove {key}: ~ "
                          "(RecBole's default samples one), or set loss_type=CE")
    return config


def check_config_file(path):
    """The mapping a config file holds ({} for an empty file); a file that does not exist or is not
    a YAML mapping is a one-line error."""
    try:
        with open(path, encoding="utf-8") as f:
            content = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"config file {path!r} cannot be read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path!r} is not valid YAML: {' '.join(str(e).split())}") from None
    if content is not None and not isinstance(content, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of keys to values, not {type(content).__name__}")
    return content or {}

