"""Hyper-parameter tuning for any model, ours or RecBole's, through the same entry point.

    python run_recbole_sigma.py --model=SIGMA --dataset=ml-100k --params_file=hyper.test --tool=hyperopt
    python run_recbole_sigma.py --model=SIGMA --dataset=ml-100k --params_file=hyper.test --tool=ray \\
        [--algo=exhaustive|random|bayes] [--num_samples=N] [--ray_address=auto|HOST:PORT] [--output_file=PATH]

The params file is RecBole's (``name choice [...]``, ``uniform a,b``, ``loguniform a,b`` with
*exponents*: the value is ``exp(uniform(a, b))``, ``quniform a,b,q``). Any other ``--key=value``
is a fixed RecBole config key for every trial, as in a plain run.

What RecBole 1.2.1's ``run_hyper.py`` does, and what this module does instead:

* its ``objective_function`` finds models with ``recbole.utils.get_model``, which cannot see ours:
  every trial here is one ``recbole_sigma.run`` (``train_trial``);
* it asks Ray for one GPU per trial, so on a CPU machine trials stay PENDING forever:
  ``ray_cluster.trial_resources`` splits one machine's CPUs, and its GPUs only where CUDA is
  available (``recbole_sigma.ray_cluster`` also joins or starts the cluster);
* it reports once, after the test, so ASHA can stop nothing early: every validation epoch is
  reported (``Trainer.fit(callback_fn=...)``) and ASHA stops weak trials at its rungs;
* its trials return a dict without the metric, which Ray 2.x rejects: every report carries
  ``valid_score`` (the config's ``valid_metric``);
* Ray changes each trial's working directory: config files, ``data_path`` and
  ``checkpoint_dir`` are made absolute (``log/`` then lands in each trial's folder);
* its trainable reports with Ray 2.6.3's ``tune.report(**metrics)``: ``ray_trial`` uses the
  current API (``ray.tune.report(dict)``, ``ray.tune.get_context()``; Ray >= 2.60, the ``tune``
  extra). Ray's own processes need nothing from us: cluster nodes start with Ray's own
  ``ray start``.

A trial does not see the tuning command's ``sys.argv`` (RecBole's Config reads it:
``recbole_sigma._recbole.process_state``); it is put back after the trial. ray and hyperopt are
imported only inside the functions that use them.
"""
import ast
import functools
import math
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from recbole_sigma._recbole.process_state import kept_env, plain_argv
from recbole_sigma.errors import ConfigError
from recbole_sigma.ray_cluster import connect_ray, node_resources, trial_resources

PARAM_TYPES = ("choice", "uniform", "loguniform", "quniform")
TOOLS = ("hyperopt", "ray")
ALGOS = ("exhaustive", "random", "bayes")
DEFAULT_TRIALS = 10
METRIC = "valid_score"  # every Ray report carries it: the config's valid_metric, this epoch
# RecBole's exhaustive search draws a grid's points at random, giving up after this many repeats in a row
# (RecBole: 1000): about exp(-EXHAUSTIVE_PATIENCE * left / grid) that it stops with `left` points untried.
EXHAUSTIVE_PATIENCE = 1_000_000
# Path keys a trial reads (pretrained models, RecBole's data caches): absolute for Ray, which moves each trial.
PATH_KEYS = ("pre_model_path", "dataset_save_path", "dataloaders_save_path")


# --------------------------------------------------------------------------------------------
# The params file
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One line of a params file: ``name kind args``."""

    name: str
    kind: str  # one of PARAM_TYPES
    args: tuple  # choice: the values; uniform / loguniform: (low, high); quniform: (low, high, q)

    @property
    def integral(self):
        """quniform with whole bounds and step (d_state, num_layers): its values are ints."""
        return self.kind == "quniform" and all(float(a).is_integer() for a in self.args)

    def cast(self, value):
        """A sampled value as the model expects it: python scalars; quniform's round(value / q) * q (hyperopt's
        definition, applied to Ray's uniform draw too), an int where integral."""
        if hasattr(value, "item") and callable(value.item):  # numpy scalar (hyperopt)
            value = value.item()
        if self.kind == "quniform":
            value = round(round(value / self.args[2]) * self.args[2], 12)
            return int(value) if self.integral else value
        return value


