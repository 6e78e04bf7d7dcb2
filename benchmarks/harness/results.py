"""Reading a job's folder: its epochs (``epochs.jsonl``), attempts (``attempts.jsonl``, ``train.log``)
and result (``result.json``)."""
import contextlib
import json
import shutil
import statistics

from .runner import ATTEMPT_MARK

# What a finished job's part of a report is built from (``--records`` keeps these; no checkpoints, no logs).
RECORD_FILES = ("job.json", "result.json", "epochs.jsonl", "attempts.jsonl")


def read_epochs(epochs_file):
    """{epoch: merged record}; a later record of the same epoch (a resumed re-run) wins."""
    epochs = {}
    if epochs_file.is_file():
        for line in epochs_file.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("epoch") is not None:
                    epochs.setdefault(entry["epoch"], {}).update(entry)
    return epochs


def valid_scores(epochs):
    """{epoch: valid score} of the epochs that were validated."""
    return {e: r["valid_score"] for e, r in epochs.items() if "valid_score" in r}


def kept_best_epoch(scores):
    """The epoch whose checkpoint RecBole keeps: the best score, the later of equal ones (its early
    stopping counts ``>=`` as a new best); None without scores."""
    return max(scores, key=lambda e: (scores[e], e), default=None)


def train_losses(epochs):
    """{epoch: training loss} of the epochs that were trained."""
    return {e: r["loss"] for e, r in epochs.items() if "loss" in r}


def epoch_summary(epochs):
    """Epochs trained, epochs to the best validation, median train and valid seconds per epoch."""
    trained = sorted(e for e, r in epochs.items() if "train_s" in r)
    best_epoch = kept_best_epoch(valid_scores(epochs))
    median = lambda xs: float(statistics.median(xs)) if xs else None  # noqa: E731 -- robust to a busy spell
    return {
        "epochs_trained": len(trained),
        "epochs_to_best": None if best_epoch is None else best_epoch + 1,
        "train_s_per_epoch": median([epochs[e]["train_s"] for e in trained]),
        "valid_s_per_epoch": median([r["valid_s"] for r in epochs.values() if "valid_s" in r]),
    }


def count_attempts(train_log):
    """Attempts started, from the marker line run_job writes at the head of each in train.log."""
    if not train_log.is_file():
        return 0
    with open(train_log) as f:
        return sum(line.startswith("===== ") and f" {ATTEMPT_MARK} " in line for line in f)


def _json_or_none(line):
    try:
        return json.loads(line) if line.strip() else None
    except ValueError:
        return None


def load_result(job_dir):
    """result.json with the wall time of all recorded attempts (``total_wall_s``), the number of
    attempts that left no record (``unrecorded_attempts``), the command that ran it (job.json's),
    the epochs' summary (:func:`epoch_summary`), valid scores (``valid_curve``) and training losses
    (``loss_curve``) from epochs.jsonl."""
    result = json.loads((job_dir / "result.json").read_text())
    with contextlib.suppress(OSError, ValueError, KeyError):
        result["command"] = json.loads((job_dir / "job.json").read_text())["command"]
    epochs = read_epochs(job_dir / "epochs.jsonl")
    if epochs:  # today's reading of the epochs (a record written before a fix to it is read the same way)
        result.update(epoch_summary(epochs), valid_curve=valid_scores(epochs), loss_curve=train_losses(epochs))
    attempts = job_dir / "attempts.jsonl"
    if attempts.is_file():
        lines = [_json_or_none(line) for line in attempts.read_text().splitlines() if line.strip()]
        walls = [attempt["wall_s"] for attempt in lines if attempt and "wall_s" in attempt]
        # unrecorded: attempts train.log marks beyond those with a wall time, or (in the committed records,
        # which have no train.log) the lines without one: torn by a kill, or added by save_records
        result["total_wall_s"] = sum(walls)
        result["unrecorded_attempts"] = max(count_attempts(job_dir / "train.log") - len(walls),
                                            len(lines) - len(walls), 0)
    return result


def load_results(jobs, stale=()):
    """{(model, variant): [result, ...]} in plan order; the pending jobs' names. A job named in ``stale``
    (one that ``--rerun`` has yet to redo) counts as pending, its old result left out of every row."""
    results, pending = {}, []
    for job in jobs:
        results.setdefault(job["key"], [])
        if (job["dir"] / "result.json").is_file() and job["name"] not in stale:
            results[job["key"]].append(load_result(job["dir"]))
        else:
            pending.append(job["name"])
    return results, pending


def save_records(jobs, folder):
    """Copy each finished job's RECORD_FILES to ``folder/<job name>/``."""
    for job in jobs:
        if not (job["dir"] / "result.json").is_file() or (folder / job["name"]).resolve() == job["dir"].resolve():
            continue
        (folder / job["name"]).mkdir(parents=True, exist_ok=True)
        for name in RECORD_FILES:
            if (job["dir"] / name).is_file():
                shutil.copy2(job["dir"] / name, folder / job["name"] / name)
        copied = folder / job["name"] / "attempts.jsonl"
        if copied.is_file():  # the attempts only train.log knows of (not copied) as lines of their own
            lines = [line for line in copied.read_text().splitlines() if line.strip()]
            missing = count_attempts(job["dir"] / "train.log") - len(lines)  # a line each, torn or whole
            if missing > 0:
                with open(copied, "a") as f:
                    f.write('{"unrecorded": "an attempt train.log marks, which left no record"}\n' * missing)
