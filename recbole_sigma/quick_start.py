"""One door for training and evaluating any model, ours or RecBole's, RecBole-style.

    python run_recbole_sigma.py --model=SIGMA --dataset=amazon-beauty [--config_files="a.yaml b.yaml"]
                                [--any_recbole_key=value ...]

``run()`` is the same thing as a function. RecBole only knows the models under ``recbole.model``
and the YAML under its own ``properties/``: ``resolve_model`` and ``config_files`` pass ours.
"""
import argparse
import ast
import inspect
import logging
import os
import sys
import urllib.request
from pathlib import Path

import torch.distributed as dist
import yaml

from recbole_sigma.errors import (
    ConfigError,
    DatasetNotFoundError,
    EmptyDatasetError,
    RecBoleSigmaError,
    UnknownModelError,
)
from recbole_sigma.model import BASELINES, MODELS

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


def config_files(model, dataset):
    """Our YAML defaults for ``model`` (a name or class) on ``dataset``, lowest priority first.

    Another RecBole project passes them with its own files after them:

        Config(model=SIGMA, dataset="amazon-beauty",
               config_file_list=recbole_sigma.config_files("SIGMA", "amazon-beauty") + ["my.yaml"])
    """
    name = model if isinstance(model, str) else model.__name__
    root = properties_dir()
    candidates = [
        root / "model" / f"{name}.yaml",
        root / "dataset" / f"{dataset}.yaml",
        root / "model_dataset" / f"{name}-{dataset}.yaml",
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
    ours = {**MODELS, **BASELINES}
    if model in ours:
        return ours[model]
    from recbole.utils import get_model

    try:
        return get_model(model)
    except (ValueError, ImportError):  # ImportError: its search imports exlib (lightgbm, xgboost)
        pass
    raise UnknownModelError(
        f"unknown model {model!r}. recbole-sigma models: {', '.join(MODELS)}. "
        f"RecBole models: {', '.join(recbole_model_names())}"
    )


def build_config(model, dataset, config_file_list=None, config_dict=None):
    """RecBole's Config with our YAML defaults under the user's files and keys."""
    from recbole.config import Config

    for path in config_file_list or []:
        check_config_file(path)
    model_class = resolve_model(model)
    return config_with_loss_sampling(model_class, dataset, config_files(model_class, dataset),
                                     list(config_file_list or []), config_dict)


def config_with_loss_sampling(model_class, dataset, our_files, user_files, config_dict):
    """RecBole's Config (our YAML under the user's files and keys), with training negatives that
    fit the effective ``loss_type``.

    RecBole's overall.yaml samples one negative per positive, and its Config refuses that for a
    sequential model whose loss is CE (the YAML of RecBole's SASRec, GRU4Rec, BERT4Rec and FEARec
    say CE). When none of the user's files, ``config_dict`` or command-line keys sets
    ``train_neg_sample_args`` (our YAML's ``~`` is a default, not a user's choice), a CE model gets
    none and a BPR model RecBole's default sampling: the Config is built with no negatives, and
    built again with overall.yaml's when RecBole's layering gives another loss_type. An explicit
    setting always wins; CE with negatives, or a sequential BPR model without them, is a ConfigError.
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
    user_set = key in (config_dict or {}) or any(arg.startswith(f"--{key}=") for arg in sys.argv[1:])
    for path in user_files:
        with open(path, encoding="utf-8") as f:
            user_set = user_set or key in (yaml.safe_load(f) or {})
    config = build({} if user_set else {key: None})
    if not user_set and config["loss_type"] != "CE":
        with open(Path(recbole.__file__).parent / "properties" / "overall.yaml", encoding="utf-8") as f:
            config = build({key: yaml.safe_load(f)[key]})
    if config["loss_type"] == "BPR" and config[key]["distribution"] == "none":
        raise ConfigError(f"loss_type='BPR' needs a sampled negative per positive: remove {key}: ~ "
                          "(RecBole's default samples one), or set loss_type=CE")
    return config


def check_config_file(path):
    """A config file that does not exist or is not a YAML mapping is a one-line error."""
    try:
        with open(path, encoding="utf-8") as f:
            content = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"config file {path!r} cannot be read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path!r} is not valid YAML: {' '.join(str(e).split())}") from None
    if content is not None and not isinstance(content, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of keys to values, not {type(content).__name__}")


def check_dataset_available(config):
    """Fail with a clear message, before RecBole tries (and fails) to download offline."""
    path = config["data_path"]
    if os.path.isdir(path):
        return
    name = config["dataset"]
    with open(Path(inspect.getfile(__import__("recbole"))).parent / "properties/dataset/url.yaml") as f:
        url = (yaml.safe_load(f) or {}).get(name)
    hint = (
        f"dataset {name!r} not found at data_path {path!r}. Put the atomic files "
        f"({name}.inter, and optionally {name}.item / {name}.user) in that folder, or point "
        f"--data_path at the folder that contains {name}/"
    )
    if url is None:
        raise DatasetNotFoundError(hint + f"; {name!r} is not a dataset RecBole can download.")
    try:
        urllib.request.urlopen(url, timeout=10).close()
    except OSError as e:
        raise DatasetNotFoundError(hint + f"; downloading it from RecBole's mirror failed ({e}).") from None


def _split_cli_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run(model, dataset, config_file_list=None, config_dict=None, saved=True, queue=None, resume=False,
        nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0, on_epoch=None, quiet=False):
    """Train ``model`` on ``dataset``, evaluate full-sort on the test split; return the results.

    Returns {'best_valid_score', 'valid_score_bigger', 'best_valid_result', 'test_result', 'checkpoint'}.

    Checkpoints go to ``checkpoint_dir`` as ``<model>-<dataset>-best.pth`` and ``-last.pth`` (after
    every epoch; see ``recbole_sigma.trainer``). ``resume=True`` continues from the last checkpoint
    when there is one (a path: from that checkpoint). ``nproc`` > 1 (or ``world_size`` > 0) trains
    with DDP as RecBole's ``run`` does, on CPU (gloo) too: see ``recbole_sigma.distributed``.
    ``on_epoch(event)`` is told of every epoch's training and validation (a dict; see
    ``recbole_sigma.trainer``), single-process runs only. ``quiet=True`` keeps the console to
    warnings (the log file still gets everything).
    """
    distributed = nproc > 1 or (world_size is not None and world_size > 0)
    if on_epoch is not None and distributed:
        raise ValueError("run(on_epoch=...) needs a single-process run (nproc=1)")
    if distributed:
        from recbole_sigma.distributed import spawn

        return spawn(run, model, dataset, config_file_list, config_dict, saved=saved, resume=resume,
                     nproc=nproc, world_size=world_size, ip=ip, port=port, group_offset=group_offset)
    from recbole.data import create_dataset
    from recbole.utils import get_trainer, init_logger, init_seed, set_color

    from recbole_sigma.config_checks import check_dataset_config, check_run_config, recbole_config_errors
    from recbole_sigma.data_checks import check_atomic_files, prepare_splits
    from recbole_sigma.malloc import keep_freed_memory
    from recbole_sigma.trainer import reliable_trainer

    keep_freed_memory()  # no page-fault storm on every step's large temporaries
    with recbole_config_errors():  # RecBole's own checks, reworded in one line
        config = build_config(model, dataset, config_file_list, config_dict)
    check_run_config(config)  # before any data is read or model built
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    if quiet:
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:  # the console; file handlers are subclasses
                handler.setLevel(logging.WARNING)
    logger = logging.getLogger()
    logger.info(config)

    check_dataset_available(config)
    check_atomic_files(config)
    try:
        data = create_dataset(config)
    except ValueError as e:  # RecBole's Dataset._reset_index: "Some feat is empty, please check ..."
        if "Some feat is empty" not in str(e):
            raise
        data = None
    if data is None or data.inter_num == 0:
        raise EmptyDatasetError(
            f"dataset {config['dataset']!r} has no interactions left after filtering "
            f"(user_inter_num_interval={config['user_inter_num_interval']}, "
            f"item_inter_num_interval={config['item_inter_num_interval']})"
        )
    logger.info(data)
    check_dataset_config(config, data)
    train_data, valid_data, test_data = prepare_splits(config, data)  # data_preparation, no empty split

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = resolve_model(model)(config, train_data._dataset).to(config["device"])
    logger.info(net)

    trainer = reliable_trainer(get_trainer(config["MODEL_TYPE"], config["model"]))(config, net)
    trainer.on_epoch = on_epoch  # ignored by trainers that are not RecBole Trainers
    if resume:
        trainer.resume_from(None if resume is True else resume)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    logger.info(set_color("best valid ", "yellow") + f": {metrics_line(best_valid_result)}")
    logger.info(set_color("test result", "yellow") + f": {metrics_line(test_result)}")
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": dict(best_valid_result),
        "test_result": dict(test_result),
        "checkpoint": trainer.saved_model_file if saved else None,
    }
    if not config["single_spec"]:
        dist.destroy_process_group()
    if queue is not None and config["local_rank"] == 0:
        queue.put(result)
    return result


def load_data_and_model(model_file):
    """RecBole's ``load_data_and_model`` for any model, ours included.

    Returns (config, model, dataset, train_data, valid_data, test_data), the model holding the
    checkpoint's weights. The checkpoint must be one RecBole wrote (it unpickles its Config).
    """
    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_logger, init_seed

    # RecBole's own file: it pickles its Config. Read on the CPU so that a GPU checkpoint loads
    # on a machine without one (the Mamba block's parameters are the same on both backends).
    checkpoint = torch.load(model_file, map_location="cpu", weights_only=False)
    config = checkpoint["config"]
    if config["device"].type == "cuda" and not torch.cuda.is_available():
        config["device"] = torch.device("cpu")
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = logging.getLogger()
    logger.info(config)
    data = create_dataset(config)
    logger.info(data)
    train_data, valid_data, test_data = data_preparation(config, data)
    init_seed(config["seed"], config["reproducibility"])
    model = resolve_model(config["model"])(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, data, train_data, valid_data, test_data


def metrics_line(metrics):
    """``hit@10 : 0.0615    ndcg@10 : 0.0301``: plain numbers (not numpy's ``np.float64(...)`` repr)."""
    return "    ".join(f"{k} : {float(v)}" for k, v in (metrics or {}).items())


def format_result(result):
    """Two lines: best valid and test metrics."""

    def line(metrics):
        return "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items())

    return f"best valid: {line(result['best_valid_result'])}\ntest result: {line(result['test_result'])}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train and evaluate a sequential recommender (recbole-sigma's or RecBole's).",
        epilog="Any other --key=value is a RecBole config key (e.g. --epochs=1 --data_path=dataset/).",
    )
    parser.add_argument("--model", "-m", default="SIGMA", help="SIGMA, Mamba4Rec, EchoMamba4Rec or any RecBole model")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (a folder under data_path)")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="resume from <checkpoint_dir>/<model>-<dataset>-last.pth if present, or from CHECKPOINT")
    ddp = parser.add_argument_group("multi-process training (DDP; gloo on CPU, NCCL on GPU)")
    ddp.add_argument("--nproc", type=int, default=1, help="processes on this machine")
    ddp.add_argument("--world_size", type=int, default=-1, help="processes on all machines (default: nproc)")
    ddp.add_argument("--ip", default="localhost", help="address of rank 0")
    ddp.add_argument("--port", default="5678", help="free port on rank 0's machine")
    ddp.add_argument("--group_offset", type=int, default=0, help="rank of this machine's first process")
    tuning = parser.add_argument_group("tuning (with --params_file; see docs/tuning.md)")
    tuning.add_argument("--params_file", default=None, help="RecBole params file (e.g. hyper.test): tune, don't train once")
    tuning.add_argument("--tool", choices=("hyperopt", "ray"), default="hyperopt", help="RecBole's HyperTuning or Ray Tune")
    tuning.add_argument("--algo", choices=("exhaustive", "random", "bayes"), default=None,
                        help="default: exhaustive if every parameter is a choice, else random")
    tuning.add_argument("--max_evals", type=int, default=None, help="hyperopt: number of trials (default 10)")
    tuning.add_argument("--num_samples", type=int, default=None, help="ray: number of trials (default 10)")
    tuning.add_argument("--ray_address", default=None, help="join a Ray cluster (auto or HOST:PORT) instead of a local Ray")
    tuning.add_argument("--output_file", default=None, help="every trial's results (default hyper_MODEL_DATASET.result)")
    args, rest = parser.parse_known_args(argv)
    config_dict = {}
    for item in rest:
        key, sep, value = item[2:].partition("=") if item.startswith("--") else ("", "", "")
        if not key or not sep:
            parser.error(f"unrecognised argument {item!r}: RecBole keys are given as --key=value")
        config_dict[key] = _split_cli_value(value)
    args.config_file_list = args.config_files.split() if args.config_files else None
    return args, config_dict