def read_params_file(path):
    """Parse a RecBole params file (the rules of ``HyperTuning._build_space_from_file``).

    Lines of fewer than three space-separated fields are skipped, as RecBole does. Errors are
    one line naming the file, the line and what is wrong.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(f"params file {str(path)!r} cannot be read: {e.strerror}") from None
    params = {}
    for number, line in enumerate(lines, 1):
        fields = line.strip().split(" ")
        if len(fields) < 3:
            continue
        name, kind, text = fields[0], fields[1], "".join(fields[2:])
        where = f"params file {str(path)!r} line {number} ({line.strip()!r})"
        if kind not in PARAM_TYPES:
            hint = " (RecBole's format has no comments)" if name.startswith("#") else ""
            raise ConfigError(f"{where}: unknown type {kind!r}; use one of {', '.join(PARAM_TYPES)}{hint}")
        if name in params:
            raise ConfigError(f"{where}: {name!r} is already defined above")
        if kind == "choice":
            try:
                values = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                values = None
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"{where}: choice takes a non-empty list, e.g. [0.1,0.2]")
            args = tuple(values)
        else:
            want = 3 if kind == "quniform" else 2
            try:
                args = tuple(float(v) for v in text.split(","))
            except ValueError:
                args = ()
            if len(args) != want or not args[0] < args[1] or (kind == "quniform" and args[2] <= 0):
                form = "low,high,q with low < high and q > 0" if kind == "quniform" else "low,high with low < high"
                raise ConfigError(f"{where}: {kind} takes {form}")
        params[name] = Param(name, kind, args)
    if not params:
        raise ConfigError(f"params file {str(path)!r} defines no parameter (lines are 'name type values')")
    return list(params.values())


def cast_params(values, params):
    """Trial values (from hyperopt or Ray) as a config dict the models accept."""
    by_name = {p.name: p for p in params}
    return {k: by_name[k].cast(v) if k in by_name else v for k, v in values.items()}


def grid_size(params):
    return math.prod(len(p.args) for p in params)


def choose_algo(params, algo=None):
    """``exhaustive`` where every parameter is a choice, else ``random``, unless one is given."""
    if algo is None:
        return "exhaustive" if all(p.kind == "choice" for p in params) else "random"
    if algo not in ALGOS:
        raise ConfigError(f"unknown --algo {algo!r}; use one of {', '.join(ALGOS)}")
    if algo == "exhaustive":
        continuous = [f"{p.name} ({p.kind})" for p in params if p.kind != "choice"]
        if continuous:
            raise ConfigError(
                "--algo=exhaustive tries every combination, so every parameter must be a choice; "
                f"not: {', '.join(continuous)}. Use --algo=random or --algo=bayes"
            )
    return algo


def hyperopt_space(params):
    """The search space of ``HyperTuning._build_space_from_file``, a choice's values as literals: hyperopt reads
    a list-valued one (gate_activations: [['silu', 'sigmoid'], ...]) as an expression, whose grid RecBole's
    exhaustive search cannot count."""
    from hyperopt import hp
    from hyperopt.pyll import Literal

    kinds = {"uniform": hp.uniform, "quniform": hp.quniform, "loguniform": hp.loguniform}
    return {p.name: hp.choice(p.name, [Literal(v) for v in p.args]) if p.kind == "choice"
            else kinds[p.kind](p.name, *p.args) for p in params}


def ray_search_space(params, algo):
    """Ray Tune's search space for the params (``loguniform`` bounds are exponents, as in RecBole; quniform a
    uniform draw that :meth:`Param.cast` rounds as hyperopt does: Ray's own leaves out its top value at q = 1,
    and refuses bounds that are not multiples of q)."""
    from ray import tune

    space = {}
    for p in params:
        if p.kind == "choice":
            space[p.name] = tune.grid_search(list(p.args)) if algo == "exhaustive" else tune.choice(list(p.args))
        elif p.kind == "uniform":
            space[p.name] = tune.uniform(*p.args)
        elif p.kind == "loguniform":
            space[p.name] = tune.loguniform(math.exp(p.args[0]), math.exp(p.args[1]))
        else:
            space[p.name] = tune.uniform(p.args[0], p.args[1])
    return space


# --------------------------------------------------------------------------------------------
# One trial
# --------------------------------------------------------------------------------------------
def train_trial(model, dataset, config_file_list=None, config_dict=None, on_validation=None):
    """One trial: ``recbole_sigma.run`` with the trial's config, the console kept to warnings
    (each trial's full log is in its log file); its result, plus ``model``.

    ``on_validation(epoch_idx, valid_score, valid_result)`` is called after every validation.
    """
    from recbole_sigma.config import model_name
    from recbole_sigma.pipeline import run

    def on_epoch(event):
        if on_validation is not None and "valid_score" in event:
            on_validation(event["epoch"], event["valid_score"], event["valid_result"])

    with plain_argv():  # RecBole's Config reads it
        result = run(model, dataset, config_file_list, config_dict, on_epoch=on_epoch, quiet=True)
    result["model"] = model_name(model)
    return result


def _plain(metrics):
    return {str(k): float(v) for k, v in (metrics or {}).items()}


def ray_trial(values, *, model, dataset, config_file_list, fixed, params, checkpoint_root, cpus):
    """The Ray trainable: one trial, reporting every validation epoch, then its test result."""
    import ray
    import torch
    from ray import tune

    from recbole_sigma.malloc import keep_freed_memory

    # A Ray worker is a trial's own process: tuned as the command line tunes its own (malloc.py).
    keep_freed_memory()
    torch.set_num_threads(cpus)
    config_dict = {**fixed, **cast_params(values, params)}
    # RecBole sets CUDA_VISIBLE_DEVICES to gpu_id: use exactly the GPU Ray gave this trial ("" = CPU).
    config_dict["gpu_id"] = ",".join(str(g) for g in ray.get_gpu_ids())
    # Trials run side by side; RecBole names checkpoints by the second they were written.
    config_dict["checkpoint_dir"] = os.path.join(checkpoint_root, tune.get_context().get_trial_id())

    def on_validation(epoch_idx, valid_score, valid_result):
        tune.report({METRIC: float(valid_score), "epoch": int(epoch_idx), "valid_result": _plain(valid_result)})

    # A current Ray runs a trial in a scratch folder under its session; run it in the trial's own
    # folder instead, so RecBole's log/ sits beside Ray's progress.csv (paths are absolute).
    before = os.getcwd()
    trial_dir = tune.get_context().get_trial_dir()
    os.makedirs(trial_dir, exist_ok=True)
    os.chdir(trial_dir)
    try:
        result = train_trial(model, dataset, config_file_list, config_dict, on_validation)
    finally:
        os.chdir(before)
    tune.report(
        {
            METRIC: float(result["best_valid_score"]),
            "best_valid_result": _plain(result["best_valid_result"]),
            "test_result": _plain(result["test_result"]),
            "checkpoint": result["checkpoint"],
        }
    )


# --------------------------------------------------------------------------------------------
# A search
# --------------------------------------------------------------------------------------------
@dataclass
class Trial:
    params: dict
    status: str  # "completed", "stopped early" (ASHA) or "error"
    valid_score: Optional[float] = None
    valid_result: dict = field(default_factory=dict)  # best valid (completed) or last valid (stopped)
    test_result: dict = field(default_factory=dict)
    checkpoint: Optional[str] = None
    error: Optional[str] = None


@dataclass
class TuningResult:
    best: Optional[Trial]
    trials: list
    metric: str
    mode: str
    rerun: Optional[str]
    output_file: Optional[str]


@dataclass
class _Job:
    model: Any
    dataset: str
    params_file: str
    params: list
    tool: str
    algo: str
    n_trials: int
    config_file_list: list
    fixed: dict
    metric: str
    mode: str
    ray_address: Optional[str]
    output_file: Optional[str]
    prog: str
    name: str  # <model>-<dataset>-<time>: Ray's experiment folder and the trials' checkpoint folder
    config: Any = None  # the driver's Config of the fixed settings


def _prepare(model, dataset, params_file, tool, algo, n_trials, config_file_list, config_dict, ray_address,
             output_file, prog):
    from recbole_sigma.config import model_name
    from recbole_sigma.pipeline import check_dataset_available

    if tool not in TOOLS:
        raise ConfigError(f"unknown --tool {tool!r}; use one of {', '.join(TOOLS)}")
    params = read_params_file(params_file)
    algo = choose_algo(params, algo)
    fixed = dict(config_dict or {})
    both = sorted(set(fixed) & {p.name for p in params})
    if both:
        raise ConfigError(f"{', '.join(both)} is both fixed (--key=value) and tuned by {params_file!r}; drop one")
    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"the number of trials must be >= 1, got {n_trials}")
    # fail here, in one line, rather than in every trial; CUDA_VISIBLE_DEVICES as it was, for Ray to count GPUs
    with plain_argv(), kept_env("CUDA_VISIBLE_DEVICES"):
        config = _checked_points(model, dataset, config_file_list, fixed, params, params_file)
    check_dataset_available(config)
    if output_file:  # made now, not found missing once every trial has run
        Path(output_file).parent.mkdir(parents=True, exist_ok=True)
    n = grid_size(params) if algo == "exhaustive" else (n_trials or DEFAULT_TRIALS)
    return _Job(
        model=model,
        dataset=dataset,
        params_file=str(params_file),
        params=params,
        tool=tool,
        algo=algo,
        n_trials=n,
        config_file_list=list(config_file_list or []),
        fixed=fixed,
        metric=str(config["valid_metric"]).lower(),
        mode="max" if config["valid_metric_bigger"] else "min",
        ray_address=ray_address,
        output_file=output_file,
        prog=prog,
        name=f"{model_name(model)}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}",
        config=config,
    )


def _values_to_check(param):
    """The values of ``param`` checked before any trial: a choice's every value, a range's two ends (as cast)."""
    if param.kind == "choice":
        return [param.cast(v) for v in param.args]
    low, high = param.args[:2]
    if param.kind == "loguniform":
        low, high = math.exp(low), math.exp(high)
    return [param.cast(low), param.cast(high)]


def _checked_points(model, dataset, config_file_list, fixed, params, params_file):
    """``checked_config`` at every tuned key's first value, then at each other value of one key (the rest at
    their first): a bad value in the params file, or a fixed key that no trial can accept, is one ConfigError
    line before any trial. A clash only between values of two tuned keys is left to its trials. Returns the
    config at the first values."""
    from recbole_sigma.config import checked_config

    values = {p.name: _values_to_check(p) for p in params}
    first = {name: vs[0] for name, vs in values.items()}

    def checked(point, shown, baseline=False):  # shown: the tuned values an error names
        try:
            return checked_config(model, dataset, config_file_list, {**fixed, **point})
        except ConfigError as e:
            if baseline and not any(re.search(rf"\b{re.escape(key)}=", str(e)) for key in first):
                raise  # the fixed settings' own error
            raise ConfigError(f"{e} (params file {str(params_file)!r} at {_params_str(shown)})") from None

    config = checked(first, first, baseline=True)
    for name, vs in values.items():
        for value in vs[1:]:
            checked({**first, name: value}, {name: value})
    return config


def _better(a, b, mode):
    return a > b if mode == "max" else a < b


def _pick_best(trials, mode):
    best = None
    for trial in trials:
        if trial.status == "completed" and trial.valid_score is not None:
            if best is None or _better(trial.valid_score, best.valid_score, mode):
                best = trial
    return best


class _TrialFailed(Exception):
    """A hyperopt trial that raised: recorded as an "error" trial, and the search goes on (as Ray's does)."""


def _hyper_tuning():
    """RecBole's HyperTuning, whose trials may fail: hyperopt then skips them (STATUS_FAIL), where RecBole's
    own trial would end the whole search, and everything trained before it, with the first exception."""
    import hyperopt
    from recbole.trainer.hyper_tuning import HyperTuning

    class FailingTrials(HyperTuning):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if kwargs.get("algo") == "exhaustive":  # RecBole's draws combinations at random and gives up after
                # 1000 repeats in a row: a 1000-point grid then ends short about every other time
                from recbole.trainer.hyper_tuning import exhaustive_search

                self.algo = functools.partial(exhaustive_search, nbMaxSucessiveFailures=EXHAUSTIVE_PATIENCE)

        def trial(self, params):
            try:
                return super().trial(params)
            except _TrialFailed:
                return {"status": hyperopt.STATUS_FAIL, "loss": float("inf")}

        def run(self):
            try:
                super().run()
            except hyperopt.exceptions.AllTrialsFailed:  # fmin's argmin, with no trial to take it from
                pass

    return FailingTrials


def _run_hyperopt(job):
    trials = []
    # One folder per trial: run() names checkpoints <model>-<dataset>-best.pth in checkpoint_dir.
    checkpoint_root = os.path.join(job.config["checkpoint_dir"], job.name)

    def objective(values, config_file_list):
        params = cast_params(values, job.params)
        config_dict = {**job.fixed, **params, "checkpoint_dir": os.path.join(checkpoint_root, f"trial_{len(trials)}")}
        try:
            result = train_trial(job.model, job.dataset, config_file_list, config_dict)
        except Exception as e:  # a bad combination or a diverging run: this trial's, not the search's
            trials.append(Trial(params=params, status="error", error=" ".join(f"{type(e).__name__}: {e}".split())))
            write_output(job, trials, final=False)
            raise _TrialFailed from e
        trials.append(
            Trial(
                params=params,
                status="completed",
                valid_score=float(result["best_valid_score"]),
                valid_result=_plain(result["best_valid_result"]),
                test_result=_plain(result["test_result"]),
                checkpoint=result["checkpoint"],
            )
        )
        write_output(job, trials, final=False)  # a search stopped midway keeps what it found
        return result

    _hyper_tuning()(
        objective,
        space=hyperopt_space(job.params),
        fixed_config_file_list=job.config_file_list or None,
        algo=job.algo,
        max_evals=job.n_trials,
        # RecBole stops a search after 10 trials in a row without a better loss (hyperopt's no_progress_loss),
        # so a grid of more than 11 points or --max_evals > 11 could end short: never before n_trials here
        early_stop=job.n_trials,
    ).run()
    return trials


def _absolute_settings(job):
    """Config files, data_path and checkpoint_dir as absolute paths (Ray moves every trial to
    its own folder), from what the driver's Config resolved."""
    config = job.config
    files = [os.path.abspath(f) for f in job.config_file_list]
    fixed = dict(job.fixed)
    # RecBole joins data_path and the dataset name (ml-100k: its own example folder).
    fixed["data_path"] = os.path.abspath(os.path.dirname(os.path.normpath(config["data_path"])))
    fixed["checkpoint_dir"] = os.path.abspath(config["checkpoint_dir"])
    for key in PATH_KEYS:  # read by some models and RecBole's data caches, relative to where the driver runs
        if isinstance(config[key], str) and config[key] and not os.path.isabs(config[key]):
            fixed[key] = os.path.abspath(config[key])
    return files, fixed


def _ray_trainable(job, resources):
    """``ray_trial`` bound to the search's fixed settings (absolute paths) and resources."""
    from ray import tune

    files, fixed = _absolute_settings(job)
    trainable = tune.with_parameters(
        ray_trial,
        model=job.model if isinstance(job.model, str) else job.model.__name__,
        dataset=job.dataset,
        config_file_list=files or None,
        fixed=fixed,
        params=job.params,
        checkpoint_root=os.path.join(fixed.pop("checkpoint_dir"), job.name),
        cpus=resources["cpu"],
    )
    return tune.with_resources(trainable, resources)


def _extreme(params, name, value, pick):
    """The largest (``pick`` max) or smallest (min) value the search gives ``name``; ``value`` if untuned."""
    for param in params:
        if param.name == name:
            return pick(_values_to_check(param))
    return value


def _asha_rungs(config, params=()):
    """(max_t, grace period) for ASHA, in reports: every validation, then the final one. With epochs or
    eval_step tuned, max_t fits the trial that validates most (ASHA stops a trial at max_t reports,
    before the final one if it came later)."""
    epochs = int(_extreme(params, "epochs", config["epochs"], max))
    eval_step = int(_extreme(params, "eval_step", config["eval_step"] or 0, min))
    validations = epochs // eval_step if eval_step > 0 else 0
    max_t = validations + 1  # every validation, then the final report with the test result
    return max_t, max(1, min(config["stopping_step"] or 1, max_t - 1))


def _ray_tuner(job, resources):
    """Ray Tune's Tuner for the search: ASHA, and TPE for ``bayes``."""
    from ray import tune
    from ray.tune import RunConfig
    from ray.tune.schedulers import ASHAScheduler

    max_t, grace = _asha_rungs(job.config, job.params)
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=grace, reduction_factor=2)
    search_alg = None
    if job.algo == "bayes":
        from ray.tune.search.hyperopt import HyperOptSearch

        search_alg = HyperOptSearch()
    print(
        f"ray: {job.n_trials} trial(s) ({job.algo}), each asking for {resources['cpu']} CPU(s) and "
        f"{resources['gpu']:g} GPU; ASHA may stop a trial from validation {grace} on; results under "
        f"ray_results/{job.name}"
    )
    return tune.Tuner(
        _ray_trainable(job, resources),
        param_space=ray_search_space(job.params, job.algo),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=job.mode,
            num_samples=1 if job.algo == "exhaustive" else job.n_trials,
            scheduler=scheduler,
            search_alg=search_alg,
        ),
        run_config=RunConfig(name=job.name, storage_path=os.path.abspath("ray_results"), verbose=1),
    )


