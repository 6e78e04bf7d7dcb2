"""The training and evaluation path: ``run()`` trains and tests one model on one dataset,
``load_data_and_model()`` reads a checkpoint back.

A call leaves the process as it was: the root logger's handlers and level, and ``sys.stdout`` and
``sys.stderr``, are restored after RecBole's ``init_logger`` (the log file is written and closed),
``CUDA_VISIBLE_DEVICES`` (RecBole's
Config sets it to ``gpu_id``) after the run, and the allocator is left alone
(``recbole_sigma.malloc`` is the command line's and the benchmarks' choice).
"""
import contextlib
import inspect
import logging
import os
import sys
import urllib.request
from pathlib import Path

import torch.distributed as dist
import yaml

from recbole_sigma._recbole.process_state import kept_env
from recbole_sigma.config import check_config_file, checked_config, properties_dir, resolve_model
from recbole_sigma.errors import DatasetNotFoundError, EmptyDatasetError

def check_dataset_available(config):
    """Fail with a clear message where the dataset's folder is missing, before RecBole tries to download it:
    offline that fails, and online RecBole 1.2.1's download asks on stdin and then waits on a process group a
    single process has not got. The message names the mirror's file to fetch by hand."""
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
    fetch = (f"download {url}, unzip it into {path} and name its files {name}.inter (and .item, .user), as "
             "RecBole renames them")
    try:
        urllib.request.urlopen(url, timeout=10).close()
    except OSError as e:
        raise DatasetNotFoundError(hint + f"; RecBole's mirror cannot be reached ({e}): elsewhere, {fetch}.") from None
    raise DatasetNotFoundError(hint + f"; RecBole's mirror has it: {fetch}.")


@contextlib.contextmanager
def restored_root_logger():
    """The root logger's handlers (with their levels and filters) and level as they were before, once the
    block ends: RecBole's ``init_logger`` adds a file and a console handler to it and sets its level; those
    it added are closed (the log file is complete) and removed. ``sys.stdout`` and ``sys.stderr`` are put
    back too: ``init_logger`` wraps them in colorama's ANSI filter, one more at each call."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    states = [(handler.level, handler.filters[:]) for handler in handlers]  # _init_logger changes both
    streams = sys.stdout, sys.stderr
    try:
        yield root
    except BaseException as e:  # its traceback into the log file, before that file is closed
        _log_traceback_to_file(e, [h for h in root.handlers if h not in handlers])
        raise
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler, (handler_level, filters) in zip(handlers, states):
            if handler not in root.handlers:
                root.addHandler(handler)
            handler.setLevel(handler_level)
            handler.filters[:] = filters
        root.setLevel(level)
        sys.stdout, sys.stderr = streams


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

        result = spawn(run, model, dataset, config_file_list, config_dict, saved=saved, resume=resume,
                       nproc=nproc, world_size=world_size, ip=ip, port=port, group_offset=group_offset, quiet=quiet)
        if queue is not None:  # as a single process puts it (rank 0's result)
            queue.put(result)
        return result
    from recbole.utils import init_seed

    with kept_env("CUDA_VISIBLE_DEVICES"):  # RecBole's Config sets it to gpu_id for the run: the caller's after
        config = checked_config(model, dataset, config_file_list, config_dict)
        init_seed(config["seed"], config["reproducibility"])
        with restored_root_logger():  # RecBole's init_logger adds the log file and the console to it
            return _train_and_test(config, model, saved, queue, resume, on_epoch, quiet)


def _train_and_test(config, model, saved, queue, resume, on_epoch, quiet):
    """``run``'s body once its Config is built and checked; RecBole logs to the root logger."""
    from recbole.utils import init_seed

    _init_logger(config, quiet)
    logger = logging.getLogger()
    logger.info(config)
    train_data, valid_data, test_data = load_splits(config)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = resolve_model(model)(config, train_data._dataset).to(config["device"])
    logger.info(net)
    result = _fit_and_evaluate(config, net, train_data, valid_data, test_data, saved, resume, on_epoch)
    if not config["single_spec"]:
        dist.destroy_process_group()
    if queue is not None and config["local_rank"] == 0:
        queue.put(result)
    return result