def main(argv=None):
    args, config_dict = parse_args(argv)
    try:
        if args.params_file:  # tuning: ray and hyperopt are imported only on this path
            from recbole_sigma import tuning

            return tuning.main(args, config_dict)
        result = run(args.model, args.dataset, args.config_file_list, config_dict, resume=args.resume,
                     nproc=args.nproc, world_size=args.world_size, ip=args.ip, port=args.port,
                     group_offset=args.group_offset)
    except RecBoleSigmaError as e:
        log_traceback_to_file(e)
        print("error: " + " ".join(str(e).split()), file=sys.stderr)  # one line, whatever the message
        return 2
    except Exception as e:  # a bug, not a bad input: the traceback goes to the console and the log file
        log_traceback_to_file(e)
        raise
    print(format_result(result))
    return 0


def log_traceback_to_file(error):
    """Write ``error``'s traceback to the run's log file (RecBole's init_logger's FileHandler on the
    root logger), not to the console; nothing when no log file was opened yet."""
    root = logging.getLogger()
    files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    if not files:
        return
    record = root.makeRecord(root.name, logging.ERROR, __file__, 0, f"{type(error).__name__}: {error}",
                             None, (type(error), error, error.__traceback__))
    for handler in files:
        if record.levelno >= handler.level:
            handler.handle(record)
