"""The child process of one job: train it with ``recbole_sigma.run`` (resuming from its checkpoint),
then evaluate the best checkpoint by user group, time it, and write ``result.json``."""
import json
import os
import time
from pathlib import Path

from .jobs import METRICS
from .machine import iso, machine, now, peak_rss_mb, versions
from .results import epoch_summary, read_epochs


def train(model, dataset, config_dict, resume, config_file_list=None, epochs_file=None):
    """Train one job with ``recbole_sigma.run``; ``resume``: continue from
    ``<checkpoint_dir>/<model>-<dataset>-last.pth`` (written after every epoch; a run that had
    finished is not trained again). Each epoch's train time/loss and valid time/score are
    appended to ``epochs_file`` (JSON lines)."""
    import recbole_sigma

    def record(event):
        event = {k: v for k, v in event.items() if k != "valid_result"}
        with open(epochs_file, "a") as f:
            f.write(json.dumps(event) + "\n")

    return recbole_sigma.run(model, dataset, config_file_list or None, config_dict, resume=resume,
                             on_epoch=record if epochs_file else None)


def loadavg():
    """The 1-minute load average (None where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def data_summary(dataset, cfg):
    """Users, items, interactions, L and the split of the dataset the job ran on."""
    import numpy as np

    return {
        "users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1),
        # one row per interaction but each user's first (which is no target)
        "interactions": int(len(dataset) + len(np.unique(dataset.inter_feat[dataset.uid_field].numpy()))),
        "max_item_list_length": int(cfg["MAX_ITEM_LIST_LENGTH"]),
        "eval_args": json.loads(json.dumps(cfg["eval_args"], default=str)),
    }


def evaluate(result):
    """The best checkpoint's grouped evaluation (timed), with what the record needs of its model and data."""
    import recbole_sigma
    from recbole_sigma import grouped_eval

    cfg, model, dataset, train_data, valid_data, test_data = recbole_sigma.load_data_and_model(result["checkpoint"])
    grouped = grouped_eval.evaluate(model, cfg, train_data, valid_data, test_data, time_batches=True)
    return {
        "eval_ms_per_batch": grouped["eval"]["ms_per_batch"],
        "eval_batch_size": grouped["eval"]["batch_size"],
        "eval_batch_users": grouped["eval"]["batch_users"],
        "grouped": grouped,
        # RecBole rounds to metric_decimal_place
        "grouped_minus_recbole_max_abs": max(abs(grouped["overall"][m] - float(result["test_result"][m]))
                                             for m in METRICS),
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": data_summary(dataset, cfg),
        "device": str(cfg["device"]),
    }


def run_spec(spec, job_dir, started):
    """Train (or resume) the job of job.json; RecBole's result and the record of the training."""
    config_file_list = list(spec["config_files"])
    epochs_file = job_dir / "epochs.jsonl"
    # run(resume=True) continues from the last checkpoint only (a best one alone, from a kill between the two
    # saves, starts over at epoch 0)
    resumed = any(Path(spec["config"]["checkpoint_dir"]).glob("*-last.pth"))
    if not resumed:  # a fresh start: forget the earlier attempt's epochs
        epochs_file.unlink(missing_ok=True)
    result = train(spec["model"], spec["dataset"], dict(spec["config"]), resumed, config_file_list, epochs_file)
    return result, {
        "test": {k: float(v) for k, v in result["test_result"].items()},
        "best_valid": {k: float(v) for k, v in (result["best_valid_result"] or {}).items()},
        **epoch_summary(read_epochs(epochs_file)),
        "peak_rss_mb_train": peak_rss_mb(),
        "train_wall_s": time.time() - started,
        "resumed": resumed,
    }


def child_main(job_dir):
    """The job in ``job_dir`` (its job.json) trained and evaluated; result.json written. Exit code 0."""
    started, load_start = time.time(), loadavg()
    import recbole_sigma
    from recbole_sigma.malloc import keep_freed_memory
    from recbole_sigma.trainer import atomic_write

    keep_freed_memory()  # the child is a training process: the allocator as the command line sets it
    job_dir = Path(job_dir).resolve()
    spec = json.loads((job_dir / "job.json").read_text())
    result, trained = run_spec(spec, job_dir, started)
    evaluated = evaluate(result)
    record = {
        "name": spec["name"], "model": spec["model"], "variant": spec["variant"], "seed": spec["seed"],
        "dataset": spec["dataset"], "test": trained["test"], "best_valid": trained["best_valid"],
        **{k: trained[k] for k in ("epochs_trained", "epochs_to_best", "train_s_per_epoch", "valid_s_per_epoch")},
        **{k: evaluated[k] for k in ("eval_ms_per_batch", "eval_batch_size", "eval_batch_users")},
        "peak_rss_mb_train": trained["peak_rss_mb_train"], "peak_rss_mb": peak_rss_mb(),
        "train_wall_s": trained["train_wall_s"], "wall_s": time.time() - started,
        "started": iso(started), "finished": now(), "resumed": trained["resumed"],
        # 1-min load average at the start and the end: timings from a busy machine are not comparable
        "loadavg": [load_start, loadavg()],
        **{k: evaluated[k] for k in ("grouped", "grouped_minus_recbole_max_abs", "parameters", "data")},
        "checkpoint": result["checkpoint"],
        "config_files": recbole_sigma.config_files(spec["model"], spec["dataset"]) + list(spec["config_files"]),
        "config": spec["config"], "yaml_defaults": spec["yaml_defaults"],
        "versions": versions(), "machine": machine(), "device": evaluated["device"],
    }
    atomic_write(job_dir / "result.json", lambda f: f.write(json.dumps(record, indent=2).encode()))
    print(f"done: {spec['name']} test {record['test']}", flush=True)
    return 0