def _init_logger(config, quiet):
    """RecBole's ``init_logger``, its log file written whatever the caller's root logger holds.

    ``init_logger`` is ``logging.basicConfig``: a no-op once the root logger has handlers (its log file
    would stay empty). A caller's handlers are set aside while it runs, then come back in place of
    RecBole's console, each with a :class:`_CallerGate`: the root logger's level drops to RecBole's
    (for its file) where that is lower, and the caller's handlers still show only what its own levels
    let through. ``quiet`` keeps the console to warnings: RecBole's, or the caller's plain stream
    handlers. ``restored_root_logger`` puts everything back after the run."""
    from recbole.utils import init_logger

    root = logging.getLogger()
    callers, caller_level = root.handlers[:], root.level
    for handler in callers:
        root.removeHandler(handler)
    init_logger(config)
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler:  # RecBole's console; its file handler is a subclass
            if callers:
                root.removeHandler(handler)
                handler.close()
            elif quiet:
                handler.setLevel(logging.WARNING)
    if callers:
        root.setLevel(min(caller_level, root.level))
        gate = _CallerGate(caller_level)
        for handler in callers:
            root.addHandler(handler)
            handler.addFilter(gate)
            if quiet and type(handler) is logging.StreamHandler:
                handler.setLevel(max(handler.level, logging.WARNING))


class _CallerGate(logging.Filter):
    """Passes a record only if the caller's logging let it through before ``_init_logger`` lowered the
    root logger's level: its level is at least its logger's effective level, the root's counted as
    ``root_level``."""

    def __init__(self, root_level):
        super().__init__()
        self.root_level = root_level

    def filter(self, record):
        logger = logging.Logger.manager.loggerDict.get(record.name)
        while isinstance(logger, logging.Logger) and logger.level == logging.NOTSET:
            logger = logger.parent
        own = logger.level if isinstance(logger, logging.Logger) and logger is not logging.getLogger() else None
        return record.levelno >= (self.root_level if own is None else own)


def load_splits(config):
    """The dataset checked and loaded, then split: (train, valid, test) dataloaders, or a one-line
    error for a missing dataset, a bad atomic file, no interactions, or an empty split. The model
    is built on ``train._dataset``."""
    from recbole.data import create_dataset

    from recbole_sigma.config_checks import check_dataset_config
    from recbole_sigma.data_checks import check_atomic_files

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
    logging.getLogger().info(data)
    check_dataset_config(config, data)
    return prepare_splits(config, data)  # data_preparation, no empty split


def prepare_splits(config, dataset):
    """RecBole's ``data_preparation`` (train, valid and test loaders), where an empty split (too few
    interactions per user for ``eval_args``' split) is a one-line EmptyDatasetError, before
    training: RecBole would fail in torch's sampler (empty training split), skip the validation
    (no best epoch) or fail in the evaluation."""
    from recbole.data import data_preparation

    try:
        splits = data_preparation(config, dataset)
    except ValueError as e:  # torch's RandomSampler: "num_samples should be a positive integer ..."
        if "num_samples" not in str(e):
            raise
        _empty_split(config, "training")
    for name, loader in zip(("training", "validation", "test"), splits):
        if len(loader._dataset) == 0:
            _empty_split(config, name)
    return splits


def _empty_split(config, name):
    raise EmptyDatasetError(
        f"dataset {config['dataset']!r} leaves the {name} split empty "
        f"(eval_args split={config['eval_args']['split']!r}); expected more interactions per user "
        "(with {LS: valid_and_test} a sequential model validates only users with 4 or more) "
        "or another split"
    )