def _ray_trial_result(result, params):
    """A ``Trial`` from one of Ray Tune's results."""
    metrics = result.metrics or {}
    values = cast_params({k: v for k, v in (result.config or {}).items()}, params)
    if "test_result" in metrics:
        status, valid = "completed", metrics.get("best_valid_result", {})
    else:
        status, valid = ("error" if result.error else "stopped early"), metrics.get("valid_result", {})
    return Trial(
        params=values,
        status=status,
        valid_score=metrics.get(METRIC),
        valid_result=dict(valid or {}),
        test_result=dict(metrics.get("test_result") or {}),
        checkpoint=metrics.get("checkpoint"),
        error=" ".join(str(result.error).split())[:500] if result.error else None,
    )


def _run_ray(job):
    import ray

    started = connect_ray(job.ray_address)
    try:
        resources = trial_resources(job.n_trials, *node_resources())
        grid = _ray_tuner(job, resources).fit()
        return [_ray_trial_result(result, job.params) for result in grid]
    finally:
        if started:
            ray.shutdown()


def rerun_command(job, params, prog="python run_recbole_sigma.py"):
    """One command that trains the given parameters with the search's fixed settings."""
    model = job.model if isinstance(job.model, str) else job.model.__name__
    parts = [prog, f"--model={model}", f"--dataset={job.dataset}"]
    if job.config_file_list:
        parts.append(f"--config_files={' '.join(job.config_file_list)}")
    for key, value in {**job.fixed, **params}.items():
        parts.append(f"--{key}={_cli_value(value)}")
    return " ".join(shlex.quote(p) if i else p for i, p in enumerate(parts))


