"""The command line: every flag (a run's and the tuning's), then ``run`` or the tuning.

    python run_recbole_sigma.py --model=SIGMA --dataset=amazon-beauty [--config_files="a.yaml b.yaml"]
                                [--any_recbole_key=value ...]
    python run_recbole_sigma.py --model=SIGMA --dataset=ml-100k --params_file=hyper.test [--tool=ray ...]

Process-wide tuning is the command line's choice, not the library's: ``main`` turns on the glibc
allocator settings of ``recbole_sigma.malloc`` before a run.
"""
import argparse
import ast
import os
import sys

from recbole_sigma.errors import RecBoleSigmaError
from recbole_sigma.malloc import keep_freed_memory
from recbole_sigma.pipeline import format_result, run


def parse_cli_value(text):
    """``--key=value``'s value: a Python literal when it reads as one, else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


class _OneLineParser(argparse.ArgumentParser):
    """argparse's errors as every other bad input here: one line, exit code 2 (not its usage block first)."""

    def error(self, message):
        self.exit(2, f"error: {' '.join(message.split())} ({self.prog} --help lists the flags)\n")


def parse_args(argv=None):
    """Every flag, a run's and the tuning's; (args, config_dict of the other ``--key=value``)."""
    parser = _OneLineParser(
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
        config_dict[key] = parse_cli_value(value)
    args.config_file_list = args.config_files.split() if args.config_files else None
    _refuse_flags_that_would_be_ignored(parser, args)
    return args, config_dict


def _refuse_flags_that_would_be_ignored(parser, args):
    """A run's flags with --params_file (each trial is one process, trained from scratch), the tuning's without
    it, and --ray_address without --tool=ray: each would be read and then ignored."""
    def given(*flags):  # those set to other than their default
        return [flag for flag in flags if getattr(args, flag[2:]) != parser.get_default(flag[2:])]

    if args.params_file:
        run_flags = given("--resume", "--nproc", "--world_size", "--ip", "--port", "--group_offset")
        if run_flags:
            parser.error(f"{', '.join(run_flags)} with --params_file: a tuning runs each trial as one process from "
                         "epoch 0; drop them, or train one run without --params_file")
        if args.ray_address is not None and args.tool != "ray":
            parser.error("--ray_address joins a Ray cluster, which only --tool=ray uses; add --tool=ray or drop it")
    else:
        tuning_flags = given("--tool", "--algo", "--max_evals", "--num_samples", "--ray_address", "--output_file")
        if tuning_flags:
            parser.error(f"{', '.join(tuning_flags)} without --params_file: they set up a tuning; add "
                         "--params_file=<file> or drop them")


def main(argv=None):
    """The command line (``recbole-sigma``, ``run_recbole_sigma.py``); the exit code."""
    args, config_dict = parse_args(argv)
    keep_freed_memory()  # no page-fault storm on every step's large temporaries (malloc.py)
    try:
        if args.params_file:  # tuning: ray and hyperopt are imported only on this path
            return _tune(args, config_dict)
        result = run(args.model, args.dataset, args.config_file_list, config_dict, resume=args.resume,
                     nproc=args.nproc, world_size=args.world_size, ip=args.ip, port=args.port,
                     group_offset=args.group_offset)
    except RecBoleSigmaError as e:  # its traceback is in the run's log file (pipeline.restored_root_logger)
        print("error: " + " ".join(str(e).split()), file=sys.stderr)  # one line, whatever the message
        return 2
    print(format_result(result))
    return 0


def _prog():
    """How the user called us, for the tuning's re-run command."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "recbole-sigma" if name == "recbole-sigma" else "python run_recbole_sigma.py"


def _tune(args, config_dict):
    """The tuning branch (``--params_file``): the flags' values to ``tuning.tune_and_print``."""
    from recbole_sigma import tuning

    first, second = (args.num_samples, args.max_evals) if args.tool == "ray" else (args.max_evals, args.num_samples)
    n_trials = first if first is not None else second  # 0 too: tune() refuses it
    return tuning.tune_and_print(
        args.model,
        args.dataset,
        args.params_file,
        tool=args.tool,
        algo=args.algo,
        n_trials=n_trials,
        config_file_list=args.config_file_list,
        config_dict=config_dict,
        ray_address=args.ray_address,
        output_file=args.output_file or f"hyper_{args.model}_{args.dataset}.result",
        prog=_prog(),
    )