def _fit_and_evaluate(config, net, train_data, valid_data, test_data, saved, resume, on_epoch):
    """Train ``net`` (resumed if asked), test the best model; ``run``'s result dict."""
    from recbole.utils import get_trainer, set_color

    from recbole_sigma.trainer import reliable_trainer

    trainer = reliable_trainer(get_trainer(config["MODEL_TYPE"], config["model"]))(config, net)
    trainer.on_epoch = on_epoch  # ignored by trainers that are not RecBole Trainers
    try:
        if resume:
            trainer.resume_from(None if resume is True else resume)
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, saved=saved, show_progress=config["show_progress"]
        )
        if best_valid_result is None and saved:  # resumed from RecBole's own checkpoint, which keeps the best
            # score, not its metrics, and no epoch since beat it: they are the best model's on valid
            best_valid_result = trainer.evaluate(valid_data, load_best_model=True,
                                                 show_progress=config["show_progress"])
        test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    finally:
        # RecBole never closes its TensorBoard writer: its thread would outlive the run, and a DDP
        # worker's os._exit (distributed.py) could drop its last events
        writer = getattr(trainer, "tensorboard", None)
        if writer is not None:
            writer.close()
    logger = logging.getLogger()
    logger.info(set_color("best valid ", "yellow") + f": {metrics_line(best_valid_result)}")
    logger.info(set_color("test result", "yellow") + f": {metrics_line(test_result)}")
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": dict(best_valid_result or {}),  # {}: unknown (RecBole's checkpoint, saved=False)
        "test_result": dict(test_result),
        "checkpoint": trainer.saved_model_file if saved else None,
    }


def load_data_and_model(model_file):
    """RecBole's ``load_data_and_model`` for any model, ours included.

    Returns (config, model, dataset, train_data, valid_data, test_data), the model holding the
    checkpoint's weights. The checkpoint must be one RecBole wrote (it unpickles its Config).
    """
    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_sigma.trainer import load_checkpoint, load_weights

    # RecBole's own file: it pickles its Config. Read on the CPU so that a GPU checkpoint loads
    # on a machine without one (the Mamba block's parameters are the same on both backends).
    checkpoint = load_checkpoint(model_file, map_location="cpu", hint="expected a .pth file RecBole saved")
    config = checkpoint["config"]
    if "recbole_sigma" not in checkpoint:  # written by RecBole's own trainer
        add_model_defaults(config)
    if config["device"].type == "cuda" and not torch.cuda.is_available():
        config["device"] = torch.device("cpu")
        if config["mamba_backend"] == "cuda":  # the kernels cannot run here: the same weights, the PyTorch path
            config["mamba_backend"] = "auto"
            logging.getLogger(__name__).warning(f"{model_file}: trained with mamba_backend 'cuda', loaded on a "
                                                "machine without CUDA: mamba_backend 'auto' (the PyTorch path)")
    init_seed(config["seed"], config["reproducibility"])
    with restored_root_logger() as logger:  # RecBole's init_logger adds the log file and the console to it
        _init_logger(config, quiet=False)
        logger.info(config)
        data = create_dataset(config)
        logger.info(data)
        train_data, valid_data, test_data = data_preparation(config, data)
    init_seed(config["seed"], config["reproducibility"])
    model = resolve_model(config["model"])(config, train_data._dataset).to(config["device"])
    load_weights(model, checkpoint, model_file)
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, data, train_data, valid_data, test_data


def add_model_defaults(config):
    """The keys our model YAML adds that ``config`` lacks, set to their defaults: a checkpoint
    RecBole's own trainer wrote for RecBole's SASRec has no ``length_buckets``, which our SASRec
    (the class ``resolve_model`` gives) requires."""
    path = properties_dir() / "model" / f"{config['model']}.yaml"
    if not path.is_file():
        return
    for key, value in check_config_file(path).items():
        if config[key] is None:
            config[key] = value


def metrics_line(metrics):
    """``hit@10 : 0.0615    ndcg@10 : 0.0301``: plain numbers (not numpy's ``np.float64(...)`` repr)."""
    return "    ".join(f"{k} : {float(v)}" for k, v in (metrics or {}).items())


def format_result(result):
    """Two lines: best valid and test metrics."""

    def line(metrics):
        return "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items())

    return f"best valid: {line(result['best_valid_result'])}\ntest result: {line(result['test_result'])}"


def _log_traceback_to_file(error, handlers):
    """Write ``error``'s traceback to the run's log file (``handlers``: those RecBole's init_logger added to
    the root logger; its FileHandler), not to the console nor to a caller's files; nothing when no log file
    was opened yet."""
    root = logging.getLogger()
    record = root.makeRecord(root.name, logging.ERROR, __file__, 0, f"{type(error).__name__}: {error}",
                             None, (type(error), error, error.__traceback__))
    for handler in handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)