def _cli_value(value):
    """A value that ``--key=value`` parses back to itself (``recbole_sigma.cli.parse_cli_value``)."""
    if isinstance(value, str):
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        return repr(value)  # a string that reads as a literal: keep it a string
    return repr(value)


def _params_str(params):
    return ", ".join(f"{k}:{v}" for k, v in params.items())


def _metrics_str(metrics):
    return "    ".join(f"{k} : {v}" for k, v in metrics.items())  # as RecBole rounded them (metric_decimal_place)


def format_report(job, trials, best, rerun, final=True):
    """The output file: a header, every trial best first, each a block of RecBole's export_result layout
    (parameters, then valid and test results; a status mark and error where the trial did not complete), then
    the best trial and its re-run command. ``final`` False: the search is still running (or was stopped),
    and the header says so."""
    def order(trial):
        score = trial.valid_score if trial.valid_score is not None else (-math.inf if job.mode == "max" else math.inf)
        rank = {"completed": 0, "stopped early": 1, "error": 2}[trial.status]
        return rank, -score if job.mode == "max" else score

    model = job.model if isinstance(job.model, str) else job.model.__name__
    done = f"{len(trials)} trial(s)" if final else f"{len(trials)} of {job.n_trials} trial(s) so far (the search did not end)"
    if final and job.algo == "exhaustive" and len(trials) < job.n_trials:
        done += f" of a {job.n_trials}-point grid (the search ended short)"
    lines = [
        f"# recbole-sigma tuning: {model} on {job.dataset}, {job.tool} ({job.algo}), {done}, "
        f"params {job.params_file}, best by valid {job.metric} ({job.mode})",
        "",
    ]
    for trial in sorted(trials, key=order):
        lines.append(_params_str(trial.params) + ("" if trial.status == "completed" else f"    [{trial.status}]"))
        if trial.error:
            lines.append(f"Error: {trial.error}")
        if trial.valid_result:
            label = "Valid result" if trial.status == "completed" else "Last valid result"
            lines += [f"{label}:", _metrics_str(trial.valid_result)]
        if trial.test_result:
            lines += ["Test result:", _metrics_str(trial.test_result)]
        lines.append("")
    if best is None:
        lines.append("No trial completed.")
    else:
        lines += [
            f"Best parameters: {_params_str(best.params)}",
            f"Best valid result: {_metrics_str(best.valid_result)}",
            f"Test result: {_metrics_str(best.test_result)}",
        ]
        if best.checkpoint:
            lines.append(f"Checkpoint: {best.checkpoint}")
        lines.append(f"Re-run: {rerun}")
    return "\n".join(lines) + "\n"


def tune(model, dataset, params_file, tool="hyperopt", algo=None, n_trials=None, config_file_list=None,
         config_dict=None, ray_address=None, output_file=None, prog="python run_recbole_sigma.py"):
    """Search ``params_file``'s space for ``model`` on ``dataset``; return a ``TuningResult``.

    ``tool``: ``hyperopt`` (RecBole's HyperTuning, trials one after another in this process) or
    ``ray`` (Ray Tune with ASHA; a local Ray unless ``ray_address`` names a cluster).
    ``algo``: ``exhaustive`` (every combination; the default when every parameter is a choice),
    ``random`` (the default otherwise) or ``bayes`` (TPE). ``n_trials``: how many, except for
    exhaustive. ``config_file_list`` / ``config_dict``: fixed settings for every trial.
    """
    job = _prepare(model, dataset, params_file, tool, algo, n_trials, config_file_list, config_dict,
                   ray_address, output_file, prog)
    trials = _run_ray(job) if tool == "ray" else _run_hyperopt(job)
    best, rerun = write_output(job, trials)
    return TuningResult(best=best, trials=trials, metric=job.metric, mode=job.mode, rerun=rerun,
                        output_file=output_file)


def write_output(job, trials, final=True):
    """The best trial and its re-run command; written to ``job.output_file`` (if any) whole, by a rename.
    hyperopt writes it after every trial too (``final`` False), so that a stopped search keeps its trials."""
    best = _pick_best(trials, job.mode)
    rerun = rerun_command(job, best.params, job.prog) if best else None
    if job.output_file:
        path = Path(job.output_file)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(format_report(job, trials, best, rerun, final), encoding="utf-8")
        os.replace(tmp, path)
    return best, rerun


def tune_and_print(model, dataset, params_file, output_file, **kwargs):
    """``tune`` (same arguments), its summary printed; the exit code (1: no trial completed).
    The command line's tuning branch (``recbole_sigma.cli``) calls it with its flags' values."""
    result = tune(model, dataset, params_file, output_file=output_file, **kwargs)
    done = sum(t.status == "completed" for t in result.trials)
    print(f"\n{len(result.trials)} trial(s), {done} completed; best by valid {result.metric} ({result.mode})")
    for trial in result.trials:
        if trial.error:
            print(f"  error with {_params_str(trial.params)}: {trial.error}", file=sys.stderr)
    if result.best is None:
        print(f"error: no trial completed; see {output_file}", file=sys.stderr)
        return 1
    print(f"best params: {result.best.params}")
    print(f"best valid: {_metrics_str(result.best.valid_result)}")
    print(f"test result: {_metrics_str(result.best.test_result)}")
    print(f"re-run: {result.rerun}")
    print(f"all trials: {output_file}")
    return 0
